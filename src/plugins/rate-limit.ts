import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

/**
 * Requests per window per client key (per IP without auth). Registered after
 * auth in the same scope, so the key is known when counting.
 */
export async function registerRateLimit(app: FastifyInstance, config: Config): Promise<void> {
  await app.register(rateLimit, {
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowMs,
    keyGenerator: (request) => request.summary.limitKey,
    errorResponseBuilder: (_request, ctx) =>
      new GatewayError('rate_limit_exceeded', `Rate limit reached: ${ctx.max} requests per window; retry in ${ctx.after}`),
  });
}
