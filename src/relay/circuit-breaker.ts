export type CircuitState = 'closed' | 'open' | 'half_open';

interface Circuit {
  failures: number;
  openUntil: number;
  /** When the half-open trial request was let through; 0 = none out. */
  trialAt: number;
}

/**
 * Per-upstream circuit breaker: `threshold` retryable failures in a row open
 * it for `coolDownMs`; then one trial request is let through (half-open), and
 * its result closes or re-opens the circuit. It only advises: the failure
 * policy decides whether a request may skip an open upstream (it never may
 * when the model has no other target).
 */
export class CircuitBreaker {
  private readonly circuits = new Map<string, Circuit>();

  constructor(
    private readonly threshold: number,
    private readonly coolDownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a request may go to `upstream` now; no side effect (see take). */
  allows(upstream: string): boolean {
    const c = this.circuits.get(upstream);
    if (!c || c.failures < this.threshold) return true;
    const now = this.now();
    if (now < c.openUntil) return false;
    // A trial whose request never reported (its client left first) must not hold the circuit shut for good.
    return c.trialAt === 0 || now - c.trialAt >= Math.max(this.coolDownMs, 1000);
  }

  /** A request goes to `upstream`: while half-open it is the one trial. */
  take(upstream: string): void {
    const c = this.circuits.get(upstream);
    if (c && c.failures >= this.threshold) c.trialAt = this.now();
  }

  success(upstream: string): void {
    this.circuits.delete(upstream);
  }

  failure(upstream: string): void {
    let c = this.circuits.get(upstream);
    if (!c) this.circuits.set(upstream, (c = { failures: 0, openUntil: 0, trialAt: 0 }));
    c.failures++;
    c.trialAt = 0;
    if (c.failures >= this.threshold) c.openUntil = this.now() + this.coolDownMs;
  }

  /** The request that took the trial ended without a verdict on the upstream (client gone): let another try. */
  release(upstream: string): void {
    const c = this.circuits.get(upstream);
    if (c) c.trialAt = 0;
  }

  state(upstream: string): CircuitState {
    const c = this.circuits.get(upstream);
    if (!c || c.failures < this.threshold) return 'closed';
    return this.now() < c.openUntil || c.trialAt !== 0 ? 'open' : 'half_open';
  }
}
