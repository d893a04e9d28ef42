import { performance } from 'node:perf_hooks';
import { GatewayAbort } from '../errors.js';
import { sleep } from '../abortable-sleep.js';
import { UpstreamError } from '../upstream/types.js';
import type { Target } from '../upstream/catalog.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { RetryBudget } from './retry-budget.js';

/**
 * The gateway's failure policy, in one place (CONTRACT "Failure policy"):
 * before the first byte reaches the client, a connect error, 408, 429, 5xx
 * or timeout moves on to the model's next target; one upstream is tried at
 * most twice per request; retries stay within the replica's retry budget;
 * one deadline bounds the whole first-byte wait; the breaker may only steer
 * a request away from an upstream, never refuse it while the model has no
 * other target. After the first byte nothing is retried.
 */

export interface FailoverPolicy {
  /** Tries per request in all, over the model's targets. */
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  /** A Retry-After longer than this is not waited for: the same upstream is not tried again. */
  retryAfterCapMs: number;
  breakerThreshold: number;
  breakerCoolDownMs: number;
  /** Retries allowed as a share of requests (last 10 s), plus a floor of retryBudgetMinRetries. */
  retryBudgetRatio: number;
  retryBudgetMinRetries: number;
}

/** One upstream is never asked more than this often for one client request. */
export const MAX_TRIES_PER_UPSTREAM = 2;

/** One try, as the request's log line reports it. */
export interface AttemptRecord {
  upstream: string;
  /**
   * The upstream's HTTP status; 0 = no response; 'ok'; 'skipped' = circuit
   * open (another target served); 'timeout'; 'no_retry_budget' = a retry the
   * replica's budget refused (not sent).
   */
  result: number | 'ok' | 'skipped' | 'timeout' | 'no_retry_budget';
  ms: number;
}

export interface AttemptResult<T> {
  value: T;
  target: Target;
}

/** Whether a failure before the first byte may be tried again (here or elsewhere). */
function retryable(err: unknown): boolean {
  if (err instanceof GatewayAbort) return err.reason === 'upstream_timeout';
  if (err instanceof UpstreamError) return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
  return false;
}

export class FailurePolicy {
  readonly breaker: CircuitBreaker;
  private readonly budget: RetryBudget;

  constructor(
    private readonly policy: FailoverPolicy,
    now: () => number = Date.now,
  ) {
    this.breaker = new CircuitBreaker(policy.breakerThreshold, policy.breakerCoolDownMs, now);
    this.budget = new RetryBudget(policy.retryBudgetRatio, policy.retryBudgetMinRetries, 10_000, now);
  }

  /**
   * Runs `once` against the model's targets until one succeeds. `deadline`
   * (performance.now() time) bounds the whole first-byte wait: each attempt
   * gets what is left of it, and no backoff outlasts it. Each attempt has its
   * own signal: the parent's abort (client gone, delete) reaches it, and so
   * does the deadline.
   */
  async run<T>(
    targets: readonly Target[],
    parent: AbortSignal,
    deadline: number,
    attempts: AttemptRecord[],
    once: (target: Target, signal: AbortSignal) => Promise<T>,
  ): Promise<AttemptResult<T>> {
    this.budget.request();
    const tries = new Map<string, number>();
    let cursor = 0;
    let last: unknown = null;
    for (let tried = 0; tried < this.policy.maxAttempts; tried++) {
      const pick = this.next(targets, cursor, tries, attempts);
      if (pick === -1) break;
      const target = targets[pick]!;
      const name = target.upstream.name;
      if (tried > 0 && !this.budget.tryRetry()) {
        attempts.push({ upstream: name, result: 'no_retry_budget', ms: 0 });
        break;
      }
      cursor = pick + 1;
      tries.set(name, (tries.get(name) ?? 0) + 1);
      this.breaker.take(name);
      const started = performance.now();
      // While another upstream could still answer, a hung one may not take the whole deadline from it.
      const share = this.othersLeft(targets, name, tries) ? 0.5 : 1;
      try {
        const value = await attempt(once, target, parent, (deadline - started) * share);
        attempts.push({ upstream: name, result: 'ok', ms: Math.round(performance.now() - started) });
        this.breaker.success(name);
        return { value, target };
      } catch (cause) {
        if (parent.aborted) {
          this.breaker.release(name);
          throw parent.reason;
        }
        const result = cause instanceof UpstreamError ? cause.status : cause instanceof GatewayAbort ? 'timeout' : 0;
        attempts.push({ upstream: name, result, ms: Math.round(performance.now() - started) });
        last = cause;
        if (!retryable(cause)) {
          this.breaker.release(name);
          throw cause;
        }
        this.breaker.failure(name);
      }
      const left = deadline - performance.now();
      if (left <= 0) break;
      const nextPick = this.next(targets, cursor, tries, null);
      if (nextPick === -1) break;
      const delay = backoff(this.policy, tried + 1, last, targets[nextPick]!.upstream.name === targets[pick]!.upstream.name);
      // A wait that would outlast the deadline only delays the same answer.
      if (delay === null || delay >= left) break;
      if (delay > 0) await sleep(delay, parent);
    }
    throw last ?? new GatewayAbort('upstream_timeout');
  }

  /** Whether an upstream other than `name` still has tries left for this request. */
  private othersLeft(targets: readonly Target[], name: string, tries: Map<string, number>): boolean {
    for (const t of targets) if (t.upstream.name !== name && (tries.get(t.upstream.name) ?? 0) < MAX_TRIES_PER_UPSTREAM) return true;
    return false;
  }

  /**
   * The index of the next target to try, going down the list from `cursor`:
   * the first whose upstream has tries left and a closed circuit; when every
   * one with tries left is open, the first of them anyway (the breaker never
   * answers for the model). -1 when no upstream has tries left.
   * Skipped targets are logged when `attempts` is given.
   */
  private next(targets: readonly Target[], cursor: number, tries: Map<string, number>, attempts: AttemptRecord[] | null): number {
    let fallback = -1;
    for (let k = 0; k < targets.length; k++) {
      const i = (cursor + k) % targets.length;
      const name = targets[i]!.upstream.name;
      if ((tries.get(name) ?? 0) >= MAX_TRIES_PER_UPSTREAM) continue;
      if (this.breaker.allows(name)) {
        if (attempts && fallback !== -1) {
          for (let s = fallback; s !== i; s = (s + 1) % targets.length) {
            const skipped = targets[s]!.upstream.name;
            if ((tries.get(skipped) ?? 0) < MAX_TRIES_PER_UPSTREAM) attempts.push({ upstream: skipped, result: 'skipped', ms: 0 });
          }
        }
        return i;
      }
      if (fallback === -1) fallback = i;
    }
    return fallback;
  }
}

/** One try with what is left of the deadline; a try that fails has its upstream request aborted. */
async function attempt<T>(
  once: (target: Target, signal: AbortSignal) => Promise<T>,
  target: Target,
  parent: AbortSignal,
  timeLeftMs: number,
): Promise<T> {
  if (parent.aborted) throw parent.reason;
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(parent.reason);
  parent.addEventListener('abort', onParentAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new GatewayAbort('upstream_timeout')), Math.max(0, Math.ceil(timeLeftMs)));
  try {
    // On success the parent's listener stays: the stream goes on under this signal.
    return await once(target, controller.signal);
  } catch (e) {
    parent.removeEventListener('abort', onParentAbort);
    const cause = controller.signal.aborted ? controller.signal.reason : e;
    controller.abort(cause);
    throw cause;
  } finally {
    clearTimeout(timer);
  }
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
