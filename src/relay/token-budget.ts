import type { Redis } from 'ioredis';
import { GatewayError } from '../errors.js';

/**
 * Tokens per key per minute (TOKENS_PER_MINUTE), counted from the usage the
 * upstream reports (estimated from text when it reports none). A request is
 * refused while its key's current minute is spent; what it then uses is
 * counted when it ends. With Redis every replica counts in one place.
 */

const WINDOW_MS = 60_000;

export interface BudgetStore {
  used(key: string, window: number): Promise<number>;
  add(key: string, window: number, tokens: number): Promise<void>;
}

export class MemoryBudgetStore implements BudgetStore {
  private readonly counts = new Map<string, { window: number; used: number }>();

  async used(key: string, window: number): Promise<number> {
    const c = this.counts.get(key);
    return c && c.window === window ? c.used : 0;
  }

  async add(key: string, window: number, tokens: number): Promise<void> {
    const c = this.counts.get(key);
    if (c && c.window === window) c.used += tokens;
    else this.counts.set(key, { window, used: tokens });
    // Keys of past windows go: the map holds at most the keys active this minute.
    if (this.counts.size > 10_000) for (const [k, v] of this.counts) if (v.window < window) this.counts.delete(k);
  }
}

export class RedisBudgetStore implements BudgetStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(key: string, window: number): string {
    return `${this.prefix}tpm:${key}:${window}`;
  }

  async used(key: string, window: number): Promise<number> {
    return Number((await this.redis.get(this.key(key, window))) ?? 0);
  }

  async add(key: string, window: number, tokens: number): Promise<void> {
    const k = this.key(key, window);
    // One round trip (auto-pipelined): a non-streamed answer waits for this before it leaves.
    await Promise.all([this.redis.incrby(k, tokens), this.redis.pexpire(k, 2 * WINDOW_MS)]);
  }
}

export class TokenBudget {
  constructor(
    private readonly limit: number,
    private readonly store: BudgetStore,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.limit > 0;
  }

  /** Throws 429 while the key's tokens for this minute are spent. */
  async check(key: string): Promise<void> {
    if (!this.enabled) return;
    const now = this.now();
    const window = Math.floor(now / WINDOW_MS);
    const used = await this.store.used(key, window);
    if (used < this.limit) return;
    const reset = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
    throw new GatewayError('token_budget_exceeded', `Token budget reached: ${this.limit} tokens per minute; retry in ${reset}s`, {
      headers: { 'retry-after': String(reset), 'x-ratelimit-limit-tokens': String(this.limit), 'x-ratelimit-remaining-tokens': '0' },
    });
  }

  record(key: string, tokens: number): Promise<void> {
    if (!this.enabled || tokens <= 0) return Promise.resolve();
    return this.store.add(key, Math.floor(this.now() / WINDOW_MS), Math.ceil(tokens));
  }
}

/** Tokens a request used: the upstream's usage, else ~4 characters per token of prompt, one per chunk of answer. */
export function tokensUsed(usage: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null, promptChars: number, chunks: number): number {
  if (usage) return usage.total_tokens ?? (usage.prompt_tokens ?? 0) + (usage.completion_tokens ?? 0);
  return Math.ceil(promptChars / 4) + chunks;
}
