import { createHash } from 'node:crypto';

/**
 * Whom a request counts against, decided once per request (plugins/auth.ts;
 * the client address without auth). Its `id` is what rate limits,
 * concurrency slots, token budgets and stream ownership key on, and what the
 * log line names: never a secret, never a raw `sub`.
 */
export type Identity =
  /** One of GATEWAY_API_KEYS: `key_` + a hash prefix of the key. */
  | { readonly kind: 'key'; readonly id: string }
  /** A signed-in user: `sub_` + a hash prefix of the JWT's `sub`; `models` from its optional claim (null: any). */
  | { readonly kind: 'user'; readonly id: string; readonly models: ReadonlySet<string> | null }
  /** No auth configured: the client IP. */
  | { readonly kind: 'ip'; readonly id: string };

/**
 * A user's id: 64 bits of SHA-256 over `sub`, so two users sharing limits or
 * streams by collision is out of reach, and the log holds no user id an
 * operator could read off directly (a guessable `sub` can still be hashed and
 * compared: pseudonymous, not anonymous).
 */
export function userIdOf(sub: string): string {
  return 'sub_' + createHash('sha256').update(sub).digest('hex').slice(0, 16);
}

/** Whether the identity may use a model: only a token's `models` claim restricts. */
export function mayUseModel(identity: Identity, model: string): boolean {
  return identity.kind !== 'user' || identity.models === null || identity.models.has(model);
}
