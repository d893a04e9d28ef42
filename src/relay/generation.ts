import { performance } from 'node:perf_hooks';
import { GatewayAbort, GatewayError, fromUpstreamFailure, type AbortReason } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import type { StreamLog, Usage } from '../streams/stream-log.js';
import { dataFrames } from '../sse/frame.js';
import { UpstreamError, type ChatUpstream } from '../upstream/types.js';

export type Outcome = 'completed' | 'client_aborted' | 'upstream_error' | 'rejected';

export interface GenerationOptions {
  upstream: ChatUpstream;
  /** The request as the upstream should see it (its own model name). */
  request: ChatRequest;
  log: StreamLog;
  /** Time allowed until the first batch arrives. */
  firstByteTimeoutMs: number;
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

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  abort(reason: AbortReason): void {
    if (!this.controller.signal.aborted) this.controller.abort(new GatewayAbort(reason));
  }

  /** Rejects with a GatewayError when the upstream fails before its first batch. */
  async open(): Promise<void> {
    const timer = setTimeout(() => this.abort('upstream_timeout'), this.opts.firstByteTimeoutMs);
    try {
      const request: ChatRequest = { ...this.opts.request, stream: true, stream_options: { include_usage: true } };
      this.iterator = this.opts.upstream.stream(request, this.controller.signal)[Symbol.asyncIterator]();
      const first = await this.iterator.next();
      this.ttftMs = performance.now() - this.opts.startedAt;
      if (!first.done) this.accept(first.value);
    } catch (e) {
      const cause = this.controller.signal.aborted ? this.controller.signal.reason : e;
      this.abort('upstream_timeout'); // release the upstream whatever went wrong
      this.error = fromUpstreamFailure(cause, this.opts.secrets);
      this.outcome = cause instanceof GatewayAbort && cause.reason === 'client_disconnected' ? 'client_aborted' : 'upstream_error';
      throw this.error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** open() then pump(), for a generation nobody awaits: a failure to open ends the log with an error event. */
  async run(): Promise<void> {
    try {
      await this.open();
    } catch {
      const reason: unknown = this.controller.signal.reason;
      if (reason instanceof GatewayAbort && reason.reason !== 'upstream_timeout') {
        this.opts.log.finish({ kind: 'error', type: reason.reason, message: abortMessage(reason.reason) }, this.now());
      } else {
        const e = this.error!;
        this.opts.log.finish({ kind: 'error', type: e.type, code: e.code, message: e.message }, this.now());
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
    try {
      for (;;) {
        const wait = log.congestion();
        if (wait) await wait;
        if (signal.aborted) throw signal.reason;
        const r = await this.iterator!.next();
        if (r.done) break;
        this.accept(r.value);
      }
      // An upstream that closes without [DONE] and without a finish_reason was cut off.
      if (this.finishReason === null) throw new UpstreamError(502, 'the upstream ended the stream before it finished', this.opts.upstream.name);
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
      return 'the upstream stopped responding in time';
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
