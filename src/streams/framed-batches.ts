/**
 * Framed events kept per batch (one string each, as written to the wire), so
 * the live path costs no per-event objects. A replay that starts inside a
 * batch finds the frame boundary by its id line.
 */
export class FramedBatches {
  private readonly batches: string[] = [];
  private readonly firstIds: number[] = [];
  /** Id of the last event held. */
  lastId = 0;

  /** Adds `count` events framed with ids from `firstId`; returns the part that is new. */
  push(text: string, firstId: number, count: number): string {
    const last = firstId + count - 1;
    if (count === 0 || last <= this.lastId) return '';
    let fresh = text;
    let first = firstId;
    if (firstId <= this.lastId) {
      first = this.lastId + 1;
      fresh = sliceFrom(text, first);
    }
    this.batches.push(fresh);
    this.firstIds.push(first);
    this.lastId = last;
    return fresh;
  }

  /** The framed events after `afterId` (all of them for 0). */
  textAfter(afterId: number): string {
    if (afterId >= this.lastId || this.batches.length === 0) return '';
    const want = Math.max(1, afterId + 1);
    // The last batch whose first id is <= want.
    let lo = 0;
    let hi = this.firstIds.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.firstIds[mid]! <= want) lo = mid;
      else hi = mid - 1;
    }
    let out = this.firstIds[lo]! < want ? sliceFrom(this.batches[lo]!, want) : this.batches[lo]!;
    for (let i = lo + 1; i < this.batches.length; i++) out += this.batches[i]!;
    return out;
  }

}

/** The frames of `text` from id `id` on. Data lines never hold a line end, so "\n\nid: N\n" only occurs at a frame start. */
function sliceFrom(text: string, id: number): string {
  if (text.startsWith('id: ' + id + '\n')) return text;
  const at = text.indexOf('\n\nid: ' + id + '\n');
  return at === -1 ? '' : text.slice(at + 2);
}
