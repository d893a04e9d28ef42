import { randomBytes } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { JwtVerifier } from './auth/jwt-verifier.js';
import { ConfigError, type Config } from './config.js';
import { createLogger } from './logger.js';
import { registerAuth } from './plugins/auth.js';
import { registerCors } from './plugins/cors.js';
import { registerDrainGuard } from './plugins/drain-guard.js';
import { registerErrorHandler } from './plugins/error-handler.js';
import { Inflight } from './plugins/inflight.js';
import { registerJsonBody } from './plugins/json-body.js';
import { registerLoadShedding } from './plugins/load-shedding.js';
import { Metrics } from './plugins/metrics.js';
import { registerRateLimit } from './plugins/rate-limit.js';
import { registerRequestSummary } from './plugins/request-summary.js';
import type { CircuitState } from './relay/circuit-breaker.js';
import { RedisKeyRecords } from './relay/idempotency-redis.js';
import { Relay } from './relay/relay.js';
import { StreamSlots } from './relay/stream-slots.js';
import { Takeover } from './relay/takeover.js';
import { MemoryBudgetStore, RedisBudgetStore, TokenBudget, tokensUsed } from './relay/token-budget.js';
import { promptChars } from './schema/chat-request.js';
import { chatCompletionsRoutes } from './routes/chat-completions.js';
import { chatPageRoutes } from './routes/chat-page.js';
import { healthRoutes, type GatewayState } from './routes/health.js';
import { messagesRoutes } from './routes/messages.js';
import { modelsRoutes } from './routes/models.js';
import { responsesRoutes } from './routes/responses.js';
import { streamsRoutes } from './routes/streams.js';
import { StreamDirectory } from './streams/directory.js';
import { RedisStreams } from './streams/redis-streams.js';
import { MemoryStreamStore } from './streams/memory-store.js';
import { cutConnectionsOnClose, transportOptions } from './transport.js';
import { buildUpstreams, upstreamSecrets } from './upstream/build.js';
import { ModelCatalog } from './upstream/catalog.js';
import type { ChatUpstream } from './upstream/types.js';

export interface AppDeps {
  logger?: Logger;
  /** Replaces the upstream clients built from config (tests inject fakes here). */
  upstreams?: Map<string, ChatUpstream>;
  state?: GatewayState;
  /** Prefix of every Redis key (REDIS_URL): separates deployments, and test runs. */
  redisNamespace?: string;
}

export interface Gateway {
  app: FastifyInstance;
  /**
   * SIGTERM path: readyz turns 503 and new work is refused at once; open
   * responses get `timeoutMs` to finish, then streams end with a `shutdown`
   * error event. Resolves with how many were still open at the deadline.
   */
  drain(timeoutMs: number): Promise<number>;
  state: GatewayState;
  store: MemoryStreamStore;
  slots: StreamSlots;
  catalog: ModelCatalog;
}

/** Builds the gateway from a validated config. Never listens; no global state. */
export async function buildGateway(config: Config, deps: AppDeps = {}): Promise<Gateway> {
  const reqPrefix = randomBytes(4).toString('hex') + '-';
  let reqSeq = 0;
  const app = Fastify({
    loggerInstance: (deps.logger ?? createLogger(config.logLevel)) as FastifyBaseLogger,
    // The request-summary plugin writes the one line per request instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.bodyLimitBytes,
    // Streams are drained before close (SIGTERM); what is left after that is cut.
    forceCloseConnections: true,
    return503OnClosing: true,
    // Unique across replicas (random prefix per process) and cheap per request.
    genReqId: () => reqPrefix + (++reqSeq).toString(36),
    requestIdHeader: false,
    // Behind nginx or a cloud load balancer, per-IP limits need the client's address, not the proxy's.
    trustProxy: config.trustProxy,
    routerOptions: { maxParamLength: 200 },
    // HTTP/2 (TLS or h2c) swaps the server, not the API the routes see (see transport.ts): the
    // cast keeps the instance typed as HTTP/1's, whose request/response API HTTP/2's compat layer mirrors.
    ...(transportOptions(config) as object),
  });
  cutConnectionsOnClose(app, config);
  // JSON only: a text/plain body is refused (415), not parsed as a string.
  app.removeContentTypeParser('text/plain');
  registerJsonBody(app);
  const state = deps.state ?? { draining: false };
  const upstreams = deps.upstreams ?? buildUpstreams(config);
  const catalog = new ModelCatalog(config, upstreams, app.log);
  const store = new MemoryStreamStore({
    ttlMs: config.limits.streamTtlMs,
    maxStreams: config.limits.maxStreams,
    maxBytes: config.streamStoreMaxBytes,
  });
  const slots = new StreamSlots(config.maxConcurrentStreams);
  const redis = config.redisUrl ? await connectRedis(config, app.log, deps.redisNamespace ?? 'sse-gw:', reqPrefix.slice(0, -1)) : null;
  const streams = new StreamDirectory(store, redis);
  const relay = new Relay({
    config,
    store,
    streams,
    slots,
    secrets: upstreamSecrets(config),
    // Idempotency-Key records shared by every replica, so a retry may land on any of them.
    ...(redis ? { keyRecords: new RedisKeyRecords(redis.client, `${redis.namespace}idem:`) } : {}),
  });
  if (redis) {
    redis.onAbortRequest = (id) => relay.abort(id);
    redis.onLeaseLost = (id) => relay.abandon(id);
    const takeover = new Takeover({
      relay,
      store,
      redis,
      catalog,
      log: app.log,
    });
    redis.onOrphan = (id) => {
      // A draining replica would only have to hand it over again: leave it to another.
      if (state.draining) return false;
      takeover.run(id).catch((e: Error) => app.log.error({ stream_id: id, err: e.message }, 'takeover failed'));
      return true;
    };
  }
  const budget = new TokenBudget(config.tokensPerMinute, redis ? new RedisBudgetStore(redis.client, redis.namespace) : new MemoryBudgetStore());
  relay.finished.push((gen) => void budget.record(gen.keyId, tokensUsed(gen.usage, promptChars(gen.body), gen.chunks)).catch(() => {}));

  // --- metrics: fed once per generation and once per request, never per chunk ---
  const metrics = new Metrics({
    activeStreams: () => relay.activeCount,
    storedStreams: () => store.finishedCount,
    storedBytes: () => store.finishedBytes,
    draining: () => state.draining,
    circuits: () => [...upstreams.keys()].map((name) => [name, relay.failure.breaker.state(name)] as [string, CircuitState]),
    isServedModel: (model) => catalog.list().some((m) => m.id === model),
  });
  relay.finished.push(metrics.onGeneration);
  // --- end metrics ---

  const inflight = new Inflight();
  registerErrorHandler(app);
  inflight.register(app);
  registerRequestSummary(app, [metrics.onRequest]);
  await registerCors(app, config);
  // After CORS, so a shed request's 503 is still readable by a browser; probes and /metrics are never shed.
  await registerLoadShedding(app, config);
  // Browser auth (AUTH_JWKS_URL / AUTH_JWT_SECRET): JWTs beside the static keys.
  const jwt = config.jwt ? new JwtVerifier(config.jwt, app.log) : null;
  await app.register(healthRoutes, { state, jwks: () => jwt?.status() ?? null });
  metrics.register(app); // GET /metrics at the root: no auth, no rate limit
  await app.register(chatPageRoutes, { authRequired: config.gatewayApiKeys.length > 0 || jwt !== null });

  await app.register(async (v1) => {
    registerDrainGuard(v1, state);
    registerAuth(v1, config.gatewayApiKeys, jwt);
    const unknownReads = await registerRateLimit(v1, config, redis ? { redis: redis.client, nameSpace: `${redis.namespace}rl:` } : undefined);
    await v1.register(modelsRoutes, { catalog });
    await v1.register(chatCompletionsRoutes, { config, relay, catalog, budget });
    await v1.register(responsesRoutes, { config, relay, catalog, streams, budget, unknownReads });
    await v1.register(messagesRoutes, { config, relay, catalog, budget });
    await v1.register(streamsRoutes, { config, relay, catalog, streams, budget, unknownReads });
  });

  app.addHook('onReady', () => catalog.start());
  // Not awaited: an identity provider that is down never holds up the start (tokens then get 503).
  app.addHook('onReady', (done) => {
    jwt?.start();
    done();
  });
  app.addHook('onClose', async () => {
    catalog.close();
    jwt?.close();
    // Generations nobody reads any more would otherwise run on for their grace period.
    relay.abortAll();
    relay.close();
    store.close();
    await redis?.close();
    for (const u of upstreams.values()) await u.close?.();
  });
  const drain = async (timeoutMs: number): Promise<number> => {
    state.draining = true;
    if (await inflight.idle(timeoutMs)) return 0;
    const cut = inflight.count;
    relay.abortAll();
    await inflight.idle(1000);
    return cut;
  };
  return { app, state, store, slots, catalog, drain };
}

/**
 * With REDIS_URL: the shared stream mirror and rate-limit store. `instanceId` (the
 * x-request-id prefix) names this process as a stream's lease holder.
 * Fails with one line when Redis is unreachable.
 */
async function connectRedis(config: Config, log: FastifyBaseLogger, namespace: string, instanceId: string): Promise<RedisStreams> {
  const redis = new RedisStreams({
    url: config.redisUrl!,
    namespace,
    liveTtlMs: 6 * 3600_000,
    endedTtlMs: config.limits.streamTtlMs,
    leaseMs: config.streamLeaseMs,
    retention: { maxBytes: config.streamStoreMaxBytes, maxStreams: config.limits.maxStreams },
    instanceId,
    log,
  });
  try {
    await redis.connect();
  } catch (e) {
    await redis.close();
    throw new ConfigError(`REDIS_URL: cannot connect (${(e as Error).message})`);
  }
  return redis;
}

export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  return (await buildGateway(config, deps)).app;
}
