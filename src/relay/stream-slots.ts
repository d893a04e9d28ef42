import { GatewayError } from '../errors.js';

/**
 * Open streams per key, at most `max` at once: per client key
 * (MAX_CONCURRENT_STREAMS, a slot held until the generation ends), and per
 * stream id for its readers.
 */
export class StreamSlots {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly refusal = `Too many concurrent streams: at most ${max} per key`,
  ) {}

  /** Returns the release function; throws 429 while the key is at its limit. */
  acquire(key: string): () => void {
    const n = this.open.get(key) ?? 0;
    if (n >= this.max) {
      throw new GatewayError('too_many_streams', this.refusal, {
        headers: { 'retry-after': '1' },
      });
    }
    this.open.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(key) ?? 1) - 1;
      if (left <= 0) this.open.delete(key);
      else this.open.set(key, left);
    };
  }

  count(key: string): number {
    return this.open.get(key) ?? 0;
  }

  get total(): number {
    let t = 0;
    for (const n of this.open.values()) t += n;
    return t;
  }
}
