import { randomBytes } from 'node:crypto';
import { StreamLog } from './stream-log.js';

export interface StreamStoreLimits {
  /** How long a finished stream stays readable. */
  ttlMs: number;
  /** Streams kept in all; the oldest finished ones go first when full. */
  maxStreams: number;
  /** Bytes of events kept for finished streams (STREAM_STORE_MAX_BYTES); the oldest finished ones go first past it. 0 keeps none. */
  maxBytes: number;
}

// CSPRNG bytes drawn 4 KB at a time: one syscall per 256 ids instead of one each.
let pool = Buffer.alloc(0);
let poolAt = 0;

/** 128 random bits, URL-safe: the id is the read capability, so it must be unguessable. */
export function newStreamId(): string {
  if (poolAt + 16 > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  const id = 'str_' + pool.toString('base64url', poolAt, poolAt + 16);
  poolAt += 16;
  return id;
}

/**
 * In-process stream logs. Running ones are all kept (each is bounded by
 * limits.maxEventsPerStream); finished ones are kept for resume, bounded in
 * bytes, in count and in time after their end.
 */
export class MemoryStreamStore {
  private readonly logs = new Map<string, StreamLog>();
  /** Bytes of events and number of the finished logs kept (every finished log in `logs`). */
  private keptBytes = 0;
  private keptCount = 0;
  /**
   * Finished logs in the order they ended, from `head` on (some may be gone from `logs` already).
   * Eviction and expiry take from the front: a full store scanning its Map for the oldest finished
   * log walked every hole its deletions left (~7 µs per new stream at 10,000 kept, ~30 at 100,000).
   */
  private finished: (StreamLog | null)[] = [];
  private head = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly limits: StreamStoreLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(limits.ttlMs, 30_000)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.logs.size;
  }

  /** Bytes of events held for finished streams (gateway_stream_store_bytes). */
  get finishedBytes(): number {
    return this.keptBytes;
  }

  /** Finished streams kept for resume (gateway_stream_store_streams). */
  get finishedCount(): number {
    return this.keptCount;
  }

  create(ownerKeyId: string, id = newStreamId()): StreamLog {
    if (this.logs.size >= this.limits.maxStreams) this.evictOldestFinished();
    const log = new StreamLog(id, ownerKeyId, this.onFinished);
    this.logs.set(log.id, log);
    return log;
  }

  get(id: string): StreamLog | undefined {
    const log = this.logs.get(id);
    if (log?.end && this.now() - log.endedAt > this.limits.ttlMs) {
      this.forget(log);
      return undefined;
    }
    return log;
  }

  delete(id: string): void {
    const log = this.logs.get(id);
    if (log) this.forget(log);
  }

  sweep(): void {
    const cutoff = this.now() - this.limits.ttlMs;
    while (this.head < this.finished.length && this.finished[this.head]!.endedAt <= cutoff) this.forget(this.shift());
    this.trimQueue();
  }

  close(): void {
    clearInterval(this.sweeper);
    this.logs.clear();
    this.finished = [];
    this.head = 0;
    this.keptBytes = 0;
    this.keptCount = 0;
  }

  /** A log has ended: count it, make room by bytes, and keep it compact. */
  private readonly onFinished = (log: StreamLog): void => {
    // Dropped before its end (a failed start, a hand-over): nothing to keep.
    if (this.logs.get(log.id) !== log) return;
    // One larger than the bound is never kept (and makes no room); 0 keeps none, not even a log with no events.
    if (log.bytes > this.limits.maxBytes || this.limits.maxBytes === 0) {
      this.logs.delete(log.id);
      return;
    }
    this.finished.push(log);
    this.keptBytes += log.bytes;
    this.keptCount++;
    while (this.keptBytes > this.limits.maxBytes) if (!this.evictOldestFinished()) break;
    log.compact();
  };

  /** Removes the log that ended first and is still kept; false when every kept log is running. */
  private evictOldestFinished(): boolean {
    let evicted = false;
    while (this.head < this.finished.length && !evicted) evicted = this.forget(this.shift());
    this.trimQueue();
    return evicted;
  }

  /** Takes the log that ended first off the queue, clearing its slot: a dropped log's events must not stay reachable from here. */
  private shift(): StreamLog {
    const log = this.finished[this.head]!;
    this.finished[this.head++] = null;
    return log;
  }

  /** Deletes `log` if the store still holds it (not a newer log under its id); whether it did. */
  private forget(log: StreamLog): boolean {
    if (this.logs.get(log.id) !== log) return false;
    this.logs.delete(log.id);
    // A log in the store that has ended was counted then: finish() tells the store before anyone else looks.
    if (log.end) {
      this.keptBytes -= log.bytes;
      this.keptCount--;
    }
    return true;
  }

  private trimQueue(): void {
    if (this.head > 1024 && this.head * 2 > this.finished.length) {
      this.finished = this.finished.slice(this.head);
      this.head = 0;
    }
  }
}
