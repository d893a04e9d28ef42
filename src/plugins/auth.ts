import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
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

const BEARER = /^Bearer[ \t]+(\S{1,512})[ \t]*$/i;
const API_KEY = /^\S{1,512}$/;

/**
 * The credential a request presents: `Authorization: Bearer <credential>`
 * (OpenAI's clients) or `x-api-key: <credential>` (Anthropic's), on every
 * route alike: one value, whatever checks it. A well-formed Bearer wins
 * when a client sends both. Null when neither is there in a usable form.
 */
export function presentedCredential(headers: IncomingHttpHeaders): string | null {
  const auth = headers.authorization;
  const bearer = typeof auth === 'string' ? BEARER.exec(auth) : null;
  if (bearer) return bearer[1]!;
  const key = headers['x-api-key'];
  // Node joins a repeated header with ", ", which the pattern refuses: two keys are no key.
  return typeof key === 'string' && API_KEY.test(key) ? key : null;
}

/**
 * The presented credential against GATEWAY_API_KEYS. Digests have one
 * length, so timingSafeEqual applies, and every key is compared every time:
 * response time says nothing about which key (or how much of one) matched.
 */
export function registerAuth(app: FastifyInstance, keys: readonly string[]): void {
  if (keys.length === 0) return;
  const known = keys.map((k) => ({ digest: digest(k), id: keyIdOf(k) }));
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config.public) return done();
    const credential = presentedCredential(request.headers);
    if (credential === null) return done(new GatewayError('unauthorized', 'Missing API key: send Authorization: Bearer <key> or x-api-key: <key>'));
    const presented = digest(credential);
    let id: string | null = null;
    for (const k of known) if (timingSafeEqual(presented, k.digest)) id = k.id;
    if (id === null) return done(new GatewayError('unauthorized', 'Incorrect API key provided'));
    request.summary.keyId = id;
    request.summary.limitKey = id;
    done();
  });
}
