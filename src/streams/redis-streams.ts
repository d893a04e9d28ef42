import type { FastifyBaseLogger } from 'fastify';
import { Redis } from 'ioredis';
import type { SharedStreams } from './directory.js';
import { FramedBatches } from './framed-batches.js';
import { FINISH, type FinishCommand, type RetentionLimits } from './redis-retention.js';
import type { LogMirror, LogReader, ReadableLog, StreamEnd, StreamLog } from './stream-log.js';

/**
 * Stream logs shared through Redis, so a reader whose reconnect lands on
 * another replica resumes there without a gap. The replica running the
 * generation appends each batch to a Redis Stream (the replayable record) and
 * publishes it (the live feed); a reader elsewhere subscribes first, then
 * reads the record, and drops what it already has by event id.
 *
 * Messages: `D<firstId>,<count>\n<framed events>` and `E<finalId>\n<end JSON>`.
 *
 * Leases: the replica running a generation holds `lease:<id>` (renewed every
 * third of STREAM_LEASE_MS) and appends only while it holds it (one Lua script
 * checks and appends), so at most one replica ever writes a stream. A replica
 * with a reader on a stream whose lease lapsed — its replica died — claims the
 * lease and asks `onOrphan` to finish the generation (relay/takeover.ts).
 */

export type LogMessage =
  | { kind: 'data'; firstId: number; count: number; text: string }
  | { kind: 'end'; finalId: number; end: StreamEnd };

export function decodeMessage(message: string): LogMessage | null {
  const nl = message.indexOf('\n');
  if (nl === -1) return null;
  if (message.charCodeAt(0) === 69 /* E */) {
    return { kind: 'end', finalId: Number(message.slice(1, nl)), end: JSON.parse(message.slice(nl + 1)) as StreamEnd };
  }
  const comma = message.indexOf(',');
  return { kind: 'data', firstId: Number(message.slice(1, comma)), count: Number(message.slice(comma + 1, nl)), text: message.slice(nl + 1) };
}

/** What another replica needs to finish a stream whose replica died. */
export interface Orphan {
  owner: string;
  /** The request as the generation was started (JSON), or null when none was stored. */
  request: string | null;
  /** A DELETE came while no replica ran it. */
  deleted: boolean;
  messages: string[];
}

// A lease that is simply gone (Redis was unreachable past its TTL, or restarted) is taken back:
// only another holder means another replica continues the stream. Safe, because a claimer sets
// the lease first (NX) and reads the record after.
// The end is recorded by FINISH (redis-retention.ts), which also bounds what ended streams keep.
// KEYS: lease, record. ARGV: this replica, message, channel, record TTL (0: keep), lease TTL.
const APPEND = `
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('xadd', KEYS[2], '*', 'm', ARGV[2])
redis.call('publish', ARGV[3], ARGV[2])
if ARGV[4] ~= '0' then redis.call('pexpire', KEYS[2], ARGV[4]) end
if not holder then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[5]) end
return 1`;

// KEYS: lease. ARGV: this replica, TTL.
const RENEW = `
local holder = redis.call('get', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
return redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 or 0`;

// KEYS: lease. ARGV: this replica.
const RELEASE = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('del', KEYS[1])`;

type LeaseCommands = FinishCommand & {
  releaseLease(lease: string, me: string): Promise<number>;
  appendIfLeased(lease: string, record: string, me: string, message: Buffer, channel: string, ttlMs: number, leaseMs: number): Promise<number>;
  renewLease(lease: string, me: string, ttlMs: number): Promise<number>;
};

export interface RedisStreamsOptions {
  url: string;
  /** Key prefix, so several deployments (or test runs) can share one Redis. */
  namespace: string;
  /** How long keys live while a generation runs, and after it ended. */
  liveTtlMs: number;
  endedTtlMs: number;
  /** How long a generation's lease lasts unrenewed (STREAM_LEASE_MS). */
  leaseMs: number;
  /** What the records of streams this replica ended may hold. */
  retention: RetentionLimits;
  /** Who holds leases from this process (unique per process). */
  instanceId: string;
  log: FastifyBaseLogger;
}

export class RedisStreams implements SharedStreams, LogMirror {
  /** Commands; auto-pipelined, so a batch's XADD and PUBLISH travel together. */
  readonly client: Redis;
  private readonly leased: Redis & LeaseCommands;
  private readonly sub: Redis;
  /** Remote logs being read here, by stream id. */
  private readonly following = new Map<string, Set<RemoteLog>>();
  /** Streams whose generation runs here. */
  private readonly held = new Set<string>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Set by the app: abort a generation running here (a DELETE that landed elsewhere). */
  onAbortRequest: ((id: string) => void) | null = null;
  /** Set by the app: this replica now holds the lease of a stream whose replica died; true if it finishes it. */
  onOrphan: ((id: string) => boolean) | null = null;
  /** Set by the app: another replica holds this stream's lease now; stop writing it here. */
  onLeaseLost: ((id: string) => void) | null = null;

  constructor(private readonly opts: RedisStreamsOptions) {
    const common = { lazyConnect: true, maxRetriesPerRequest: 2, enableAutoPipelining: true, connectTimeout: 3000 };
    this.client = new Redis(opts.url, common);
    // Appends go out with no auto-pipelining: the command reaches the socket before the
    // events reach any client (StreamLog mirrors first), so a replica killed between the
    // two leaves Redis at least as far along as its clients.
    this.leased = new Redis(opts.url, { ...common, enableAutoPipelining: false }) as Redis & LeaseCommands;
    this.leased.defineCommand('appendIfLeased', { numberOfKeys: 2, lua: APPEND });
    this.leased.defineCommand('renewLease', { numberOfKeys: 1, lua: RENEW });
    this.leased.defineCommand('releaseLease', { numberOfKeys: 1, lua: RELEASE });
    this.leased.defineCommand('finishIfLeased', { numberOfKeys: 5, lua: FINISH });
    this.sub = new Redis(opts.url, { ...common, enableAutoPipelining: false });
    for (const c of [this.client, this.leased, this.sub]) c.on('error', (e: Error) => opts.log.warn({ err: e.message }, 'redis error'));
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
    await Promise.all([this.client.connect(), this.leased.connect(), this.sub.connect()]);
    // Loaded up front: an append's EVALSHA then runs at once, never after a NOSCRIPT round trip
    // (which would let its events reach clients before the record).
    await Promise.all([APPEND, RENEW, RELEASE, FINISH].map((lua) => this.leased.script('LOAD', lua)));
    await this.sub.subscribe(this.control);
    const every = (ms: number, f: () => void) => {
      const t = setInterval(f, ms);
      t.unref();
      this.timers.push(t);
    };
    every(Math.max(50, Math.floor(this.opts.leaseMs / 3)), () => this.renewLeases());
    every(Math.max(50, Math.floor(this.opts.leaseMs / 2)), () => void this.findOrphans());
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.following.clear();
    this.held.clear();
    await Promise.allSettled([this.client.quit(), this.leased.quit(), this.sub.quit()]);
  }

  /**
   * Makes a log readable from other replicas and takes its lease. `request` is
   * the generation's request (JSON), kept so another replica can finish it.
   */
  async publish(log: StreamLog, request: string | null): Promise<void> {
    const meta = this.key('meta', log.id);
    // Same connection as the appends, and before them: the lease exists when the first one checks,
    // and an end (which shortens the meta's TTL, or drops the stream) comes after the meta.
    this.held.add(log.id);
    const written = Promise.all([
      this.leased.set(this.key('lease', log.id), this.opts.instanceId, 'PX', this.opts.leaseMs),
      // `leased`: streams of replicas that predate leases are never claimed (they renew none).
      // No request (another API's stream, which cannot be continued elsewhere): a takeover ends it.
      this.leased.hset(meta, 'owner', log.ownerKeyId, 'request', request ?? '', 'leased', '1'),
      this.leased.pexpire(meta, this.opts.liveTtlMs),
    ]);
    // What the log already holds (a chat stream publishes after its first batch) goes first.
    if (log.lastId > 0) this.onAppend(log, log.framesAfter(0), 1, log.lastId);
    if (log.end) this.onFinish(log, log.end, log.finalId);
    log.mirror = this;
    await written.catch(this.warn);
  }

  /** Mirrors a log rebuilt from the record (a takeover): its lease is held already, its events are in Redis. */
  adopt(log: StreamLog): void {
    log.mirror = this;
  }

  onAppend(log: StreamLog, frames: Buffer, firstId: number, count: number): void {
    const id = log.id;
    // Record first, then announce (one script): a reader that missed the announcement finds it in the record.
    this.leased
      .appendIfLeased(
        this.key('lease', id),
        this.key('log', id),
        this.opts.instanceId,
        Buffer.concat([Buffer.from('D' + firstId + ',' + count + '\n'), frames]),
        this.key('ch', id),
        firstId === 1 ? this.opts.liveTtlMs : 0,
        this.opts.leaseMs,
      )
      .then((ok) => this.checkLease(id, ok), this.warn);
  }

  onFinish(log: StreamLog, end: StreamEnd, finalId: number): void {
    const id = log.id;
    this.held.delete(id);
    // Only while this replica holds the stream: the end, the shorter TTLs and the retention bounds, in one script.
    this.leased
      .finishIfLeased(
        this.key('lease', id),
        this.key('log', id),
        this.key('meta', id),
        this.key('ended', this.opts.instanceId),
        this.key('ended-bytes', this.opts.instanceId),
        this.opts.instanceId,
        'E' + finalId + '\n' + JSON.stringify(end),
        this.key('ch', id),
        this.opts.endedTtlMs,
        Date.now(),
        log.bytes,
        id,
        this.opts.namespace,
        this.opts.retention.maxBytes,
        this.opts.retention.maxStreams,
      )
      .then((ok) => this.checkLease(id, ok), this.warn);
  }

  /** Lets the lease go (after every append already sent): a replica with a reader takes the stream over. */
  onHandOver(log: StreamLog): void {
    this.held.delete(log.id);
    this.leased.releaseLease(this.key('lease', log.id), this.opts.instanceId).catch(this.warn);
  }

  private checkLease(id: string, ok: number): void {
    if (ok === 0) this.lost(id);
  }

  private lost(id: string): void {
    if (!this.held.delete(id)) return;
    this.opts.log.warn({ stream_id: id }, 'another replica holds this stream now; stopped writing it here');
    this.onLeaseLost?.(id);
  }

  private renewLeases(): void {
    for (const id of this.held) {
      this.leased.renewLease(this.key('lease', id), this.opts.instanceId, this.opts.leaseMs).then((ok) => {
        if (ok === 0) this.lost(id);
      }, this.warn);
    }
  }

  /** Streams read here whose lease lapsed: claim each, and let the app finish it. */
  private async findOrphans(): Promise<void> {
    const ids: string[] = [];
    for (const [id, readers] of this.following) {
      for (const r of readers) {
        if (!r.end) {
          ids.push(id);
          break;
        }
      }
    }
    if (ids.length === 0) return;
    try {
      const leases = await Promise.all(ids.map((id) => this.client.exists(this.key('lease', id))));
      for (let i = 0; i < ids.length; i++) if (leases[i] === 0) await this.claim(ids[i]!);
    } catch (e) {
      this.warn(e as Error);
    }
  }

  private async claim(id: string): Promise<void> {
    if (this.held.has(id)) return;
    if ((await this.client.hget(this.key('meta', id), 'leased')) !== '1') return;
    const ok = await this.leased.set(this.key('lease', id), this.opts.instanceId, 'PX', this.opts.leaseMs, 'NX');
    if (ok !== 'OK') return;
    this.held.add(id);
    if (this.onOrphan?.(id)) this.opts.log.warn({ stream_id: id }, 'the replica running this stream is gone; taking it over');
    else this.dropLease(id);
  }

  /** Gives a claimed lease back (a takeover found nothing to do, or cannot start now). */
  dropLease(id: string): void {
    this.held.delete(id);
    this.leased.releaseLease(this.key('lease', id), this.opts.instanceId).catch(this.warn);
  }

  /** What a takeover needs, read after claiming the lease (so the record can no longer grow). */
  async orphan(id: string): Promise<Orphan> {
    const [meta, messages] = await Promise.all([this.client.hmget(this.key('meta', id), 'owner', 'request', 'deleted'), this.record(id)]);
    const [owner, request, deleted] = meta;
    return { owner: owner ?? '', request: request || null, deleted: deleted === '1', messages };
  }

  /** Hands a record's messages to this replica's readers of the stream (an end they may have missed). */
  replay(id: string, messages: string[]): void {
    const readers = this.following.get(id);
    if (readers) for (const r of readers) for (const m of messages) r.ingest(m);
  }

  async open(id: string): Promise<ReadableLog | null> {
    const remote = new RemoteLog(id, this);
    this.follow(remote);
    let owner: string | null;
    let entries: string[];
    let leased: number;
    try {
      await this.sub.subscribe(this.key('ch', id));
      // One transaction: a stream dropped by the retention bounds is read whole or not at all.
      const replies = await this.client
        .multi()
        .hget(this.key('meta', id), 'owner')
        .xrange(this.key('log', id), '-', '+')
        .exists(this.key('lease', id))
        .exec();
      const failed = replies?.find(([err]) => err);
      if (!replies || failed) throw failed?.[0] ?? new Error('transaction aborted');
      owner = replies[0]![1] as string | null;
      entries = messagesOf(replies[1]![1] as [string, string[]][]);
      leased = replies[2]![1] as number;
    } catch (e) {
      this.unfollow(remote);
      throw e;
    }
    if (owner === null && entries.length === 0) {
      this.unfollow(remote);
      return null;
    }
    for (const m of entries) remote.ingest(m);
    // Its replica died before this reader came: no need to wait for the next sweep.
    if (!remote.end && leased === 0) void this.claim(id).catch(this.warn);
    return remote;
  }

  /** Every message in a stream's record, in order. */
  async record(id: string): Promise<string[]> {
    return messagesOf(await this.client.xrange(this.key('log', id), '-', '+'));
  }

  async owner(id: string): Promise<string | null> {
    return this.client.hget(this.key('meta', id), 'owner');
  }

  async readers(id: string): Promise<number> {
    return Number((await this.client.get(this.key('readers', id))) ?? 0);
  }

  async requestAbort(id: string): Promise<void> {
    // Also kept with the stream: a replica taking it over later (its own died) must not resume it.
    await Promise.all([this.client.hset(this.key('meta', id), 'deleted', '1'), this.client.publish(this.control, JSON.stringify({ op: 'abort', id }))]);
  }

  /** Counts a reader attached on this replica, for the generating replica's grace period. */
  countReader(id: string, delta: 1 | -1): void {
    const key = this.key('readers', id);
    this.client.incrby(key, delta).catch(this.warn);
    this.client.pexpire(key, this.opts.liveTtlMs).catch(this.warn);
  }

  private follow(remote: RemoteLog): void {
    let set = this.following.get(remote.id);
    if (!set) this.following.set(remote.id, (set = new Set()));
    set.add(remote);
  }

  unfollow(remote: RemoteLog): void {
    const set = this.following.get(remote.id);
    if (!set?.delete(remote) || set.size > 0) return;
    this.following.delete(remote.id);
    this.sub.unsubscribe(this.key('ch', remote.id)).catch(this.warn);
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
    const set = this.following.get(channel.slice(this.opts.namespace.length + 3));
    if (set) for (const r of set) r.ingest(message);
  }

  private readonly warn = (e: Error): void => {
    this.opts.log.warn({ err: e.message }, 'redis stream mirror');
  };
}

function messagesOf(entries: [string, string[]][]): string[] {
  return entries.map(([, fields]) => fields[1] ?? '');
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
    const m = decodeMessage(message);
    if (m === null) return;
    if (m.kind === 'end') {
      if (this.end) return;
      if (m.finalId > this.lastId + 1) return this.resync();
      this.end = m.end;
      this.endId = m.finalId;
      const r = this.reader;
      this.reader = null;
      if (r) {
        this.home.countReader(this.id, -1);
        r.onEnd(this.end, m.finalId);
      }
      return;
    }
    // A gap means an announcement overtook the record we read: read the record again.
    if (m.firstId > this.lastId + 1) return this.resync();
    const fresh = this.events.push(Buffer.from(m.text), m.firstId, m.count);
    if (fresh.length > 0) this.reader?.onFrames(fresh);
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
    const replay = this.events.framesAfter(afterId);
    if (replay.length > 0) reader.onFrames(replay);
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
