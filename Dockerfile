# syntax=docker/dockerfile:1
# sse-gateway: `npm start` is `npm run build` + `node dist/server.js`; this image
# builds once and runs the same `node dist/server.js`.

# ---- build: all deps, compile TypeScript to dist/ ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production deps only, non-root ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
COPY public ./public
USER node
EXPOSE 8080
# No curl in the slim image: Node's built-in fetch does the probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains (DRAIN_TIMEOUT_MS, default 25 s): give `docker stop` more than that (-t 40; compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
