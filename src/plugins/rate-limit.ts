import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

/**
 * Requests per window per client key (per IP without auth). Registered after
 * auth in the same scope, so the key is known when counting.
 */
export async function registerRateLimit(app: FastifyInstance, config: Config, shared?: { redis: Redis; nameSpace: string }): Promise<void> {
  await app.register(rateLimit, {
    // With REDIS_URL every replica counts against one shared window.
    ...(shared ?? {}),
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (request) => request.summary.limitKey,
    errorResponseBuilder: (_request, ctx) =>
      new GatewayError('rate_limit_exceeded', `Rate limit reached: ${ctx.max} requests per window; retry in ${ctx.after}`),
  });
}
