import { FramedBatches } from './framed-batches.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

/** How a generation ended. The final event carries the id after the last data event. */
export type StreamEnd = (
  | { kind: 'done'; finish_reason: string | null; usage: Usage | null }
  | { kind: 'error'; type: string; code?: string; message: string }
) & {
  /** The log holds the closing events already (an API whose stream ends in-band): the last data event is the final one. */
  framed?: true;
};

/** Someone following a log: an SSE writer on a client connection. */
export interface LogReader {
  /** Framed `id:`/`data:` events, complete, in order (the bytes to write). */
  onFrames(frames: Buffer): void;
  onEnd(end: StreamEnd, id: number): void;
  /** The stream goes on at another replica: let the client go, so it reconnects there. */
  onMoved(): void;
  /** A promise while the reader's socket is full: the generation waits on it. */
  congestion(): Promise<void> | null;
  /** Bytes written to the reader but not yet taken by its socket. */
  readonly buffered?: number;
}

/** What a reader needs of a log, wherever it lives (this process, or Redis for another replica's). */
export interface ReadableLog {
  readonly id: string;
  readonly lastId: number;
  readonly finalId: number;
  readonly end: StreamEnd | null;
  attach(reader: LogReader, afterId: number): void;
  detach(reader: LogReader): void;
  /** The reader is done with it (a remote log unsubscribes). */
  release(): void;
}

/** Mirrors a log elsewhere (Redis) as it grows, so other replicas can serve its readers. */
export interface LogMirror {
  onAppend(log: StreamLog, frames: Buffer, firstId: number, count: number): void;
  onFinish(log: StreamLog, end: StreamEnd, finalId: number): void;
  /** This replica stops writing the log, unended, for another to continue. */
  onHandOver(log: StreamLog): void;
}

/**
 * One generation's events, framed once as they arrive and kept for replay.
 * Readers may come and go; each gets every event after the id it names.
 */
export class StreamLog implements ReadableLog {
  mirror: LogMirror | null = null;
  private readonly events = new FramedBatches();
  end: StreamEnd | null = null;
  endedAt = 0;
  private readonly readers = new Set<LogReader>();
  /** Called when the number of readers changes. */
  onReadersChange: ((count: number) => void) | null = null;

  constructor(
    readonly id: string,
    readonly ownerKeyId: string,
    /** Told once, when the log has ended (its store keeps finished logs in that order). */
    private readonly onFinished: ((log: StreamLog) => void) | null = null,
  ) {}

  /** Id of the last data event; the final event has lastId + 1. */
  get lastId(): number {
    return this.events.lastId;
  }

  get readerCount(): number {
    return this.readers.size;
  }

  get finalId(): number {
    return this.end?.framed ? this.lastId : this.lastId + 1;
  }

  /** Bytes of the framed events held. */
  get bytes(): number {
    return this.events.bytes;
  }

  /** Holds the events in one Buffer of their exact size (a log kept after its end; see FramedBatches.compact). */
  compact(): void {
    this.events.compact();
  }

  /** Appends `count` events framed by dataFrames(lastId + 1, …), as bytes. */
  appendFramed(frames: Buffer, count: number): void {
    if (count === 0) return;
    const first = this.lastId + 1;
    this.events.push(frames, first, count);
    // Mirror first: a replica killed right after leaves no client ahead of the shared record.
    this.mirror?.onAppend(this, frames, first, count);
    for (const r of this.readers) r.onFrames(frames);
  }

  /** Puts back events another replica logged (a takeover), before anyone reads this log. */
  restore(frames: Buffer, firstId: number, count: number): void {
    this.events.push(frames, firstId, count);
  }

  finish(end: StreamEnd, now: number): void {
    if (this.end || this.handedOver) return;
    this.end = end;
    this.endedAt = now;
    const id = this.finalId;
    this.mirror?.onFinish(this, end, id);
    // The store first: it counts an ended log's bytes from here on (and may drop it at once).
    this.onFinished?.(this);
    for (const r of this.readers) r.onEnd(end, id);
    this.readers.clear();
    this.onReadersChange?.(0);
  }

  release(): void {}

  /** Whether another replica continues this log (see handOver). */
  handedOver = false;

  /**
   * Stops here without an end: another replica continues the generation from
   * the shared record, and readers here are let go to reconnect to it.
   */
  handOver(): void {
    if (this.end || this.handedOver) return;
    this.handedOver = true;
    const mirror = this.mirror;
    this.mirror = null;
    mirror?.onHandOver(this);
    for (const r of this.readers) r.onMoved();
    this.readers.clear();
  }

  framesAfter(afterId: number): Buffer {
    return this.events.framesAfter(afterId);
  }

  /** Replays the events after `afterId`, then follows live ones until the end. */
  attach(reader: LogReader, afterId: number): void {
    const replay = this.framesAfter(afterId);
    if (replay.length > 0) reader.onFrames(replay);
    if (this.end) {
      reader.onEnd(this.end, this.finalId);
      return;
    }
    this.readers.add(reader);
    this.onReadersChange?.(this.readers.size);
  }

  detach(reader: LogReader): void {
    if (this.readers.delete(reader)) this.onReadersChange?.(this.readers.size);
  }

  /** The most bytes any reader has waiting in its socket's buffer (backpressure keeps this bounded). */
  maxReaderBuffered(): number {
    let max = 0;
    for (const r of this.readers) max = Math.max(max, r.buffered ?? 0);
    return max;
  }

  /** Resolves when every reader's socket can take more; null when none is full. */
  congestion(): Promise<void> | null {
    let waits: Promise<void>[] | null = null;
    for (const r of this.readers) {
      const p = r.congestion();
      if (p) (waits ??= []).push(p);
    }
    if (!waits) return null;
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined);
  }
}
