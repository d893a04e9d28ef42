import { randomBytes } from 'node:crypto';
import { StreamLog } from './stream-log.js';

export interface StreamStoreLimits {
  /** How long a finished stream stays readable. */
  ttlMs: number;
  /** Streams kept in all; the oldest finished ones go first when full. */
  maxStreams: number;
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

/** In-process stream logs: bounded in count and in time after the end. */
export class MemoryStreamStore {
  private readonly logs = new Map<string, StreamLog>();
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

  create(ownerKeyId: string, id = newStreamId()): StreamLog {
    if (this.logs.size >= this.limits.maxStreams) this.evictOldestFinished();
    const log = new StreamLog(id, ownerKeyId);
    this.logs.set(log.id, log);
    return log;
  }

  get(id: string): StreamLog | undefined {
    const log = this.logs.get(id);
    if (log?.end && this.now() - log.endedAt > this.limits.ttlMs) {
      this.logs.delete(id);
      return undefined;
    }
    return log;
  }

  delete(id: string): void {
    this.logs.delete(id);
  }

  sweep(): void {
    const cutoff = this.now() - this.limits.ttlMs;
    for (const [id, log] of this.logs) if (log.end && log.endedAt <= cutoff) this.logs.delete(id);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.logs.clear();
  }

  private evictOldestFinished(): void {
    // Map iteration is insertion order: the first finished log is the oldest.
    for (const [id, log] of this.logs) {
      if (log.end) {
        this.logs.delete(id);
        return;
      }
    }
  }
}
