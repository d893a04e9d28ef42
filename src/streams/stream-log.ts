import { dataFrame } from '../sse/frame.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

/** How a generation ended. The final event carries the id after the last data event. */
export type StreamEnd =
  | { kind: 'done'; finish_reason: string | null; usage: Usage | null }
  | { kind: 'error'; type: string; code?: string; message: string };

/** Someone following a log: an SSE writer on a client connection. */
export interface LogReader {
  /** `frames[from..to)` are new; each is a complete `id:`/`data:` event. */
  onFrames(frames: readonly string[], from: number, to: number): void;
  onEnd(end: StreamEnd, id: number): void;
  /** A promise while the reader's socket is full: the generation waits on it. */
  congestion(): Promise<void> | null;
}

/**
 * One generation's events, framed once as they arrive and kept for replay.
 * Event n (1-based) is frames[n-1]; the final event has id frames.length + 1.
 * Readers may come and go; each gets every event after the id it names.
 */
export class StreamLog {
  readonly frames: string[] = [];
  end: StreamEnd | null = null;
  endedAt = 0;
  private readonly readers = new Set<LogReader>();
  /** Called when the last reader leaves before the end, and when a reader arrives. */
  onReadersChange: ((count: number) => void) | null = null;

  constructor(
    readonly id: string,
    readonly ownerKeyId: string,
  ) {}

  get readerCount(): number {
    return this.readers.size;
  }

  get finalId(): number {
    return this.frames.length + 1;
  }

  append(payloads: readonly string[]): void {
    const from = this.frames.length;
    for (let i = 0; i < payloads.length; i++) this.frames.push(dataFrame(from + i + 1, payloads[i]!));
    const to = this.frames.length;
    for (const r of this.readers) r.onFrames(this.frames, from, to);
  }

  finish(end: StreamEnd, now: number): void {
    if (this.end) return;
    this.end = end;
    this.endedAt = now;
    const id = this.finalId;
    for (const r of this.readers) r.onEnd(end, id);
    this.readers.clear();
  }

  /** Replays the events after `afterId`, then follows live ones until the end. */
  attach(reader: LogReader, afterId: number): void {
    const from = Math.max(0, Math.min(afterId, this.frames.length));
    if (from < this.frames.length) reader.onFrames(this.frames, from, this.frames.length);
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
