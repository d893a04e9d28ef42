import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';

/** GET / — the small chat page (public/index.html): plain HTML and JS, no build step. */
export const chatPageRoutes: FastifyPluginAsync = async (app) => {
  const html = await readFile(new URL('../../public/index.html', import.meta.url), 'utf8');
  app.get('/', async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      // The page talks to this origin (or one the user names); it loads nothing from elsewhere.
      .header('content-security-policy', "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src *")
      .send(html),
  );
};
