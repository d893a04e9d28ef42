import type { Dispatcher } from 'undici';
import type { BodySink, PushedBody } from '../sse/batch-reader.js';

/** A non-2xx (or non-event-stream) answer to a streamed request. */
export class StreamRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfter: string | undefined,
  ) {
    super(`upstream answered ${status}`);
  }
}

/** An error body is kept for its message; past this much it is not worth reading. */
const MAX_REFUSAL_BYTES = 65_536;

/**
 * One streamed POST on undici's dispatch API: the response's reads go
 * straight from the socket parser to the SSE reader, with no IncomingMessage,
 * Readable or event emitter per request. `response` settles once the headers
 * are in: with this body for a 2xx event stream, else with a StreamRefusal
 * carrying the (buffered) error body, or the transport's error.
 */
export class EventStreamRequest implements Dispatcher.DispatchHandler, PushedBody {
  readonly response: Promise<PushedBody>;
  private resolve!: (body: PushedBody) => void;
  private reject!: (e: unknown) => void;
  private settled = false;
  private controller: Dispatcher.DispatchController | null = null;
  private sink: BodySink | null = null;
  /** Reads between the headers and attach(): the promise hands the body over a tick later. */
  private early: Buffer[] | null = null;
  private ended = false;
  private failure: unknown = null;
  /** destroy() was called (or the signal fired): nothing more is delivered. */
  private cut: Error | null = null;
  private refusal: { status: number; parts: Buffer[]; bytes: number; retryAfter: string | undefined } | null = null;

  constructor(
    private readonly signal: AbortSignal,
    /** Called once, when undici is done with the request (its connection may take another). */
    private readonly onDone: () => void,
  ) {
    this.response = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // The listener goes with the attempt's own signal; a destroy after the end is a no-op.
    signal.addEventListener('abort', () => this.destroy(signal.reason as Error), { once: true });
  }

  // --- undici's side ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Aborted while the connection was still being made: undici could not be told until now.
    if (this.cut) controller.abort(this.cut);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx (100 Continue, 103 Early Hints) come before the real answer.
    if (this.cut || status < 200) return;
    const type = headers['content-type'];
    if (status >= 200 && status < 300 && typeof type === 'string' && type.includes('text/event-stream')) {
      this.settled = true;
      this.resolve(this);
      return;
    }
    const retryAfter = headers['retry-after'];
    this.refusal = { status, parts: [], bytes: 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.cut) return;
    const refusal = this.refusal;
    if (refusal) {
      if (refusal.bytes < MAX_REFUSAL_BYTES) {
        refusal.parts.push(chunk);
        refusal.bytes += chunk.length;
      }
      return;
    }
    if (this.sink) this.sink.onData(chunk);
    else (this.early ??= []).push(chunk);
  }

  onResponseEnd(): void {
    this.onDone();
    if (this.cut) return;
    const refusal = this.refusal;
    if (refusal) {
      const text = Buffer.concat(refusal.parts).toString('utf8', 0, MAX_REFUSAL_BYTES);
      this.settle(new StreamRefusal(refusal.status, text, refusal.retryAfter));
      return;
    }
    this.ended = true;
    this.sink?.onEnd();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.onDone();
    if (this.cut) return;
    if (!this.settled) return this.settle(error);
    this.failure = error;
    this.sink?.onError(error);
  }

  // --- the reader's side ---

  attach(sink: BodySink): void {
    this.sink = sink;
    const early = this.early;
    this.early = null;
    if (early) for (const chunk of early) if (!this.cut) sink.onData(chunk);
    if (this.failure !== null) sink.onError(this.failure);
    else if (this.ended) sink.onEnd();
  }

  pause(): void {
    this.controller?.pause();
  }

  resume(): void {
    this.controller?.resume();
  }

  /** Cuts the request; whoever waits (on `response`, or the reader on its next read) learns at once. */
  destroy(reason: Error = new Error('the response body was cut')): void {
    if (this.cut || this.ended || this.failure !== null) return;
    this.cut = reason;
    this.controller?.abort(reason);
    if (!this.settled) return this.settle(this.signal.aborted ? this.signal.reason : reason);
    this.failure = reason;
    this.sink?.onError(reason);
  }

  private settle(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(e);
  }
}
