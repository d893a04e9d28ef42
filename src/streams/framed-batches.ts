const EMPTY = Buffer.alloc(0);

/**
 * Framed events kept per batch (one Buffer each, the bytes written to the
 * wire), so the live path costs no per-event objects, and a kept stream's
 * bytes live outside the JS heap: thousands of finished streams kept for
 * resume are not copied and re-marked by every garbage collection. A replay
 * that starts inside a batch finds the frame boundary by its id line.
 */
export class FramedBatches {
  private batches: Buffer[] = [];
  private readonly firstIds: number[] = [];
  /** Once compacted: every batch in one Buffer, batch i from byte starts[i]. */
  private whole: Buffer | null = null;
  private starts: number[] | null = null;
  /** Id of the last event held. */
  lastId = 0;
  /** Bytes of the frames held. */
  bytes = 0;

  /** Adds `count` events framed with ids from `firstId`; returns the part that is new (empty when none is). */
  push(frames: Buffer, firstId: number, count: number): Buffer {
    const last = firstId + count - 1;
    if (count === 0 || last <= this.lastId) return EMPTY;
    let fresh = frames;
    let first = firstId;
    if (firstId <= this.lastId) {
      first = this.lastId + 1;
      fresh = sliceFrom(frames, first);
    }
    if (this.whole) this.expand();
    this.batches.push(fresh);
    this.firstIds.push(first);
    this.lastId = last;
    this.bytes += fresh.length;
    return fresh;
  }

  /**
   * Copies the batches into one Buffer of their exact size, for a log that is
   * kept after its end. Batches under 4 KB are slices of Node's shared 8 KB
   * pool slabs, and a kept slice holds its whole slab (with whatever else was
   * cut from it) for as long as it is kept.
   */
  compact(): void {
    if (this.whole || this.batches.length === 0) return;
    const only = this.batches[0]!;
    if (this.batches.length === 1 && only.byteOffset === 0 && only.buffer.byteLength === only.length) return;
    // allocUnsafeSlow: Buffer.concat would cut a small result from a pool slab again.
    const whole = Buffer.allocUnsafeSlow(this.bytes);
    const starts: number[] = [];
    let at = 0;
    for (const b of this.batches) {
      starts.push(at);
      at += b.copy(whole, at);
    }
    this.whole = whole;
    this.starts = starts;
    this.batches = [];
  }

  /** The framed events after `afterId` (all of them for 0); empty when there are none. */
  framesAfter(afterId: number): Buffer {
    if (afterId >= this.lastId || this.firstIds.length === 0) return EMPTY;
    const want = Math.max(1, afterId + 1);
    // The last batch whose first id is <= want.
    let lo = 0;
    let hi = this.firstIds.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstIds[mid]! <= want) lo = mid;
      else hi = mid - 1;
    }
    if (this.whole) return this.compactedFrom(lo, want);
    const head = this.firstIds[lo]! < want ? sliceFrom(this.batches[lo]!, want) : this.batches[lo]!;
    // Usually a reader attaches right after the first batch: that one Buffer, no copy.
    if (lo === this.batches.length - 1) return head;
    return Buffer.concat([head, ...this.batches.slice(lo + 1)]);
  }

  /** framesAfter of a compacted log: a view of its one Buffer, no copy. */
  private compactedFrom(batch: number, want: number): Buffer {
    const whole = this.whole!;
    const start = this.starts![batch]!;
    if (this.firstIds[batch]! >= want) return whole.subarray(start);
    const end = batch + 1 < this.starts!.length ? this.starts![batch + 1]! : whole.length;
    const at = frameAt(whole.subarray(start, end), want);
    return at === -1 ? EMPTY : whole.subarray(start + at);
  }

  /** Back to one Buffer per batch (views of the compacted one): a log restored after its end grows again. */
  private expand(): void {
    const whole = this.whole!;
    const starts = this.starts!;
    this.batches = starts.map((s, i) => whole.subarray(s, i + 1 < starts.length ? starts[i + 1] : whole.length));
    this.whole = null;
    this.starts = null;
  }
}

/** The frames of `frames` from id `id` on. */
function sliceFrom(frames: Buffer, id: number): Buffer {
  const at = frameAt(frames, id);
  return at === -1 ? EMPTY : frames.subarray(at);
}

/** Where the frame with id `id` starts in `frames`, or -1. Data lines never hold a line end, so "\n\nid: N\n" only occurs at a frame start. */
function frameAt(frames: Buffer, id: number): number {
  const line = 'id: ' + id + '\n';
  if (frames.length >= line.length && frames.toString('latin1', 0, line.length) === line) return 0;
  const at = frames.indexOf('\n\n' + line);
  return at === -1 ? -1 : at + 2;
}
