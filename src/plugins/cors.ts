import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';

/** CORS from CORS_ORIGINS; none configured means no CORS headers at all. */
export async function registerCors(app: FastifyInstance, config: Config): Promise<void> {
  if (!config.corsOrigins) return;
  await app.register(cors, {
    origin: config.corsOrigins === '*' ? '*' : config.corsOrigins,
    methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
    // Last-Event-ID and Idempotency-Key: a retried POST (fetch-event-source) resumes the stream its first try started.
    // x-api-key and anthropic-*: what @anthropic-ai/sdk sends from a browser (dangerouslyAllowBrowser).
    allowedHeaders: ['Authorization', 'Content-Type', 'Last-Event-ID', 'Idempotency-Key', 'x-api-key', 'anthropic-version', 'anthropic-beta'],
    exposedHeaders: ['X-Stream-Id', 'X-Request-Id', 'Retry-After', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
    maxAge: 600,
  });
}
