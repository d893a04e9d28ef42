const EMPTY = Buffer.alloc(0);

/**
 * Framed events kept per batch (one Buffer each, the bytes written to the
 * wire), so the live path costs no per-event objects, and a kept stream's
 * bytes live outside the JS heap: thousands of finished streams kept for
 * resume are not copied and re-marked by every garbage collection. A replay
 * that starts inside a batch finds the frame boundary by its id line.
 */
export class FramedBatches {
  private readonly batches: Buffer[] = [];
  private readonly firstIds: number[] = [];
  /** Id of the last event held. */
  lastId = 0;

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
    this.batches.push(fresh);
    this.firstIds.push(first);
    this.lastId = last;
    return fresh;
  }

  /** The framed events after `afterId` (all of them for 0); empty when there are none. */
  framesAfter(afterId: number): Buffer {
    if (afterId >= this.lastId || this.batches.length === 0) return EMPTY;
    const want = Math.max(1, afterId + 1);
    // The last batch whose first id is <= want.
    let lo = 0;
    let hi = this.firstIds.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstIds[mid]! <= want) lo = mid;
      else hi = mid - 1;
    }
    const head = this.firstIds[lo]! < want ? sliceFrom(this.batches[lo]!, want) : this.batches[lo]!;
    // Usually a reader attaches right after the first batch: that one Buffer, no copy.
    if (lo === this.batches.length - 1) return head;
    return Buffer.concat([head, ...this.batches.slice(lo + 1)]);
  }
}

/** The frames of `frames` from id `id` on. Data lines never hold a line end, so "\n\nid: N\n" only occurs at a frame start. */
function sliceFrom(frames: Buffer, id: number): Buffer {
  const line = 'id: ' + id + '\n';
  if (frames.length >= line.length && frames.toString('latin1', 0, line.length) === line) return frames;
  const at = frames.indexOf('\n\n' + line);
  return at === -1 ? EMPTY : frames.subarray(at + 2);
}
