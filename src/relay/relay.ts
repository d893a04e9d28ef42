import { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { StreamEncoder } from '../dialects/types.js';
import { GatewayAbort, GatewayError, fromUpstreamFailure, type AbortReason } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import { SSE_HEADERS } from '../sse/frame.js';
import { HeartbeatTicker } from '../sse/heartbeat.js';
import { lastEventId } from '../sse/last-event-id.js';
import { SseWriter, type SseStyle } from '../sse/writer.js';
import type { StreamDirectory } from '../streams/directory.js';
import type { MemoryStreamStore } from '../streams/memory-store.js';
import type { ReadableLog, StreamLog } from '../streams/stream-log.js';
import type { Target } from '../upstream/catalog.js';
import { FailurePolicy, type AttemptRecord } from './failover.js';
import { Generation } from './generation.js';
import { IdempotencyKeys, MemoryKeyRecords, idempotencyKeyOf, requestFingerprint, type KeyRecords, type Reservation } from './idempotency.js';
import { watchReaders } from './reader-grace.js';
import { StreamSlots } from './stream-slots.js';

/** Open readers of one stream on this replica: far above the tabs of one user, far below a flood. */
export const MAX_READERS_PER_STREAM = 16;

export interface RelayDeps {
  config: Config;
  store: MemoryStreamStore;
  /** Where streams are published for other replicas (Redis) and their readers counted. */
  streams: StreamDirectory;
  slots: StreamSlots;
  secrets: readonly string[];
  /** Where Idempotency-Key records live; in-process by default, Redis to share them across replicas. */
  keyRecords?: KeyRecords;
}

/** What to generate: the route's validated, translated request. */
export interface StreamPlan {
  /** Where the model is served, in priority order. */
  targets: readonly Target[];
  body: ChatRequest;
  /** Who pays and owns it: the key id (or IP without auth). */
  keyId: string;
  /** performance.now() at the request's arrival. */
  startedAt: number;
  /** Another API's events instead of chat chunks, given the stream's id. */
  encoder?: (streamId: string) => StreamEncoder;
}

/** What launchOrAttach() started, or found an earlier POST with the same Idempotency-Key had started: its log's id names it. */
export interface LaunchedStream {
  readonly log: { readonly id: string };
}

/** How a streaming POST's own client reads it, and how long the generation waits for a reader that left. */
export interface StreamWire {
  style: SseStyle;
  graceMs: number;
  /** The error a generation stopped for want of a reader ends with. */
  noReader: AbortReason;
  headers?: Record<string, string>;
}

/**
 * The one owner of a stream's life, for every streaming route: upstream
 * batches → stream log (ids) → SSE writer, with who may read it and when it
 * stops for want of readers. A route validates, translates and hands over
 * (streamTo, launch, serve); it never frames SSE or talks to an upstream.
 */
export class Relay {
  private readonly active = new Set<Generation>();
  /** Generations of POST /v1/streams (and their takeovers): readers expect to resume them. */
  private readonly resumable = new WeakSet<Generation>();
  private readonly heartbeat: HeartbeatTicker;
  /** Readers per stream id (GET resumes); reads are outside the request rate limit, so they are bounded here. */
  private readonly readers = new StreamSlots(MAX_READERS_PER_STREAM, `Too many readers of this stream: at most ${MAX_READERS_PER_STREAM} at once`);
  readonly failure: FailurePolicy;
  /** Retried POSTs: Idempotency-Key → the stream the first one started. */
  private readonly keys: IdempotencyKeys;
  /** Called once per generation when its log has ended (metrics, token budgets). */
  readonly finished: ((gen: Generation) => void)[] = [];

  constructor(private readonly deps: RelayDeps) {
    this.heartbeat = new HeartbeatTicker(deps.config.heartbeatMs);
    this.failure = new FailurePolicy(deps.config.failover);
    const { config } = deps;
    this.keys = new IdempotencyKeys(deps.keyRecords ?? new MemoryKeyRecords(config.limits.maxStreams), {
      // A record lasts as long as its stream can be read: the longest run, then the retention after it.
      ttlMs: config.maxDurationMs + config.limits.streamTtlMs,
      // A duplicate waits for the first POST's first byte at most as long as that POST itself may.
      waitMs: config.upstreamTimeoutMs + 1000,
    });
  }

  close(): void {
    this.heartbeat.stop();
  }

  get activeCount(): number {
    return this.active.size;
  }

  /**
   * Shutdown: every generation still running stops here. A resumable one shared
   * through Redis is handed over (another replica continues it; readers here
   * reconnect there); any other ends with a `shutdown` error event.
   */
  abortAll(): void {
    for (const gen of this.active) {
      if (this.resumable.has(gen) && gen.log.mirror) this.handOver(gen);
      else gen.abort('shutdown');
    }
  }

  private handOver(gen: Generation): void {
    gen.log.handOver();
    // Readers arriving here from now on read the shared record instead.
    this.deps.store.delete(gen.log.id);
    gen.abort('shutdown');
  }

  /**
   * A streaming POST: the generation's first batch before the 200 (a failure
   * before it keeps its real status: 429, 502, 504…), then the stream to this
   * client, resumable on GET /v1/streams/<X-Stream-Id> on any replica.
   * With an `Idempotency-Key` the caller already used, it attaches to the
   * stream that POST started instead (after `Last-Event-ID`), and resolves null.
   */
  async streamTo(request: FastifyRequest, reply: FastifyReply, plan: StreamPlan, wire: StreamWire): Promise<Generation | null> {
    const key = idempotencyKeyOf(request);
    if (key === null) return this.stream(request, reply, plan, wire, null);
    const afterId = lastEventId(request.headers['last-event-id']);
    // Claimed before any await: a duplicate racing this one finds the key taken.
    const claim = await this.keys.claim(request.summary.limitKey, key, requestFingerprint(request), this.exists);
    if (claim.attached) {
      await this.attach(reply, claim.id, wire, afterId);
      return null;
    }
    // Its client said it will come back: the generation waits for it as a /v1/streams one does.
    return this.stream(request, reply, plan, { ...wire, graceMs: this.deps.config.streamResumeGraceMs, noReader: 'no_reader' }, claim);
  }

  private async stream(request: FastifyRequest, reply: FastifyReply, plan: StreamPlan, wire: StreamWire, claim: Reservation | null): Promise<Generation> {
    let gen: Generation;
    try {
      gen = this.create(plan, undefined, claim?.id);
      request.summary.generation = gen;
      await this.start(gen, reply);
    } catch (e) {
      // Nothing was streamed: the key does not stay on a failure, a retry starts anew.
      void claim?.release();
      throw e;
    }
    watchReaders(gen, wire.graceMs, wire.noReader, this.remoteReaders);
    const published = this.deps.streams.publish(gen.log, this.takeoverRequest(plan, gen));
    // Live once other replicas can find it too, so a retry landing there attaches rather than starting over.
    if (claim) void published.then(() => claim.live(), () => claim.live());
    if (clientGone(reply)) {
      // It left while the key was being claimed (or the answer opened): a reader that is not there
      // would hold the generation back forever. Without a grace period, nobody will come back.
      if (wire.graceMs === 0) gen.abort(wire.noReader);
      reply.hijack();
      return gen;
    }
    this.serve(reply, gen.log, { style: wire.style, afterId: 0, headers: { 'x-stream-id': gen.log.id, ...wire.headers } });
    return gen;
  }

  /** A retry's answer: the stream an earlier POST started, from `afterId` on, in this route's wire style. */
  private async attach(reply: FastifyReply, id: string, wire: StreamWire, afterId: number): Promise<void> {
    const log = await this.deps.streams.open(id);
    if (!log) throw new GatewayError('stream_not_found', 'The stream of this Idempotency-Key has just expired; retry to start anew', { param: 'Idempotency-Key' });
    const last = log.end ? log.finalId : log.lastId;
    if (afterId > last) {
      log.release();
      throw new GatewayError('invalid_body', `Last-Event-ID ${afterId} is ahead of the stream (last id ${last})`, { param: 'Last-Event-ID' });
    }
    if (clientGone(reply)) {
      log.release();
      reply.hijack();
      return;
    }
    if (log.end && afterId >= log.finalId) {
      log.release();
      // It has every event already. An empty stream, not GET's 204: a POST's client reads a body,
      // and fetch-event-source retries anything that is not an event stream.
      reply.headers({ ...SSE_HEADERS, 'x-stream-id': id, ...wire.headers }).send('');
      return;
    }
    const done = () => log.release();
    this.serve(reply, log, { style: wire.style, afterId, headers: { 'x-stream-id': id, ...wire.headers }, onClientGone: done, onEnd: done });
  }

  private readonly exists = async (id: string): Promise<boolean> => (await this.deps.streams.owner(id)) !== null;

  /**
   * A generation nobody waits for (POST /v1/streams, background responses):
   * failures, even before the first byte, end its log with an error event for
   * readers; with no reader for STREAM_RESUME_GRACE_MS it stops. Resolves once
   * other replicas can find it. Always starts one: see launchOrAttach for a
   * route that honours `Idempotency-Key`.
   */
  launch(request: FastifyRequest, plan: StreamPlan): Promise<Generation> {
    return this.launchNew(request, plan, null);
  }

  /**
   * launch(), unless the caller already sent this `Idempotency-Key` with the
   * same body: then nothing starts, and it resolves with the stream that POST started.
   */
  async launchOrAttach(request: FastifyRequest, plan: StreamPlan): Promise<LaunchedStream> {
    const key = idempotencyKeyOf(request);
    if (key === null) return this.launchNew(request, plan, null);
    // Claimed before any await: a duplicate racing this one finds the key taken.
    const claim = await this.keys.claim(request.summary.limitKey, key, requestFingerprint(request), this.exists);
    if (claim.attached) return { log: { id: claim.id } };
    return this.launchNew(request, plan, claim);
  }

  private async launchNew(request: FastifyRequest, plan: StreamPlan, claim: Reservation | null): Promise<Generation> {
    let gen: Generation;
    try {
      gen = this.create(plan, undefined, claim?.id);
    } catch (e) {
      void claim?.release();
      throw e;
    }
    request.summary.generation = gen;
    this.resumable.add(gen);
    void gen.run();
    // Nobody reads yet: the grace period starts now, and a reader arriving in time stops it.
    watchReaders(gen, this.deps.config.streamResumeGraceMs, 'no_reader', this.remoteReaders);
    try {
      await this.deps.streams.publish(gen.log, this.takeoverRequest(plan, gen));
    } finally {
      await claim?.live();
    }
    return gen;
  }

  /**
   * What another replica needs to finish the stream if this one dies: the chat request. None for
   * another API's stream (its encoder's state would be lost): a takeover ends it with generation_lost.
   */
  private takeoverRequest(plan: StreamPlan, gen: Generation): object | null {
    return plan.encoder ? null : gen.body;
  }

  private readonly remoteReaders = (id: string): Promise<number> => this.deps.streams.remoteReaders(id);

  /** Waits for a generation's first batch; throws a GatewayError while nothing has been committed yet. */
  private async start(gen: Generation, reply: FastifyReply): Promise<void> {
    // Until serve() takes over, a client that leaves must still stop the upstream.
    const onClose = () => gen.abort('client_disconnected');
    reply.raw.once('close', onClose);
    try {
      await gen.open();
    } catch (e) {
      gen.onFinished?.();
      this.deps.store.delete(gen.log.id);
      throw e;
    } finally {
      reply.raw.off('close', onClose);
    }
    void gen.pump();
  }

  /**
   * Continues a stream another replica started and can no longer finish: `log`
   * holds what it had logged, and `targets` are wrapped to continue that answer.
   */
  resume(targets: readonly Target[], body: ChatRequest, log: StreamLog): Generation {
    const gen = this.create({ targets, body, keyId: log.ownerKeyId, startedAt: performance.now() }, log);
    this.resumable.add(gen);
    void gen.run();
    watchReaders(gen, this.deps.config.streamResumeGraceMs, 'no_reader', this.remoteReaders);
    return gen;
  }

  /** Another replica writes this stream now (this one lost its lease): stop it here, readers reconnect there. */
  abandon(streamId: string): void {
    for (const gen of this.active) if (gen.log.id === streamId) this.handOver(gen);
  }

  /** Deletes a stream: aborts its upstream. False when no generation runs it here. */
  abort(streamId: string): boolean {
    for (const gen of this.active) {
      if (gen.log.id === streamId) {
        gen.abort('deleted');
        return true;
      }
    }
    return false;
  }

  /** A generation not started yet (takes a concurrency slot: 429 when none is free). */
  private create(plan: StreamPlan, adopted?: StreamLog, id?: string): Generation {
    const config = this.deps.config;
    const { targets, body, keyId, startedAt } = plan;
    const release = this.deps.slots.acquire(keyId);
    const log = adopted ?? this.deps.store.create(keyId, id);
    const gen = new Generation({
      targets,
      body,
      log,
      ...(plan.encoder ? { encoder: plan.encoder(log.id) } : {}),
      failure: this.failure,
      firstByteTimeoutMs: config.upstreamTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxDurationMs: config.maxDurationMs,
      clientWantsUsage: body.stream_options?.include_usage === true,
      secrets: this.deps.secrets,
      startedAt,
      maxEvents: this.deps.config.limits.maxEventsPerStream,
    });
    gen.onFinished = () => {
      if (!this.active.delete(gen)) return;
      release();
      for (const f of this.finished) f(gen);
    };
    this.active.add(gen);
    return gen;
  }

  /**
   * A reader resuming a stream it found by id (GET /v1/streams/:id, GET /v1/responses/:id?stream=true):
   * serve() with one of the stream's reader places (429 when all are taken), given back, and the
   * log released, when the reader leaves or the stream ends.
   */
  serveReader(reply: FastifyReply, log: ReadableLog, opts: { style: SseStyle; afterId: number; headers?: Record<string, string>; preamble?: string }): void {
    let leave: () => void;
    try {
      leave = this.readers.acquire(log.id);
    } catch (e) {
      log.release();
      throw e;
    }
    const gone = () => {
      leave();
      log.release();
    };
    this.serve(reply, log, { ...opts, onClientGone: gone, onEnd: gone });
  }

  /**
   * Takes over the reply and writes the log to it from `afterId` on.
   * `onClientGone` runs if the client leaves before the end.
   */
  serve(
    reply: FastifyReply,
    log: ReadableLog,
    opts: {
      style: SseStyle;
      afterId: number;
      headers?: Record<string, string>;
      preamble?: string;
      onClientGone?: () => void;
      onEnd?: () => void;
    },
  ): SseWriter {
    reply.hijack();
    const writer = new SseWriter(reply.raw, opts.style, this.heartbeat, this.deps.config.clientStallTimeoutMs);
    writer.open({ ...(reply.getHeaders() as Record<string, string>), ...opts.headers }, opts.preamble);
    writer.onClientGone = () => {
      log.detach(writer);
      opts.onClientGone?.();
    };
    writer.onEnded = opts.onEnd ?? null;
    // Headers, replay and (for an answer already over, as short ones often are by now) its end leave
    // in one write: each write to a socket is a syscall, and on loopback the receiver's work too.
    // HTTP/1 corks the socket, not the response: Node 24's corked ServerResponse holds chunked writes
    // back until uncork(), and an end() meanwhile sends the terminating chunk ahead of them.
    const raw = reply.raw instanceof ServerResponse ? reply.raw.socket : (reply.raw as { cork?: () => void; uncork?: () => void });
    raw?.cork?.();
    log.attach(writer, opts.afterId);
    writer.flush();
    raw?.uncork?.();
    return writer;
  }

  /** `stream: false`: one upstream call (with failover), aborted if the client leaves. */
  async complete(
    targets: readonly Target[],
    body: ChatRequest,
    reply: FastifyReply,
    attempts: AttemptRecord[],
    startedAt: number,
  ): Promise<{ completion: Record<string, unknown>; upstream: string }> {
    const config = this.deps.config;
    const client = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) client.abort(new GatewayAbort('client_disconnected'));
    };
    reply.raw.once('close', onClose);
    const { stream: _s, stream_options: _o, ...rest } = body;
    try {
      const won = await this.failure.run(targets, client.signal, startedAt + config.upstreamTimeoutMs, attempts, (target, signal) =>
        target.upstream.complete({ ...rest, model: target.model }, signal),
      );
      return { completion: won.value, upstream: won.target.upstream.name };
    } catch (e) {
      throw fromUpstreamFailure(client.signal.aborted ? client.signal.reason : e, this.deps.secrets);
    } finally {
      reply.raw.off('close', onClose);
    }
  }
}

/** Whether the client closed its connection already (a response that is not there cannot be written). */
function clientGone(reply: FastifyReply): boolean {
  const raw = reply.raw as { destroyed?: boolean; stream?: { destroyed?: boolean } };
  return raw.destroyed === true || raw.stream?.destroyed === true;
}
