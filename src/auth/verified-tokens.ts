import type { Identity } from './identity.js';

/**
 * Tokens already verified, by the SHA-256 of the token (the digest the static
 * key check computes anyway), until their `exp` (+ leeway). A browser sends
 * the same token with every request for its lifetime, and a signature check
 * through WebCrypto costs a thread-pool round trip; a hit costs a Map lookup.
 * Envoy's jwt_authn keeps the same kind of cache. Only successes are kept;
 * the owner clears it when the key set changes, so a withdrawn key stops
 * passing at once. Bounded: past `max`, the oldest entry goes first.
 */
export class VerifiedTokens {
  private readonly byDigest = new Map<string, { identity: Identity; untilMs: number }>();

  constructor(private readonly max = 10_000) {}

  get(digest: Buffer, now = Date.now()): Identity | null {
    const key = digest.toString('latin1');
    const hit = this.byDigest.get(key);
    if (hit === undefined) return null;
    if (now <= hit.untilMs) return hit.identity;
    this.byDigest.delete(key);
    return null;
  }

  set(digest: Buffer, identity: Identity, untilMs: number): void {
    const key = digest.toString('latin1');
    if (!this.byDigest.has(key) && this.byDigest.size >= this.max) this.byDigest.delete(this.byDigest.keys().next().value!);
    this.byDigest.set(key, { identity, untilMs });
  }

  clear(): void {
    this.byDigest.clear();
  }

  get size(): number {
    return this.byDigest.size;
  }
}
