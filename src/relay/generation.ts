import { performance } from 'node:perf_hooks';
import { GatewayAbort, GatewayError, fromUpstreamFailure, type AbortReason } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import type { StreamLog, Usage } from '../streams/stream-log.js';
import { dataFrames } from '../sse/frame.js';
import type { Target } from '../upstream/catalog.js';
import { UpstreamError } from '../upstream/types.js';
import { withFailover, type AttemptRecord, type CircuitBreaker, type FailoverPolicy } from './failover.js';

export type Outcome = 'completed' | 'client_aborted' | 'upstream_error' | 'rejected';

export interface GenerationOptions {
  /** Where the model is served, in priority order (failover goes down the list). */
  targets: readonly Target[];
  /** The client's request; each attempt swaps in its upstream's model name. */
  body: ChatRequest;
  log: StreamLog;
  failover: FailoverPolicy;
  breaker: CircuitBreaker;
  /** Time allowed until the first batch arrives, per attempt. */
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
  /** The log keeps every event for resume; past this many the generation is stopped. */
  maxEvents?: number;
  now?: () => number;
}

const FINISH = '"finish_reason":"';
const USAGE = '"usage":{';

/**
 * One upstream generation feeding one stream log. `open()` pulls the first
 * batch (so failures before it keep their real status); `pump()` pulls the
 * rest, pausing while a reader's socket is full, and always ends the log.
 */
export class Generation {
  readonly controller = new AbortController();
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
      const won = await withFailover(o.targets, o.failover, o.breaker, this.controller.signal, o.firstByteTimeoutMs, this.attempts, async (target, signal) => {
        const iterator = target.upstream.stream({ ...request, model: target.model }, signal)[Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      });
      this.upstream = won.target.upstream.name;
      this.iterator = won.value.iterator;
      this.ttftMs = performance.now() - o.startedAt;
      if (!won.value.first.done) this.accept(won.value.first.value);
    } catch (e) {
      // withFailover already aborted every failed attempt's upstream request.
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
    } catch {
      // Aborted from outside (deleted, no reader, shutdown), or the upstream failed: timeouts
      // before the first byte abort only their attempt, so they land in the second branch.
      const reason: unknown = this.controller.signal.reason;
      if (reason instanceof GatewayAbort) {
        this.opts.log.finish({ kind: 'error', type: reason.reason, message: abortMessage(reason.reason) }, this.now());
      } else {
        // The same shape as a failure after the first byte: readers need not tell them apart.
        const e = this.error!;
        this.opts.log.finish({ kind: 'error', type: 'upstream_error', code: e.code, message: e.message }, this.now());
      }
      this.onFinished?.();
      return;
    }
    await this.pump();
  }

  /** Pulls until the upstream ends, fails or is aborted, and ends the log accordingly. Never rejects. */
  async pump(): Promise<void> {
    const log = this.opts.log;
    const signal = this.controller.signal;
    // One timer each, refreshed rather than re-created per batch.
    const idle = setTimeout(() => this.abort('upstream_idle'), this.opts.idleTimeoutMs);
    // Whole milliseconds: Node keeps one timer list per distinct duration, and a fractional one would get its own.
    const total = setTimeout(() => this.abort('max_duration'), Math.max(0, Math.ceil(this.opts.maxDurationMs - (performance.now() - this.opts.startedAt))));
    try {
      for (;;) {
        const wait = log.congestion();
        if (wait) {
          // A full client socket is not the upstream's silence.
          clearTimeout(idle);
          await wait;
        }
        if (signal.aborted) throw signal.reason;
        idle.refresh();
        const r = await this.iterator!.next();
        if (r.done) break;
        this.accept(r.value);
      }
      // An upstream that closes without [DONE] and without a finish_reason was cut off.
      if (this.finishReason === null) throw new UpstreamError(502, 'the upstream ended the stream before it finished', this.upstream ?? 'upstream');
      this.outcome = 'completed';
      log.finish({ kind: 'done', finish_reason: this.finishReason, usage: this.usage }, this.now());
    } catch (e) {
      const cause = signal.aborted ? signal.reason : e;
      if (cause instanceof GatewayAbort) {
        this.outcome = cause.reason === 'client_disconnected' ? 'client_aborted' : 'upstream_error';
        log.finish({ kind: 'error', type: cause.reason, message: abortMessage(cause.reason) }, this.now());
      } else {
        this.outcome = 'upstream_error';
        this.error = fromUpstreamFailure(cause, this.opts.secrets);
        log.finish({ kind: 'error', type: 'upstream_error', code: this.error.code, message: this.error.message }, this.now());
      }
      this.abort('upstream_timeout');
      void this.iterator?.return?.().catch(() => {});
    } finally {
      clearTimeout(idle);
      clearTimeout(total);
      this.onFinished?.();
    }
  }

  /**
   * Frames a batch once and scans the framed text for the two fields the
   * gateway needs (finish_reason, usage): one native search each per batch,
   * and a JSON.parse only for the one chunk that carries usage.
   */
  private accept(batch: string[]): void {
    const log = this.opts.log;
    let framed = dataFrames(log.lastId + 1, batch);
    let count = batch.length;
    if (this.finishReason === null) {
      const at = framed.indexOf(FINISH);
      if (at !== -1) this.finishReason = framed.slice(at + FINISH.length, framed.indexOf('"', at + FINISH.length));
    }
    if (framed.indexOf(USAGE) !== -1) {
      // The usage chunk comes last: look from the end, and stop at the first that carries it.
      for (let i = batch.length - 1; i >= 0; i--) {
        if (!batch[i]!.includes(USAGE)) continue;
        if (!this.takeUsage(batch[i]!)) {
          const kept = batch.slice(0, i).concat(batch.slice(i + 1));
          count = kept.length;
          framed = dataFrames(log.lastId + 1, kept);
        }
        break;
      }
    }
    this.chunks += count;
    log.appendFramed(framed, count);
    if (this.opts.maxEvents !== undefined && log.lastId >= this.opts.maxEvents) this.abort('stream_too_long');
  }

  /** Records a chunk's usage; false when the chunk exists only for it and the client did not ask. */
  private takeUsage(payload: string): boolean {
    const chunk = JSON.parse(payload) as { usage?: Usage; choices?: unknown[] };
    if (chunk.usage) this.usage = chunk.usage;
    return this.opts.clientWantsUsage || chunk.choices?.length !== 0;
  }
}

function abortMessage(reason: AbortReason): string {
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
