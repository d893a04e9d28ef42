import { SseParser, type SseSink } from './parser.js';

/**
 * A response body that pushes its reads (the upstream transport's dispatch
 * handler): no stream machinery and no event emitter between the socket and
 * the parser.
 */
export interface PushedBody {
  /** Starts delivery to `sink`; reads that arrived before are handed over first. */
  attach(sink: BodySink): void;
  pause(): void;
  resume(): void;
  /** Cuts the body (its connection is closed); nothing reaches the sink after it. */
  destroy(reason?: Error): void;
}

export interface BodySink {
  onData(chunk: Buffer): void;
  onEnd(): void;
  /** The body failed (connection cut, transport error); nothing follows. */
  onError(e: unknown): void;
}

/** Where the reader's parser puts events, and how it says the stream is over. */
export interface BatchSink extends SseSink {
  /** Events parsed and not taken yet. */
  readonly size: number;
  take(): string[];
  /** The stream's own end marker ([DONE]) was seen: nothing after it counts. */
  readonly done: boolean;
  /** The stream reported a failure in-band. */
  readonly error: Error | null;
}

/** What a pull gets at the end: `value` true when the stream's end marker was seen (see ChatUpstream.stream). */
export type BatchResult = IteratorResult<string[], boolean | undefined>;

const END: BatchResult = Object.freeze({ value: undefined, done: true });
const MARKED_END: BatchResult = Object.freeze({ value: true, done: true });

/**
 * Pulls an SSE body as batches of events, one batch per socket read. Reads are
 * pushed in by 'data' events and parsed at once, so a pull costs one promise:
 * no async generator and no stream async-iterator (each read through those cost
 * several promises and listener hops). While a batch waits for the consumer the
 * body is paused, so a slow client holds back the upstream, not our memory.
 */
export class SseBatchReader implements AsyncIterator<string[], boolean | undefined>, BodySink {
  private readonly parser: SseParser;
  private paused = false;
  private finished = false;
  private failure: unknown = null;
  private resolve: ((r: BatchResult) => void) | null = null;
  private reject: ((e: unknown) => void) | null = null;

  constructor(
    private readonly body: PushedBody,
    private readonly sink: BatchSink,
    /** Maps a failure (transport error, in-band error) to what next() rejects with; called when it does. */
    private readonly mapError: (e: unknown) => unknown,
  ) {
    this.parser = new SseParser(sink);
    body.attach(this);
  }

  next(): Promise<BatchResult> {
    if (this.paused && this.sink.size === 0 && this.failure === null && !this.finished) {
      this.paused = false;
      // undici's resume parses what it held at once, before this pull waits: taken below, or it
      // would sit unseen (the body paused again, nobody pulling) until a later read woke this one.
      this.body.resume();
    }
    if (this.sink.size > 0) return Promise.resolve({ value: this.sink.take(), done: false });
    if (this.failure !== null) return Promise.reject(this.mapError(this.failure));
    if (this.finished) return Promise.resolve(this.end());
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** The consumer stops early: after the end marker the rest is drained (the socket goes back to the pool), else the body is cut. */
  return(): Promise<BatchResult> {
    this.stop();
    return Promise.resolve(END);
  }

  private stopped = false;

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // After [DONE] the rest is read and ignored (onData returns early), so the connection goes back to the pool.
    if (this.finished && this.failure === null) {
      if (this.paused) this.body.resume();
    } else {
      this.body.destroy();
    }
  }

  onData(chunk: Buffer): void {
    if (this.finished || this.failure !== null) return;
    this.parser.push(chunk);
    if (this.sink.error) {
      this.failure = this.sink.error;
      this.stop();
    } else if (this.sink.done) {
      this.finished = true;
      this.stop();
    } else if (this.sink.size > 0 && this.resolve === null && !this.paused) {
      // Nobody is pulling: hold the upstream until someone does.
      this.paused = true;
      this.body.pause();
    }
    this.wake();
  }

  onEnd(): void {
    // The body is over: a destroy() now (return() of an unfinished stream) has nothing left to cut.
    this.stopped = true;
    if (this.finished || this.failure !== null) return;
    this.parser.end();
    if (this.sink.error) this.failure = this.sink.error;
    // Without [DONE] the consumer judges by what it got (e.g. whether a finish_reason came).
    this.finished = true;
    this.wake();
  }

  onError(e: unknown): void {
    this.stopped = true;
    // After the end marker only the drain is left: its errors change nothing.
    if (this.finished || this.failure !== null) return;
    this.failure = e;
    this.wake();
  }

  /** The final result: whether the body ended after its end marker or just ended. */
  private end(): BatchResult {
    return this.sink.done ? MARKED_END : END;
  }

  /** Settles a pending next(): a batch first, then a failure, then the end (the order a pull sees them in). */
  private wake(): void {
    const resolve = this.resolve;
    if (resolve === null) return;
    if (this.sink.size > 0) resolve({ value: this.sink.take(), done: false });
    else if (this.failure !== null) this.reject!(this.mapError(this.failure));
    else if (this.finished) resolve(this.end());
    else return;
    this.resolve = null;
    this.reject = null;
  }
}
