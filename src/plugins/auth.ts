import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Readable without a key: the URL itself is the capability (EventSource sends no headers). */
    public?: boolean;
  }
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** A loggable id for a key: a hash prefix, never the key itself. */
export function keyIdOf(key: string): string {
  return 'key_' + digest(key).toString('hex').slice(0, 12);
}

/**
 * `Authorization: Bearer <key>` against GATEWAY_API_KEYS. Digests have one
 * length, so timingSafeEqual applies, and every key is compared every time:
 * response time says nothing about which key (or how much of one) matched.
 */
export function registerAuth(app: FastifyInstance, keys: readonly string[]): void {
  if (keys.length === 0) return;
  const known = keys.map((k) => ({ digest: digest(k), id: keyIdOf(k) }));
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config.public) return done();
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer[ \t]+(\S{1,512})[ \t]*$/i.exec(header) : null;
    if (!match) return done(new GatewayError('unauthorized', 'Missing API key: send Authorization: Bearer <key>'));
    const presented = digest(match[1]!);
    let id: string | null = null;
    for (const k of known) if (timingSafeEqual(presented, k.digest)) id = k.id;
    if (id === null) return done(new GatewayError('unauthorized', 'Incorrect API key provided'));
    request.summary.keyId = id;
    request.summary.limitKey = id;
    done();
  });
}
