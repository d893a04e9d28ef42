import type { Readable } from 'node:stream';
import { SseParser, type SseSink } from './parser.js';

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

const END: IteratorResult<string[]> = Object.freeze({ value: undefined, done: true });

/**
 * Pulls an SSE body as batches of events, one batch per socket read. Reads are
 * pushed in by 'data' events and parsed at once, so a pull costs one promise:
 * no async generator and no stream async-iterator (each read through those cost
 * several promises and listener hops). While a batch waits for the consumer the
 * body is paused, so a slow client holds back the upstream, not our memory.
 */
export class SseBatchReader implements AsyncIterator<string[]> {
  private readonly parser: SseParser;
  private finished = false;
  private failure: unknown = null;
  private resolve: ((r: IteratorResult<string[]>) => void) | null = null;
  private reject: ((e: unknown) => void) | null = null;

  constructor(
    private readonly body: Readable,
    private readonly sink: BatchSink,
    /** Maps a failure (transport error, in-band error) to what next() rejects with; called when it does. */
    private readonly mapError: (e: unknown) => unknown,
  ) {
    this.parser = new SseParser(sink);
    body.on('data', this.onData);
    body.on('end', this.onEnd);
    // 'on', not 'once': an aborted response may report more than one error.
    body.on('error', this.onError);
    body.on('close', this.onClose);
  }

  next(): Promise<IteratorResult<string[]>> {
    if (this.sink.size > 0) return Promise.resolve({ value: this.sink.take(), done: false });
    if (this.failure !== null) return Promise.reject(this.mapError(this.failure));
    if (this.finished) return Promise.resolve(END);
    if (this.body.isPaused()) this.body.resume();
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** The consumer stops early: after the end marker the rest is drained (the socket goes back to the pool), else the body is cut. */
  return(): Promise<IteratorResult<string[]>> {
    this.stop();
    return Promise.resolve(END);
  }

  private stop(): void {
    if (this.body.readableEnded) return;
    if (this.finished && this.failure === null) {
      this.body.off('data', this.onData);
      this.body.resume();
    } else {
      this.body.destroy();
    }
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.finished || this.failure !== null) return;
    this.parser.push(chunk);
    if (this.sink.error) {
      this.failure = this.sink.error;
      this.body.destroy();
    } else if (this.sink.done) {
      this.finished = true;
      this.stop();
    } else if (this.sink.size > 0 && this.resolve === null) {
      // Nobody is pulling: hold the upstream until someone does.
      this.body.pause();
    }
    this.wake();
  };

  private readonly onEnd = (): void => {
    if (this.finished || this.failure !== null) return;
    this.parser.end();
    if (this.sink.error) this.failure = this.sink.error;
    // Without [DONE] the consumer judges by what it got (e.g. whether a finish_reason came).
    this.finished = true;
    this.wake();
  };

  private readonly onError = (e: unknown): void => {
    // After the end marker only the drain is left: its errors change nothing.
    if (this.finished || this.failure !== null) return;
    this.failure = e;
    this.wake();
  };

  private readonly onClose = (): void => {
    if (this.finished || this.failure !== null) return;
    this.failure = Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    this.wake();
  };

  /** Settles a pending next(): a batch first, then a failure, then the end (the order a pull sees them in). */
  private wake(): void {
    const resolve = this.resolve;
    if (resolve === null) return;
    if (this.sink.size > 0) resolve({ value: this.sink.take(), done: false });
    else if (this.failure !== null) this.reject!(this.mapError(this.failure));
    else if (this.finished) resolve(END);
    else return;
    this.resolve = null;
    this.reject = null;
  }
}
