import type { MemoryStreamStore } from './memory-store.js';
import type { ReadableLog, StreamLog } from './stream-log.js';

/**
 * Where a stream can be found: this process's store first, then (with
 * REDIS_URL) the shared mirror, so a reconnect that lands on another replica
 * resumes there. Without Redis it is the local store alone.
 */
export interface SharedStreams {
  publish(log: StreamLog, request: string | null): Promise<void>;
  open(id: string): Promise<ReadableLog | null>;
  owner(id: string): Promise<string | null>;
  readers(id: string): Promise<number>;
  requestAbort(id: string): Promise<void>;
  close(): Promise<void>;
}

export class StreamDirectory {
  constructor(
    private readonly store: MemoryStreamStore,
    private readonly shared: SharedStreams | null,
  ) {}

  /**
   * Makes a local log visible to other replicas (no-op without Redis); resolves once it is.
   * The request is kept with it, so another replica can finish the generation if this one dies.
   */
  async publish(log: StreamLog, request: object | null): Promise<void> {
    await this.shared?.publish(log, request === null ? null : JSON.stringify(request));
  }

  async open(id: string): Promise<ReadableLog | null> {
    return this.store.get(id) ?? (this.shared ? this.shared.open(id) : null);
  }

  async owner(id: string): Promise<string | null> {
    const local = this.store.get(id);
    if (local) return local.ownerKeyId;
    return this.shared ? this.shared.owner(id) : null;
  }

  /** Readers attached on other replicas. */
  async remoteReaders(id: string): Promise<number> {
    return this.shared ? this.shared.readers(id) : 0;
  }

  /** Asks whichever replica runs the generation to abort it. */
  async requestAbort(id: string): Promise<void> {
    await this.shared?.requestAbort(id);
  }
}
