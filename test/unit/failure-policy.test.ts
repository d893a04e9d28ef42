import t from 'tap';
import { defaultConfig } from '../../src/config.js';
import { GatewayAbort } from '../../src/errors.js';
import { CircuitBreaker } from '../../src/relay/circuit-breaker.js';
import { FailurePolicy, type AttemptRecord, type FailoverPolicy } from '../../src/relay/failover.js';
import { RetryBudget } from '../../src/relay/retry-budget.js';
import type { Target } from '../../src/upstream/catalog.js';
import { UpstreamError, type ChatUpstream } from '../../src/upstream/types.js';

const policy = (over: Partial<FailoverPolicy> = {}): FailoverPolicy => ({ ...defaultConfig().failover, backoffMs: 0, maxBackoffMs: 0, ...over });

function target(name: string): Target {
  return { upstream: { name } as ChatUpstream, model: 'm' };
}

/** Runs one request whose every attempt fails with `status` (or succeeds where `ok` says so); returns the upstreams called. */
async function request(p: FailurePolicy, targets: Target[], ok: (name: string) => boolean = () => false, status = 503) {
  const called: string[] = [];
  const attempts: AttemptRecord[] = [];
  const result = await p
    .run(targets, new AbortController().signal, performance.now() + 10_000, attempts, async (tg) => {
      called.push(tg.upstream.name);
      if (ok(tg.upstream.name)) return tg.upstream.name;
      throw new UpstreamError(status, 'boom', tg.upstream.name);
    })
    .then((r) => r.value, (e: unknown) => e);
  return { called, attempts, result };
}

t.test('one upstream: at most two calls per request, and the breaker never refuses for it', async (t) => {
  const p = new FailurePolicy(policy({ breakerThreshold: 2 }));
  const a = [target('a')];
  for (let i = 0; i < 5; i++) {
    const r = await request(p, a);
    t.same(r.called, ['a', 'a'], `request ${i + 1}: two calls`);
    t.ok(r.result instanceof UpstreamError, 'the upstream failure is the answer, not a circuit-open refusal');
  }
  t.equal(p.breaker.state('a'), 'open');
  const good = await request(p, a, () => true);
  t.same(good.called, ['a'], 'an open circuit on the only target still lets the request through');
  t.equal(p.breaker.state('a'), 'closed');
});

t.test('two upstreams: an open circuit is skipped while the other serves; both open → tried anyway', async (t) => {
  const p = new FailurePolicy(policy({ breakerThreshold: 1 }));
  const ab = [target('a'), target('b')];
  const first = await request(p, ab, (n) => n === 'b');
  t.same(first.called, ['a', 'b']);
  t.equal(first.result, 'b');
  const second = await request(p, ab, (n) => n === 'b');
  t.same(second.called, ['b'], 'a is skipped while its circuit is open');
  t.same(second.attempts.map((x) => x.result), ['skipped', 'ok']);
  const third = await request(p, ab, () => false);
  t.same(third.called, ['b', 'a', 'b'], 'b fails and opens too: a is tried rather than refusing');
  t.ok(third.result instanceof UpstreamError);
  const fourth = await request(p, ab, (n) => n === 'a');
  t.same(fourth.called, ['a'], 'every circuit open: the first target is tried anyway');
});

t.test('a 4xx is not retried and says nothing about the upstream', async (t) => {
  const p = new FailurePolicy(policy({ breakerThreshold: 1 }));
  const r = await request(p, [target('a'), target('b')], () => false, 400);
  t.same(r.called, ['a']);
  t.equal(p.breaker.state('a'), 'closed');
});

t.test('the retry budget: retries stay within 20 % of requests plus the floor', async (t) => {
  const p = new FailurePolicy(policy({ breakerThreshold: 1_000_000, retryBudgetRatio: 0.2, retryBudgetMinRetries: 10 }));
  let calls = 0;
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    const r = await request(p, [target('a')]);
    calls += r.called.length;
    refused += r.attempts.filter((x) => x.result === 'no_retry_budget').length;
  }
  t.ok(calls <= 200 + 10 + 0.2 * 200 + 1, `${calls} upstream calls for 200 failing requests`);
  t.ok(calls >= 200 + 0.2 * 200 - 1, 'the budget is used, not withheld');
  t.equal(refused, 200 + 200 - calls, 'every retry not sent is logged as no_retry_budget');
});

t.test('RetryBudget: the window slides', async (t) => {
  let now = 0;
  const b = new RetryBudget(0.5, 1, 1000, () => now);
  for (let i = 0; i < 4; i++) b.request();
  t.same([b.tryRetry(), b.tryRetry(), b.tryRetry(), b.tryRetry()], [true, true, true, false], '1 + 0.5 × 4');
  now = 1500;
  t.ok(b.tryRetry(), 'the floor again once the old requests and retries left the window');
  t.notOk(b.tryRetry());
});

t.test('CircuitBreaker: a trial whose request never reported does not hold the circuit shut', async (t) => {
  let now = 0;
  const br = new CircuitBreaker(1, 1000, () => now);
  br.failure('a');
  t.equal(br.state('a'), 'open');
  t.notOk(br.allows('a'));
  now = 1000;
  t.equal(br.state('a'), 'half_open');
  t.ok(br.allows('a'));
  br.take('a');
  t.notOk(br.allows('a'), 'one trial at a time');
  br.release('a');
  t.ok(br.allows('a'), 'the trial\'s client left: another may try');
  br.take('a');
  now = 2000;
  t.ok(br.allows('a'), 'a trial that never reports expires');
  br.success('a');
  t.equal(br.state('a'), 'closed');
});

t.test('the deadline bounds every attempt and no backoff outlasts it', async (t) => {
  const p = new FailurePolicy(policy({ backoffMs: 10_000, maxBackoffMs: 10_000 }));
  const attempts: AttemptRecord[] = [];
  const started = performance.now();
  const err = await p
    .run([target('a')], new AbortController().signal, started + 200, attempts, (_tg, signal) =>
      new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
    )
    .catch((e: unknown) => e);
  const took = performance.now() - started;
  t.ok(err instanceof GatewayAbort && err.reason === 'upstream_timeout', 'a timeout');
  t.ok(took < 450, `answered after ${Math.round(took)} ms (deadline 200)`);
  t.same(attempts.map((x) => x.result), ['timeout']);
});
