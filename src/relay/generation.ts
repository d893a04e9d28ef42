import { performance } from 'node:perf_hooks';
import { GatewayAbort, GatewayError, fromUpstreamFailure, type AbortReason } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import type { StreamEnd, StreamLog, Usage } from '../streams/stream-log.js';
import { dataFramesBuffer } from '../sse/frame.js';
import type { Target } from '../upstream/catalog.js';
import { NO_FIELDS, chunkFields } from '../upstream/chunk-fields.js';
import { UpstreamError } from '../upstream/types.js';
import type { StreamEncoder } from '../dialects/types.js';
import type { AttemptRecord, FailurePolicy } from './failover.js';

export type Outcome = 'completed' | 'client_aborted' | 'upstream_error' | 'rejected';

export interface GenerationOptions {
  /** Where the model is served, in priority order (failover goes down the list). */
  targets: readonly Target[];
  /** The client's request; each attempt swaps in its upstream's model name. */
  body: ChatRequest;
  log: StreamLog;
  failure: FailurePolicy;
  /** Time allowed from the request's arrival until the first batch, every attempt included. */
  firstByteTimeoutMs: number;
  /** Longest silence between two batches once streaming. */
  idleTimeoutMs: number;
  /** Longest a generation may run in all. */
  maxDurationMs: number;
  /** Whether the client asked for the usage chunk; the gateway always asks upstream. */
  clientWantsUsage: boolean;
  secrets: readonly string[];
  /** performance.now() at request arrival, for TTFT. */
  startedAt: number;
  /**
   * Another API's events (Responses, Messages) instead of chat chunks: its
   * opening and closing events go into the log too, so a replay is the whole stream.
   */
  encoder?: StreamEncoder;
  /** The log keeps every event for resume; past this many the generation is stopped. */
  maxEvents?: number;
  now?: () => number;
}

/**
 * One upstream generation feeding one stream log. `open()` pulls the first
 * batch (so failures before it keep their real status); `pump()` pulls the
 * rest, pausing while a reader's socket is full, and always ends the log.
 */
export class Generation {
  private readonly controller = new AbortController();
  ttftMs: number | null = null;
  chunks = 0;
  usage: Usage | null = null;
  finishReason: string | null = null;
  outcome: Outcome | null = null;
  error: GatewayError | null = null;
  /** The upstream that answered, once one did. */
  upstream: string | null = null;
  /** Every try before the first byte, for the log line. */
  readonly attempts: AttemptRecord[] = [];
  /** Runs once, when the log has ended (any way). */
  onFinished: (() => void) | null = null;
  private iterator: AsyncIterator<string[]> | null = null;
  /** The encoder's opening events are in the log. */
  private opened = false;
  private readonly now: () => number;

  constructor(private readonly opts: GenerationOptions) {
    this.now = opts.now ?? Date.now;
  }

  get log(): StreamLog {
    return this.opts.log;
  }

  /** The client's request. */
  get body(): ChatRequest {
    return this.opts.body;
  }

  /** performance.now() at the request's arrival (what ttftMs counts from). */
  get startedAt(): number {
    return this.opts.startedAt;
  }

  /** The model name the client asked for. */
  get model(): string {
    return this.opts.body.model;
  }

  /** Who pays for it: the key id (or IP without auth). */
  get keyId(): string {
    return this.opts.log.ownerKeyId;
  }

  abort(reason: AbortReason): void {
    if (!this.controller.signal.aborted) this.controller.abort(new GatewayAbort(reason));
  }

  /** Rejects with a GatewayError when the upstream fails before its first batch. */
  async open(): Promise<void> {
    const o = this.opts;
    // The gateway always asks for usage (token accounting); accept() hides it from clients that did not.
    const request: ChatRequest = { ...o.body, stream: true, stream_options: { include_usage: true } };
    try {
      const deadline = o.startedAt + o.firstByteTimeoutMs;
      const won = await o.failure.run(o.targets, this.controller.signal, deadline, this.attempts, async (target, signal) => {
        const iterator = target.upstream.stream({ ...request, model: target.model }, signal)[Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      });
      this.upstream = won.target.upstream.name;
      this.iterator = won.value.iterator;
      this.ttftMs = performance.now() - o.startedAt;
      this.opening();
      if (!won.value.first.done) this.accept(won.value.first.value);
    } catch (e) {
      // The failure policy already aborted every failed attempt's upstream request.
      const cause = this.controller.signal.aborted ? this.controller.signal.reason : e;
      this.error = fromUpstreamFailure(cause, o.secrets);
      this.outcome = cause instanceof GatewayAbort && cause.reason === 'client_disconnected' ? 'client_aborted' : 'upstream_error';
      throw this.error;
    }
  }

  /** open() then pump(), for a generation nobody awaits: a failure to open ends the log with an error event. */
  async run(): Promise<void> {
    try {
      await this.open();
    } catch (e) {
      // Aborted from outside (deleted, no reader, shutdown), or the upstream failed (the same
      // shape as a failure after the first byte: readers need not tell them apart).
      this.endWith(this.controller.signal.aborted ? this.controller.signal.reason : e);
      this.onFinished?.();
      return;
    }
    await this.pump();
  }

  /** Pulls until the upstream ends, fails or is aborted, and ends the log accordingly. Never rejects. */
  async pump(): Promise<void> {
    const log = this.opts.log;
    const signal = this.controller.signal;
    // One timer each, refreshed rather than re-created per batch. A full client socket is not the
    // upstream's silence: while one holds the pump the idle timer may fire, but does nothing.
    let congested = false;
    const idle = setTimeout(() => {
      if (!congested) this.abort('upstream_idle');
    }, this.opts.idleTimeoutMs);
    // Whole milliseconds: Node keeps one timer list per distinct duration, and a fractional one would get its own.
    const total = setTimeout(() => this.abort('max_duration'), Math.max(0, Math.ceil(this.opts.maxDurationMs - (performance.now() - this.opts.startedAt))));
    /** The upstream sent its end marker (the iterator's final value is true). */
    let ended = false;
    try {
      for (;;) {
        const wait = log.congestion();
        if (wait) {
          congested = true;
          await wait;
          congested = false;
        }
        if (signal.aborted) throw signal.reason;
        // Re-arms it even if it fired (and did nothing) while congested; a cleared timer could not be.
        idle.refresh();
        const r = await this.iterator!.next();
        if (r.done) {
          ended = r.value === true;
          break;
        }
        this.accept(r.value);
      }
      // [DONE] is the upstream's word that the answer is whole, finish_reason or not. One that
      // closes without it (or has none, like the in-process mock) and without a finish_reason was cut off.
      if (this.finishReason === null && !ended) throw new UpstreamError(502, 'the upstream ended the stream before it finished', this.upstream ?? 'upstream');
      this.outcome = 'completed';
      this.finish({ kind: 'done', finish_reason: this.finishReason, usage: this.usage });
    } catch (e) {
      this.endWith(signal.aborted ? signal.reason : e);
      this.abort('upstream_timeout');
      void this.iterator?.return?.().catch(() => {});
    } finally {
      clearTimeout(idle);
      clearTimeout(total);
      this.onFinished?.();
    }
  }

  /** Ends the log with the error event for `cause` (an abort of ours, or an upstream failure), and records the outcome. */
  private endWith(cause: unknown): void {
    if (cause instanceof GatewayAbort) {
      this.outcome = cause.reason === 'client_disconnected' ? 'client_aborted' : 'upstream_error';
      this.finish({ kind: 'error', type: cause.reason, message: abortMessage(cause.reason) });
      return;
    }
    this.outcome = 'upstream_error';
    this.error = fromUpstreamFailure(cause, this.opts.secrets);
    this.finish({ kind: 'error', type: 'upstream_error', code: this.error.code, message: this.error.message });
  }

  /** The encoder's opening events, once, before the first chunk's (or the closing ones of a stream that never opened). */
  private opening(): void {
    const encoder = this.opts.encoder;
    if (!encoder || this.opened) return;
    this.opened = true;
    const log = this.opts.log;
    const open = encoder.open(log.lastId + 1);
    if (open.count > 0) log.appendFramed(Buffer.from(open.text), open.count);
  }

  /** Ends the log; an encoder's closing events go into it first, and the end then says they are there. */
  private finish(end: StreamEnd): void {
    const log = this.opts.log;
    const encoder = this.opts.encoder;
    if (encoder && !log.end && !log.handedOver) {
      this.opening();
      const close = encoder.close(end, log.lastId + 1);
      if (close.count > 0) log.appendFramed(Buffer.from(close.text), close.count);
      end = { ...end, framed: true };
    }
    log.finish(end, this.now());
  }

  /**
   * Frames a batch once. The fields the gateway needs (finish_reason, usage)
   * are read per payload by chunkFields, which parses only a chunk that may
   * carry one. Per payload, not over the framed text: V8 searches short
   * strings several times faster than one long one, and the framed text then
   * needs no flattening before its write.
   */
  private accept(batch: string[]): void {
    const log = this.opts.log;
    // The batch minus the usage-only chunks, once one is to be hidden; until then the batch itself.
    let kept: string[] | null = null;
    for (let i = 0; i < batch.length; i++) {
      const fields = chunkFields(batch[i]!);
      if (fields !== NO_FIELDS) {
        this.finishReason ??= fields.finishReason;
        if (fields.usage !== null) this.usage = fields.usage as Usage;
        // The gateway always asks for usage; a client that did not gets no chunk made only for it.
        if (fields.usageOnly && !this.opts.clientWantsUsage) {
          kept ??= batch.slice(0, i);
          continue;
        }
      }
      kept?.push(batch[i]!);
    }
    const encoder = this.opts.encoder;
    if (encoder) {
      // The encoder sees every chunk, the usage one too: its closing event reports usage in its own shape.
      this.chunks += batch.length;
      const out = encoder.batch(batch, log.lastId + 1);
      if (out.count > 0) log.appendFramed(Buffer.from(out.text), out.count);
    } else {
      if (kept !== null) batch = kept;
      this.chunks += batch.length;
      if (batch.length > 0) log.appendFramed(dataFramesBuffer(log.lastId + 1, batch), batch.length);
    }
    if (this.opts.maxEvents !== undefined && log.lastId >= this.opts.maxEvents) this.abort('stream_too_long');
  }
}

export function abortMessage(reason: AbortReason): string {
  switch (reason) {
    case 'client_disconnected':
      return 'the client disconnected; the generation was stopped';
    case 'upstream_timeout':
      return 'the upstream did not respond in time';
    case 'upstream_idle':
      return 'the upstream went silent for too long';
    case 'max_duration':
      return 'the stream reached its maximum duration';
    case 'client_stalled':
      return 'the client stopped reading; the generation was stopped';
    case 'deleted':
      return 'the stream was deleted';
    case 'no_reader':
      return 'no reader came back in time; the generation was stopped';
    case 'shutdown':
      return 'the gateway is shutting down; reconnect to resume';
    case 'stream_too_long':
      return 'the stream reached the gateway\'s limit of events per stream';
  }
}
