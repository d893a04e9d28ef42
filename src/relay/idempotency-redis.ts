import type { Redis } from 'ioredis';
import type { KeyRecords } from './idempotency.js';

/** SET NX that says what was there: portable to Redis before 7 (which refuses NX with GET). */
const RESERVE = `
local held = redis.call('GET', KEYS[1])
if held then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Compare-and-set (or delete, for an empty value). */
const SWAP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`;

/**
 * Idempotency records shared by every replica (REDIS_URL), under the
 * gateway's namespace: a retry that lands on another replica attaches to the
 * stream the first POST started there. Each expires with its stream's retention.
 */
export class RedisKeyRecords implements KeyRecords {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async reserve(key: string, value: string, ttlMs: number): Promise<string | null> {
    return (await this.redis.eval(RESERVE, 1, this.prefix + key, value, ttlMs)) as string | null;
  }

  async swap(key: string, expected: string, value: string | null, ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(SWAP, 1, this.prefix + key, expected, value ?? '', ttlMs)) === 1;
  }

  get(key: string): Promise<string | null> {
    return this.redis.get(this.prefix + key);
  }
}
