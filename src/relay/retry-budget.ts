/**
 * How many retries this replica may send upstream: at most `ratio` of the
 * requests of the last `windowMs`, plus `minRetries` in that window so a
 * quiet replica can still retry (Finagle's RetryBudget, Envoy's retry
 * budget). An upstream in trouble then sees about 1.2× its load from us,
 * never 3×, however many clients fail at once.
 */
export class RetryBudget {
  private readonly requests: Float64Array;
  private readonly retries: Float64Array;
  private readonly slotMs: number;
  private slot = 0;
  private slotStart: number;
  private requestSum = 0;
  private retrySum = 0;

  constructor(
    private readonly ratio: number,
    private readonly minRetries: number,
    windowMs = 10_000,
    private readonly now: () => number = Date.now,
    slots = 10,
  ) {
    this.requests = new Float64Array(slots);
    this.retries = new Float64Array(slots);
    this.slotMs = windowMs / slots;
    this.slotStart = now();
  }

  /** A client request that will call upstream. */
  request(): void {
    this.advance();
    this.requests[this.slot]!++;
    this.requestSum++;
  }

  /** Spends one retry if the budget has one. */
  tryRetry(): boolean {
    this.advance();
    if (this.retrySum >= this.minRetries + this.ratio * this.requestSum) return false;
    this.retries[this.slot]!++;
    this.retrySum++;
    return true;
  }

  /** Moves to the current slot, clearing those that fell out of the window. */
  private advance(): void {
    const now = this.now();
    let steps = Math.floor((now - this.slotStart) / this.slotMs);
    if (steps <= 0) return;
    this.slotStart += steps * this.slotMs;
    steps = Math.min(steps, this.requests.length);
    for (let i = 0; i < steps; i++) {
      this.slot = (this.slot + 1) % this.requests.length;
      this.requestSum -= this.requests[this.slot]!;
      this.retrySum -= this.retries[this.slot]!;
      this.requests[this.slot] = 0;
      this.retries[this.slot] = 0;
    }
  }
}
