import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { JWKS_TIMINGS, type JwtConfig } from '../../src/config.js';

export type Alg = 'RS256' | 'ES256' | 'EdDSA';

/** A signing key of the test identity provider: its private half signs, its public JWK is published. */
export interface TestKey {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

export async function makeKey(alg: Alg, kid = `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

export interface SignOptions {
  /** Seconds from now; default 600. */
  expiresIn?: number;
  /** Seconds from now. */
  notBefore?: number;
  issuer?: string;
  audience?: string | string[];
  /** Header overrides (e.g. another kid). */
  header?: Record<string, unknown>;
}

/** A JWT for `sub` signed with `key`; `iat` now, `exp` in 10 minutes unless told otherwise. */
export function sign(key: TestKey, claims: JWTPayload & { sub?: string }, opts: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header })
    .setIssuedAt(now)
    .setExpirationTime(now + (opts.expiresIn ?? 600));
  if (opts.notBefore !== undefined) jwt.setNotBefore(now + opts.notBefore);
  if (opts.issuer) jwt.setIssuer(opts.issuer);
  if (opts.audience) jwt.setAudience(opts.audience);
  return jwt.sign(key.privateKey);
}

const b64url = (v: string | Buffer) => Buffer.from(v).toString('base64url');

/** An unsigned token (`alg: none`), as an attacker would send it. */
export function unsignedToken(claims: JWTPayload): string {
  const now = Math.floor(Date.now() / 1000);
  return `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ iat: now, exp: now + 600, ...claims }))}.`;
}

/** A JWT with the given header, HMAC-SHA256-signed with `secret` (for the algorithm-confusion attack). */
export async function hmacToken(header: Record<string, unknown>, claims: JWTPayload, secret: Uint8Array): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT', ...header }))}.${b64url(JSON.stringify({ iat: now, exp: now + 600, ...claims }))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/**
 * The identity provider's JWKS endpoint, on 127.0.0.1:0: publishes the keys
 * it is given, counts fetches, and can be made to fail (a 503, as an IdP
 * outage looks to a fetch) and to come back.
 */
export class JwksServer {
  keys: TestKey[] = [];
  fetches = 0;
  failing = false;
  private server: Server | null = null;
  url = '';
  private readonly waiters: (() => void)[] = [];

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.fetches++;
      for (const w of this.waiters.splice(0)) w();
      if (this.failing || req.url !== '/.well-known/jwks.json') {
        res.writeHead(this.failing ? 503 : 404, { 'content-type': 'text/plain' }).end('unavailable');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
    return this;
  }

  /** Resolves once the fetch count reaches `n` (fetches happen in the gateway's own time). */
  async fetched(n: number): Promise<void> {
    for (let i = 0; this.fetches < n; i++) {
      if (i > 1000) throw new Error(`JWKS fetched ${this.fetches} times, waited for ${n}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

/** The gateway's JWT config for a JWKS URL (timings as in production unless overridden). */
export function jwksConfig(jwksUrl: string, extra: Partial<JwtConfig> = {}): { jwt: JwtConfig } {
  return { jwt: { ...JWKS_TIMINGS, jwksUrl, ...extra } };
}

/** An address nothing listens on (a port just closed): an IdP that is down. */
export async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}/.well-known/jwks.json`;
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
