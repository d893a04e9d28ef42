/**
 * Ended streams' records in Redis, bounded like the replica's own store:
 * STREAM_STORE_MAX_BYTES of events and limits.maxStreams per replica, and
 * the stream TTL. Each replica lists the streams it ended in a sorted set
 * (score: end time; member: "<bytes> <id>") with their byte total; ending a
 * stream drops, oldest end first, whatever is past a bound, in the same script
 * that records the end. A replica's own store holds every stream it ended
 * (the Redis set only the mirrored ones) under the same bounds, so it drops a
 * stream no later than Redis does: once Redis has dropped it, every replica
 * answers 404.
 *
 * Keys of the dropped streams are named in the script, not passed as KEYS:
 * this needs a single Redis (or one hash slot), as the rest of the mirror does.
 */

// KEYS: lease, record, meta, ended set, ended bytes.
// ARGV: this replica, message, channel, TTL, now (ms), the stream's bytes, its id, key prefix, max bytes, max streams.
export const FINISH = `
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('xadd', KEYS[2], '*', 'm', ARGV[2])
redis.call('publish', ARGV[3], ARGV[2])
redis.call('del', KEYS[1])
local ttl, now, size, id = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local ns, maxBytes, maxStreams = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
-- One larger than the bound is never kept (and makes no room); 0 keeps none, not even one with no events.
if size > maxBytes or maxBytes == 0 then
  redis.call('del', KEYS[2], KEYS[3], ns .. 'readers:' .. id)
  return 1
end
redis.call('pexpire', KEYS[2], ttl)
redis.call('pexpire', KEYS[3], ttl)
-- Only a takeover of a running stream reads the request.
redis.call('hdel', KEYS[3], 'request')
local total = redis.call('incrby', KEYS[5], size)
redis.call('zadd', KEYS[4], now, size .. ' ' .. id)
-- Records past their TTL are gone already: stop counting them.
for _, m in ipairs(redis.call('zrangebyscore', KEYS[4], '-inf', now - ttl, 'LIMIT', 0, 256)) do
  total = total - tonumber(string.match(m, '^%d+'))
  redis.call('zrem', KEYS[4], m)
end
-- Past a bound, the stream that ended first goes first.
while total > maxBytes or redis.call('zcard', KEYS[4]) > maxStreams do
  local first = redis.call('zpopmin', KEYS[4])
  if #first == 0 then
    total = 0
    break
  end
  local bytes, gone = string.match(first[1], '^(%d+) (.+)$')
  total = total - tonumber(bytes)
  redis.call('del', ns .. 'log:' .. gone, ns .. 'meta:' .. gone, ns .. 'readers:' .. gone)
end
redis.call('set', KEYS[5], total, 'PX', ttl)
redis.call('pexpire', KEYS[4], ttl)
return 1`;

export type FinishCommand = {
  finishIfLeased(
    lease: string,
    record: string,
    meta: string,
    ended: string,
    endedBytes: string,
    me: string,
    message: string,
    channel: string,
    ttlMs: number,
    now: number,
    bytes: number,
    id: string,
    prefix: string,
    maxBytes: number,
    maxStreams: number,
  ): Promise<number>;
};

export interface RetentionLimits {
  /** Bytes of events of ended streams kept per replica (STREAM_STORE_MAX_BYTES). */
  maxBytes: number;
  /** Ended streams kept per replica (limits.maxStreams). */
  maxStreams: number;
}
