import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

/**
 * Counts one read of a stream id that does not exist; resolves with the 429
 * to answer instead of the 404 once the caller is past its budget, else null.
 */
export type UnknownStreamReads = (request: FastifyRequest) => Promise<GatewayError | null>;

/**
 * Requests per window per client key (per IP without auth). Registered after
 * auth in the same scope, so the key is known when counting. Routes opt out
 * with `config: { rateLimit: false }` (resume reads, which cost no upstream
 * call and which EventSource would take a 429 on as the end of the stream).
 *
 * Returns the budget for reads of unknown stream ids: the same numbers in a
 * window of their own, so guessing ids is bounded while a known id always reads.
 */
export async function registerRateLimit(app: FastifyInstance, config: Config, shared?: { redis: Redis; nameSpace: string }): Promise<UnknownStreamReads> {
  await app.register(rateLimit, {
    // With REDIS_URL every replica counts against one shared window.
    ...(shared ?? {}),
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (request) => request.summary.limitKey,
    errorResponseBuilder: (_request, ctx) =>
      new GatewayError('rate_limit_exceeded', `Rate limit reached: ${ctx.max} requests per window; retry in ${ctx.after}`),
  });
  const misses = app.createRateLimit({
    keyGenerator: (request) => `unknown-stream:${request.summary.limitKey}`,
    // A store that is down must not turn a 404 into a 500.
    skipOnError: true,
  });
  return async (request) => {
    const r = await misses(request);
    if (r.isAllowed || !r.isExceeded) return null;
    return new GatewayError('rate_limit_exceeded', `Too many reads of unknown streams: ${r.max} per window; retry in ${r.ttlInSeconds} s`, {
      headers: {
        'retry-after': String(r.ttlInSeconds),
        'x-ratelimit-limit': String(r.max),
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(r.ttlInSeconds),
      },
    });
  };
}
