import type { FastifyBaseLogger } from 'fastify';
import { jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import type { JwtConfig } from '../config.js';
import { GatewayError } from '../errors.js';
import { userIdOf, type Identity } from './identity.js';
import { JwksKeys, type JwksStatus } from './jwks-keys.js';
import { jwtRejection } from './jwt-rejection.js';
import { VerifiedTokens } from './verified-tokens.js';

/**
 * Only asymmetric algorithms from a JWKS: a token that names HS256 and is
 * "signed" with the provider's public key (algorithm confusion) or names
 * `none` is refused before any key is looked up. Ed25519 is EdDSA's
 * fully-specified name (RFC 9864).
 */
const JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA', 'Ed25519'];
const SECRET_ALGORITHMS = ['HS256'];
/** `exp` and `nbf` pass this many seconds either side: clocks of the IdP, the browser and us drift. */
const LEEWAY_SECONDS = 30;
/** Three base64url parts (the last empty for `alg: none`, which is refused by name). */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_MODELS = 1000;

/** A token's signature and claims, against AUTH_JWKS_URL or AUTH_JWT_SECRET; its user as an Identity. */
export class JwtVerifier {
  /** Null in HS256 mode. */
  readonly jwks: JwksKeys | null;
  private readonly algorithms: string[];
  private readonly check: (token: string) => Promise<JWTPayload>;
  private readonly verified = new VerifiedTokens();

  constructor(config: JwtConfig, log: FastifyBaseLogger) {
    this.algorithms = config.jwksUrl ? JWKS_ALGORITHMS : SECRET_ALGORITHMS;
    const options: JWTVerifyOptions = {
      algorithms: this.algorithms,
      clockTolerance: LEEWAY_SECONDS,
      // A token that never expires is the static key again; `sub` is whom limits count against.
      requiredClaims: ['exp', 'sub'],
      ...(config.issuer ? { issuer: config.issuer } : {}),
      ...(config.audience ? { audience: config.audience } : {}),
    };
    if (config.jwksUrl) {
      // A key set that changed may have withdrawn the key of a token verified before.
      const jwks = new JwksKeys({ ...config, jwksUrl: config.jwksUrl }, log, () => this.verified.clear());
      this.jwks = jwks;
      this.check = async (token) => (await jwtVerify(token, jwks.getKey, options)).payload;
    } else {
      // Imported once: jose would import raw bytes into a CryptoKey on every call.
      const secret = crypto.subtle.importKey('raw', new TextEncoder().encode(config.secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      this.jwks = null;
      this.check = async (token) => (await jwtVerify(token, await secret, options)).payload;
    }
  }

  /** Whether a credential is shaped like a JWT at all (else it is a wrong key, not a bad token). */
  static looksLikeJwt(credential: string): boolean {
    return COMPACT_JWS.test(credential);
  }

  start(): void {
    this.jwks?.start();
  }

  close(): void {
    this.jwks?.close();
  }

  status(): JwksStatus | null {
    return this.jwks?.status() ?? null;
  }

  /** The user of a token verified before and not expired since, by its SHA-256; no promise. */
  cached(digest: Buffer): Identity | null {
    return this.verified.get(digest);
  }

  /** The token's user; 401 `unauthorized` saying what is wrong, or 503 `jwks_unavailable`. */
  async verify(token: string, digest: Buffer): Promise<Identity> {
    let payload: JWTPayload;
    try {
      payload = await this.check(token);
    } catch (e) {
      throw jwtRejection(e, this.algorithms);
    }
    const identity = userIdentity(payload);
    // requiredClaims made exp a number: the token stays good until then, leeway included.
    this.verified.set(digest, identity, ((payload.exp as number) + LEEWAY_SECONDS) * 1000);
    return identity;
  }
}

function userIdentity(payload: JWTPayload): Identity {
  const { sub, models } = payload;
  if (typeof sub !== 'string' || sub === '') throw invalid('sub must be a non-empty string');
  if (models === undefined) return { kind: 'user', id: userIdOf(sub), models: null };
  if (!Array.isArray(models) || models.length > MAX_MODELS || !models.every((m) => typeof m === 'string')) {
    throw invalid('the models claim must be an array of model ids');
  }
  return { kind: 'user', id: userIdOf(sub), models: new Set(models as string[]) };
}

const invalid = (why: string) => new GatewayError('unauthorized', `Invalid token: ${why}`);
