import { performance } from 'node:perf_hooks';
import { GatewayAbort, GatewayError } from '../errors.js';
import { sleep } from '../abortable-sleep.js';
import { UpstreamError } from '../upstream/types.js';
import type { Target } from '../upstream/catalog.js';

/**
 * The gateway's retry policy, in one place: before the first byte reaches the
 * client, a connect error, 429, 5xx or timeout moves on to the model's next
 * upstream (bounded attempts, backoff with jitter, Retry-After honoured when
 * the same upstream is tried again). After the first byte nothing is retried.
 */

export interface FailoverPolicy {
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  /** A Retry-After longer than this is not waited for: the same upstream is not tried again. */
  retryAfterCapMs: number;
}

/** One try, as the request's log line reports it. */
export interface AttemptRecord {
  upstream: string;
  /** The upstream's HTTP status; 0 = no response; 'ok'; 'skipped' = circuit open. */
  result: number | 'ok' | 'skipped' | 'timeout';
  ms: number;
}

/** Whether a failure before the first byte may be tried again (here or elsewhere). */
function retryable(err: unknown): boolean {
  if (err instanceof GatewayAbort) return err.reason === 'upstream_timeout';
  if (err instanceof UpstreamError) return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
  return false;
}

/**
 * Per-upstream circuit breaker: `threshold` failures in a row open it for
 * `coolDownMs`; then one trial request is let through (half-open), and its
 * result closes or re-opens the circuit.
 */
export class CircuitBreaker {
  private readonly state = new Map<string, { failures: number; openUntil: number; trial: boolean }>();

  constructor(
    private readonly threshold: number,
    private readonly coolDownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  allow(upstream: string): boolean {
    const s = this.state.get(upstream);
    if (!s || s.failures < this.threshold) return true;
    if (this.now() < s.openUntil || s.trial) return false;
    s.trial = true;
    return true;
  }

  success(upstream: string): void {
    this.state.delete(upstream);
  }

  failure(upstream: string): void {
    const s = this.state.get(upstream) ?? { failures: 0, openUntil: 0, trial: false };
    s.failures++;
    s.trial = false;
    if (s.failures >= this.threshold) s.openUntil = this.now() + this.coolDownMs;
    this.state.set(upstream, s);
  }

}

export interface AttemptResult<T> {
  value: T;
  target: Target;
}

/**
 * Runs `once` against the targets in priority order until one succeeds.
 * Each attempt gets its own signal: the parent's abort (client gone, delete)
 * reaches it, and so does its own first-byte timer.
 */
export async function withFailover<T>(
  targets: readonly Target[],
  policy: FailoverPolicy,
  breaker: CircuitBreaker,
  parent: AbortSignal,
  firstByteTimeoutMs: number,
  attempts: AttemptRecord[],
  once: (target: Target, signal: AbortSignal) => Promise<T>,
): Promise<AttemptResult<T>> {
  let last: unknown = null;
  let tried = 0;
  for (let i = 0; tried < policy.maxAttempts && i < policy.maxAttempts * targets.length; i++) {
    const target = targets[i % targets.length]!;
    const name = target.upstream.name;
    if (!breaker.allow(name)) {
      attempts.push({ upstream: name, result: 'skipped', ms: 0 });
      continue;
    }
    tried++;
    const controller = new AbortController();
    const onParentAbort = () => controller.abort(parent.reason);
    parent.addEventListener('abort', onParentAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new GatewayAbort('upstream_timeout')), firstByteTimeoutMs);
    const started = performance.now();
    try {
      if (parent.aborted) throw parent.reason;
      const value = await once(target, controller.signal);
      attempts.push({ upstream: name, result: 'ok', ms: Math.round(performance.now() - started) });
      breaker.success(name);
      return { value, target };
    } catch (e) {
      parent.removeEventListener('abort', onParentAbort);
      const cause = controller.signal.aborted ? controller.signal.reason : e;
      controller.abort(cause);
      if (parent.aborted) throw parent.reason;
      const result = cause instanceof UpstreamError ? cause.status : cause instanceof GatewayAbort ? 'timeout' : 0;
      attempts.push({ upstream: name, result, ms: Math.round(performance.now() - started) });
      last = cause;
      if (!retryable(cause)) throw cause;
      breaker.failure(name);
      if (tried >= policy.maxAttempts) break;
      const delay = backoff(policy, tried, cause, targets[(i + 1) % targets.length] === target);
      if (delay === null) break;
      await sleep(delay, parent);
    } finally {
      clearTimeout(timer);
    }
  }
  if (last === null) {
    throw new GatewayError('upstream_error', 'Every upstream for this model is unavailable (circuit open); retry shortly', {
      headers: { 'retry-after': '5' },
    });
  }
  throw last;
}

/** Full-jitter exponential backoff; a Retry-After counts when the same upstream is next. Null: give up. */
function backoff(policy: FailoverPolicy, tried: number, cause: unknown, sameNext: boolean): number | null {
  const base = Math.min(policy.maxBackoffMs, policy.backoffMs * 2 ** (tried - 1));
  const jittered = Math.random() * base;
  const retryAfterMs = cause instanceof UpstreamError && cause.retryAfterSeconds ? cause.retryAfterSeconds * 1000 : 0;
  if (!sameNext || retryAfterMs === 0) return jittered;
  if (retryAfterMs > policy.retryAfterCapMs) return null;
  return Math.max(jittered, retryAfterMs);
}
