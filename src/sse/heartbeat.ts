/**
 * One timer for every open stream instead of one each: at 2,000 streams that
 * is 2,000 fewer timers to create, keep and clear. A stream is pinged when a
 * whole interval went by without a write.
 */
export interface Beating {
  /** Set on every write; the ticker clears it, and pings when it finds it clear. */
  wrote: boolean;
  ping(): void;
}

export class HeartbeatTicker {
  private readonly streams = new Set<Beating>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly intervalMs: number) {}

  add(s: Beating): void {
    this.streams.add(s);
    if (!this.timer) {
      this.timer = setInterval(this.tick, this.intervalMs);
      this.timer.unref();
    }
  }

  remove(s: Beating): void {
    this.streams.delete(s);
    if (this.streams.size === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private readonly tick = (): void => {
    for (const s of this.streams) {
      if (!s.wrote) s.ping();
      s.wrote = false;
    }
  };
}
