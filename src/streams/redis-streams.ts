import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import type { SharedStreams } from './directory.js';
import { FramedBatches } from './framed-batches.js';
import type { LogMirror, LogReader, ReadableLog, StreamEnd, StreamLog } from './stream-log.js';

/**
 * Stream logs shared through Redis, so a reader whose reconnect lands on
 * another replica resumes there without a gap. The replica running the
 * generation appends each batch to a Redis Stream (the replayable record) and
 * publishes it (the live feed); a reader elsewhere subscribes first, then
 * reads the record, and drops what it already has by event id.
 *
 * Messages: `D<firstId>,<count>\n<framed events>` and `E<finalId>\n<end JSON>`.
 */

export interface RedisStreamsOptions {
  url: string;
  /** Key prefix, so several deployments (or test runs) can share one Redis. */
  namespace: string;
  /** How long keys live while a generation runs, and after it ended. */
  liveTtlMs: number;
  endedTtlMs: number;
  log: FastifyBaseLogger;
}

export class RedisStreams implements SharedStreams, LogMirror {
  /** Commands; auto-pipelined, so a batch's XADD and PUBLISH travel together. */
  readonly client: Redis;
  private readonly sub: Redis;
  private readonly following = new Map<string, Set<RemoteLog>>();
  /** Set by the app: abort a generation running here (a DELETE that landed elsewhere). */
  onAbortRequest: ((id: string) => void) | null = null;

  constructor(private readonly opts: RedisStreamsOptions) {
    const common = { lazyConnect: true, maxRetriesPerRequest: 2, enableAutoPipelining: true, connectTimeout: 3000 };
    this.client = new Redis(opts.url, common);
    this.sub = new Redis(opts.url, { ...common, enableAutoPipelining: false });
    for (const c of [this.client, this.sub]) c.on('error', (e: Error) => opts.log.warn({ err: e.message }, 'redis error'));
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
  }

  get namespace(): string {
    return this.opts.namespace;
  }

  private key(kind: string, id: string): string {
    return `${this.opts.namespace}${kind}:${id}`;
  }

  private get control(): string {
    return `${this.opts.namespace}control`;
  }

  /** Connects both connections; throws with a one-line reason when Redis cannot be reached. */
  async connect(): Promise<void> {
    await Promise.all([this.client.connect(), this.sub.connect()]);
    await this.sub.subscribe(this.control);
  }

  async close(): Promise<void> {
    this.following.clear();
    await Promise.allSettled([this.client.quit(), this.sub.quit()]);
  }

  async publish(log: StreamLog): Promise<void> {
    // What the log already holds (a chat stream publishes after its first batch) goes first.
    if (log.lastId > 0) this.onAppend(log, log.textAfter(0), 1, log.lastId);
    if (log.end) this.onFinish(log, log.end, log.finalId);
    log.mirror = this;
    const meta = this.key('meta', log.id);
    await Promise.all([this.client.hset(meta, 'owner', log.ownerKeyId), this.client.pexpire(meta, this.opts.liveTtlMs)]).catch(this.warn);
  }

  onAppend(log: StreamLog, text: string, firstId: number, count: number): void {
    this.send(log.id, 'D' + firstId + ',' + count + '\n' + text, firstId === 1 ? this.opts.liveTtlMs : 0);
  }

  onFinish(log: StreamLog, end: StreamEnd, finalId: number): void {
    this.send(log.id, 'E' + finalId + '\n' + JSON.stringify(end), this.opts.endedTtlMs);
    this.client.pexpire(this.key('meta', log.id), this.opts.endedTtlMs).catch(this.warn);
  }

  private send(id: string, message: string, ttlMs: number): void {
    const record = this.key('log', id);
    // Record first, then announce: a reader that missed the announcement finds it in the record.
    this.client.xadd(record, '*', 'm', message).catch(this.warn);
    this.client.publish(this.key('ch', id), message).catch(this.warn);
    if (ttlMs > 0) this.client.pexpire(record, ttlMs).catch(this.warn);
  }

  async open(id: string): Promise<ReadableLog | null> {
    const remote = new RemoteLog(id, this);
    await this.follow(remote);
    const [owner, entries] = await Promise.all([this.client.hget(this.key('meta', id), 'owner'), this.record(id)]);
    if (owner === null && entries.length === 0) {
      this.unfollow(remote);
      return null;
    }
    for (const m of entries) remote.ingest(m);
    return remote;
  }

  /** Every message in a stream's record, in order. */
  async record(id: string): Promise<string[]> {
    const entries = await this.client.xrange(this.key('log', id), '-', '+');
    return entries.map(([, fields]) => fields[1] ?? '');
  }

  async owner(id: string): Promise<string | null> {
    return this.client.hget(this.key('meta', id), 'owner');
  }

  async readers(id: string): Promise<number> {
    return Number((await this.client.get(this.key('readers', id))) ?? 0);
  }

  async requestAbort(id: string): Promise<void> {
    await this.client.publish(this.control, JSON.stringify({ op: 'abort', id }));
  }

  /** Counts a reader attached on this replica, for the generating replica's grace period. */
  countReader(id: string, delta: 1 | -1): void {
    const key = this.key('readers', id);
    this.client.incrby(key, delta).catch(this.warn);
    this.client.pexpire(key, this.opts.liveTtlMs).catch(this.warn);
  }

  private async follow(remote: RemoteLog): Promise<void> {
    const channel = this.key('ch', remote.id);
    let set = this.following.get(channel);
    if (!set) {
      set = new Set();
      this.following.set(channel, set);
      set.add(remote);
      await this.sub.subscribe(channel);
    } else set.add(remote);
  }

  unfollow(remote: RemoteLog): void {
    const channel = this.key('ch', remote.id);
    const set = this.following.get(channel);
    if (!set?.delete(remote) || set.size > 0) return;
    this.following.delete(channel);
    this.sub.unsubscribe(channel).catch(this.warn);
  }

  private onMessage(channel: string, message: string): void {
    if (channel === this.control) {
      try {
        const m = JSON.parse(message) as { op?: string; id?: string };
        if (m.op === 'abort' && typeof m.id === 'string') this.onAbortRequest?.(m.id);
      } catch {
        this.warn(new Error('bad control message'));
      }
      return;
    }
    const set = this.following.get(channel);
    if (set) for (const r of set) r.ingest(message);
  }

  private readonly warn = (e: Error): void => {
    this.opts.log.warn({ err: e.message }, 'redis stream mirror');
  };
}

/** Another replica's log, as seen through Redis: one per reader connection. */
class RemoteLog implements ReadableLog {
  private readonly events = new FramedBatches();
  end: StreamEnd | null = null;
  private endId = 0;
  private reader: LogReader | null = null;
  private released = false;
  private resyncing = false;

  constructor(
    readonly id: string,
    private readonly home: RedisStreams,
  ) {}

  get lastId(): number {
    return this.events.lastId;
  }

  get finalId(): number {
    return this.end ? this.endId : this.lastId + 1;
  }

  ingest(message: string): void {
    const nl = message.indexOf('\n');
    if (nl === -1) return;
    if (message.charCodeAt(0) === 69 /* E */) {
      if (this.end) return;
      const finalId = Number(message.slice(1, nl));
      if (finalId > this.lastId + 1) return this.resync();
      this.end = JSON.parse(message.slice(nl + 1)) as StreamEnd;
      this.endId = finalId;
      const r = this.reader;
      this.reader = null;
      if (r) {
        this.home.countReader(this.id, -1);
        r.onEnd(this.end, finalId);
      }
      return;
    }
    const comma = message.indexOf(',');
    const first = Number(message.slice(1, comma));
    const count = Number(message.slice(comma + 1, nl));
    // A gap means an announcement overtook the record we read: read the record again.
    if (first > this.lastId + 1) return this.resync();
    const fresh = this.events.push(message.slice(nl + 1), first, count);
    if (fresh) this.reader?.onText(fresh);
  }

  private resync(): void {
    if (this.resyncing || this.released) return;
    this.resyncing = true;
    this.home
      .record(this.id)
      .then((messages) => {
        this.resyncing = false;
        for (const m of messages) this.ingest(m);
      })
      .catch(() => (this.resyncing = false));
  }

  attach(reader: LogReader, afterId: number): void {
    const replay = this.events.textAfter(afterId);
    if (replay) reader.onText(replay);
    if (this.end) {
      reader.onEnd(this.end, this.endId);
      return;
    }
    this.reader = reader;
    this.home.countReader(this.id, 1);
  }

  detach(reader: LogReader): void {
    if (this.reader !== reader) return;
    this.reader = null;
    this.home.countReader(this.id, -1);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    if (this.reader) this.detach(this.reader);
    this.home.unfollow(this);
  }
}
