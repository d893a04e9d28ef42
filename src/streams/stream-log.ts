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
  /** Framed `id:`/`data:` events, complete, in order. */
  onText(text: string): void;
  onEnd(end: StreamEnd, id: number): void;
  /** A promise while the reader's socket is full: the generation waits on it. */
  congestion(): Promise<void> | null;
}

/**
 * One generation's events, framed once as they arrive and kept for replay.
 * Events are stored per upstream batch (one string each, as written to the
 * wire), so the live path costs no per-event objects; a replay that starts
 * inside a batch finds the frame boundary by its id line.
 */
export class StreamLog {
  private readonly batches: string[] = [];
  private readonly firstIds: number[] = [];
  /** Id of the last data event; the final event has lastId + 1. */
  lastId = 0;
  end: StreamEnd | null = null;
  endedAt = 0;
  private readonly readers = new Set<LogReader>();
  /** Called when the number of readers changes. */
  onReadersChange: ((count: number) => void) | null = null;

  constructor(
    readonly id: string,
    readonly ownerKeyId: string,
  ) {}

  get readerCount(): number {
    return this.readers.size;
  }

  get finalId(): number {
    return this.lastId + 1;
  }

  /** Appends `count` events framed by dataFrames(lastId + 1, …). */
  appendFramed(text: string, count: number): void {
    if (count === 0) return;
    this.batches.push(text);
    this.firstIds.push(this.lastId + 1);
    this.lastId += count;
    for (const r of this.readers) r.onText(text);
  }

  finish(end: StreamEnd, now: number): void {
    if (this.end) return;
    this.end = end;
    this.endedAt = now;
    const id = this.finalId;
    for (const r of this.readers) r.onEnd(end, id);
    this.readers.clear();
    this.onReadersChange?.(0);
  }

  /** The framed events after `afterId` (all of them for 0). */
  textAfter(afterId: number): string {
    if (afterId >= this.lastId) return '';
    // The last batch whose first id is <= afterId + 1.
    let lo = 0;
    let hi = this.firstIds.length - 1;
    const want = Math.max(1, afterId + 1);
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstIds[mid]! <= want) lo = mid;
      else hi = mid - 1;
    }
    let head = this.batches[lo]!;
    if (this.firstIds[lo]! < want) {
      // Data lines never hold a line end, so "\n\nid: N\n" only occurs at a frame start.
      head = head.slice(head.indexOf('\n\nid: ' + want + '\n') + 2);
    }
    let out = head;
    for (let i = lo + 1; i < this.batches.length; i++) out += this.batches[i]!;
    return out;
  }

  /** Replays the events after `afterId`, then follows live ones until the end. */
  attach(reader: LogReader, afterId: number): void {
    const replay = this.textAfter(afterId);
    if (replay) reader.onText(replay);
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
