import type { FastifyBaseLogger } from 'fastify';
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';
import type { JwtConfig } from '../config.js';
import { GatewayError } from '../errors.js';

/** What /readyz says about the key set (snake_case, as the other bodies). */
export interface JwksStatus {
  status: 'ok' | 'pending' | 'unavailable';
  /** Keys cached: tokens signed by these pass whether or not the provider answers now. */
  keys_cached: number;
  fetched_at: string | null;
  reason?: string;
}

type RemoteSet = ReturnType<typeof createRemoteJWKSet>;

/**
 * The identity provider's key set (AUTH_JWKS_URL), cached, behind jose's
 * `createRemoteJWKSet` (fetch, timeout, key selection and import cache).
 *
 * Refetching is decided here rather than by jose, because jose's getKey
 * cannot tell "the key is unknown" (401) from "the key set could not be
 * fetched" (503): jose gets an infinite cacheMaxAge and cooldown, so it only
 * fetches when `refresh()` asks. A token whose `kid` is not cached refetches
 * at most once per `jwksCooldownMs`; after a failed fetch such tokens get 503
 * for `jwksRetryMs` (the IdP is not hammered by every request); cached keys
 * keep working through any outage, and a timer refetches every
 * `jwksRefreshMs` so keys the provider withdrew stop passing.
 */
export class JwksKeys {
  private readonly remote: RemoteSet;
  /** The `kid`s of the cached set (jose's `jwks()` deep-copies the set: too dear per request). */
  private kids: ReadonlySet<string> | null = null;
  private keyCount = 0;
  private fetchedAt: number | null = null;
  private failedAt: number | null = null;
  private failure: string | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: JwtConfig & { jwksUrl: string },
    private readonly log: FastifyBaseLogger,
    /** Called when a fetch finds another set of kids than the one cached. */
    private readonly onChange: () => void = () => {},
  ) {
    this.remote = createRemoteJWKSet(new URL(config.jwksUrl), {
      timeoutDuration: config.jwksTimeoutMs,
      cacheMaxAge: Number.POSITIVE_INFINITY,
      cooldownDuration: Number.POSITIVE_INFINITY,
    });
  }

  /** First fetch in the background: a provider that is down never stops the start. */
  start(): void {
    const url = new URL(this.config.jwksUrl);
    if (url.protocol === 'http:' && !/^(127\.|localhost$|\[::1\]$)/.test(url.hostname)) {
      this.log.warn('AUTH_JWKS_URL is plain http: anyone on the path to it can substitute signing keys');
    }
    void this.refresh().catch(() => {});
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.config.jwksRefreshMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** jose's key resolver for jwtVerify: the key for the token's header, fetched first when not cached. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    if (!this.holds(header.kid)) await this.refetchForUnknownKey();
    return this.remote(header, token);
  };

  status(): JwksStatus {
    const fetched_at = this.fetchedAt === null ? null : new Date(this.fetchedAt).toISOString();
    if (this.failure !== null) return { status: 'unavailable', keys_cached: this.keyCount, fetched_at, reason: this.failure };
    return { status: this.kids ? 'ok' : 'pending', keys_cached: this.keyCount, fetched_at };
  }

  /** Fetches the set now (deduplicated with a fetch already running); throws 503 when it cannot be had. */
  async refresh(): Promise<void> {
    try {
      await this.remote.reload();
    } catch (e) {
      const was = this.failure;
      this.failedAt = Date.now();
      this.failure = `cannot fetch AUTH_JWKS_URL: ${describe(e, this.config.jwksTimeoutMs)}`;
      // One line when the provider becomes unreachable, not one per request while it stays so.
      if (was === null) this.log.warn({ keys_cached: this.keyCount }, this.failure);
      throw this.unavailable();
    }
    const keys = this.remote.jwks()?.keys ?? [];
    const kids = new Set(keys.flatMap((k) => (typeof k.kid === 'string' ? [k.kid] : [])));
    const changed = this.kids !== null && (kids.size !== this.kids.size || keys.length !== this.keyCount || [...kids].some((k) => !this.kids!.has(k)));
    this.kids = kids;
    this.keyCount = keys.length;
    if (changed) this.onChange();
    this.fetchedAt = Date.now();
    if (this.failure !== null) this.log.info({ keys_cached: this.keyCount }, 'AUTH_JWKS_URL fetched again');
    this.failedAt = null;
    this.failure = null;
  }

  /** A token without `kid` is matched by jose on the key type, as long as there is a set to match in. */
  private holds(kid: string | undefined): boolean {
    return this.kids !== null && (kid === undefined || this.kids.has(kid));
  }

  private async refetchForUnknownKey(): Promise<void> {
    const now = Date.now();
    // The last try failed: the key may be new, or may not exist; neither can be known yet.
    if (this.failedAt !== null && now < this.failedAt + this.config.jwksRetryMs) throw this.unavailable();
    // Fetched a moment ago: the key is unknown (jose answers JWKSNoMatchingKey → 401).
    if (this.failedAt === null && this.fetchedAt !== null && now < this.fetchedAt + this.config.jwksCooldownMs) return;
    await this.refresh();
  }

  private unavailable(): GatewayError {
    const waitMs = this.failedAt === null ? this.config.jwksRetryMs : this.failedAt + this.config.jwksRetryMs - Date.now();
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    return new GatewayError('jwks_unavailable', "The identity provider's signing keys cannot be fetched right now, and this token's key is not cached", {
      headers: { 'retry-after': String(seconds) },
    });
  }
}

/** Why a fetch failed, in a few words for the log and /readyz (never a token: there is none in it). */
function describe(e: unknown, timeoutMs: number): string {
  if (e instanceof errors.JWKSTimeout) return `no answer within ${timeoutMs} ms`;
  if (e instanceof errors.JWKSInvalid) return 'the answer is not a JSON Web Key Set';
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const text = cause?.code ?? cause?.message ?? (e as Error).message ?? String(e);
  return text.slice(0, 200);
}
