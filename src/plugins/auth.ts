import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Identity } from '../auth/identity.js';
import { JwtVerifier } from '../auth/jwt-verifier.js';
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

// Room for a JWT: an IdP's access token with roles and groups runs to a few KB.
const BEARER = /^Bearer[ \t]+(\S{1,8192})[ \t]*$/i;
const API_KEY = /^\S{1,8192}$/;

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
 * Who the request is, once, before anything else looks: the presented
 * credential against GATEWAY_API_KEYS first (a bearer that is one of them is
 * a key), then, with JWT auth configured, as a JWT (anything else must be
 * one). Digests have one length, so timingSafeEqual applies, and every key
 * is compared every time: response time says nothing about which key (or
 * how much of one) matched. A token verified before is found by the same
 * digest (auth/verified-tokens.ts). Sets `request.summary.identity`, which
 * limits, ownership and the log line read.
 */
export function registerAuth(app: FastifyInstance, keys: readonly string[], jwt: JwtVerifier | null): void {
  if (keys.length === 0 && jwt === null) return;
  const known = keys.map((k) => ({ digest: digest(k), identity: { kind: 'key', id: keyIdOf(k) } as Identity }));
  const missing = jwt
    ? 'Missing API key or token: send Authorization: Bearer <key or JWT> or x-api-key: <key or JWT>'
    : 'Missing API key: send Authorization: Bearer <key> or x-api-key: <key>';
  // A callback hook, not an async one: no promise for a key, or a token verified before.
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.routeOptions.config.public) return done();
    const credential = presentedCredential(request.headers);
    if (credential === null) return done(new GatewayError('unauthorized', missing));
    const presented = digest(credential);
    let identity: Identity | null = null;
    for (const k of known) if (timingSafeEqual(presented, k.digest)) identity = k.identity;
    if (identity !== null) {
      request.summary.identity = identity;
      return done();
    }
    if (jwt === null) return done(new GatewayError('unauthorized', 'Incorrect API key provided'));
    const seen = jwt.cached(presented);
    if (seen !== null) {
      request.summary.identity = seen;
      return done();
    }
    if (!JwtVerifier.looksLikeJwt(credential)) return done(new GatewayError('unauthorized', 'Incorrect API key or token: not a key of this gateway, and not a JWT'));
    jwt.verify(credential, presented).then((user) => {
      request.summary.identity = user;
      done();
    }, done);
  });
}
