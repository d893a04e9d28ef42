import { createServer } from 'node:net';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../src/config.js';
import { chatBody, startGateway, startMock } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';
import { waitUntil } from '../helpers/http.js';

/** Two upstreams serving one model alias, in priority order: `a` first, `b` as the fallback. */
async function twoUpstreams(t: Test, aUrl: string, bUrl: string, extra: Record<string, unknown> = {}) {
  const gw = await startGateway({
    upstreams: { a: { baseUrl: aUrl }, b: { baseUrl: bUrl } },
    models: { chat: [{ upstream: 'a', model: 'mock-1' }, { upstream: 'b', model: 'mock-1' }] },
    // One deadline for every attempt: a hung `a` gets half of it, `b` the rest.
    upstreamTimeoutMs: 1000,
    failover: { ...defaultConfig().failover, backoffMs: 10, maxBackoffMs: 50 },
    ...extra,
  });
  t.teardown(() => gw.close());
  return gw;
}

/** Upstream a answers with `fault`, upstream b answers normally; both closed when the test ends. */
async function faultyAndHealthy(t: Test, fault: string) {
  const a = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0, directives: fault });
  const b = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  t.teardown(async () => {
    await a.mock.close();
    await b.mock.close();
  });
  return { a, b };
}


async function closedPort(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  return `http://127.0.0.1:${port}/v1`;
}

const body = (stream: boolean) => ({ ...chatBody('failover please [mock:tokens=6]', { stream }), model: 'chat' });

for (const [label, fault] of [
  ['503', '[mock:fail-before=503]'],
  ['500', '[mock:fail-before=500]'],
  ['429', '[mock:fail-before=429]'],
  ['timeout before the first byte', '[mock:hang]'],
  ['connection refused', null],
] as const) {
  for (const stream of [true, false]) {
    t.test(`upstream a fails (${label}) → the answer comes from b; both attempts logged (stream=${stream})`, async (t) => {
      const b = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
      const a = fault ? await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0, directives: fault }) : null;
      t.teardown(async () => {
        await b.mock.close();
        await a?.mock.close();
      });
      const gw = await twoUpstreams(t, a ? a.baseUrl : await closedPort(), b.baseUrl);
      const res = await post(`${gw.url}/v1/chat/completions`, body(stream));
      t.equal(res.status, 200);
      if (stream) t.equal(parseSse(res.body).events.at(-1)!.data, '[DONE]');
      else t.equal(JSON.parse(res.body).object, 'chat.completion');
      t.equal(b.mock.requests.length, 1, 'b answered');
      if (a) t.equal(a.mock.requests.length, 1, 'a was tried once');
      const line = await gw.logs.waitForRequest((l) => l.url === '/v1/chat/completions');
      t.equal(line.upstream, 'b');
      const attempts = line.attempts as { upstream: string; result: unknown }[];
      t.same(attempts.map((x) => x.upstream), ['a', 'b']);
      t.equal(attempts[1]!.result, 'ok');
      t.not(attempts[0]!.result, 'ok');
    });
  }
}

t.test('a failure after the first byte → error event, and no second attempt', async (t) => {
  const { a, b } = await faultyAndHealthy(t, '[mock:fail-after=2]');
  const gw = await twoUpstreams(t, a.baseUrl, b.baseUrl);
  const res = await post(`${gw.url}/v1/chat/completions`, body(true));
  const { events } = parseSse(res.body);
  t.equal(events.length, 3);
  t.equal(JSON.parse(events[2]!.data).error.type, 'upstream_error');
  t.equal(b.mock.requests.length, 0, 'never retried silently once bytes were sent');
});

t.test('a 400 from the upstream is the client\'s problem: no failover', async (t) => {
  const { a, b } = await faultyAndHealthy(t, '[mock:fail-before=400]');
  const gw = await twoUpstreams(t, a.baseUrl, b.baseUrl);
  const res = await post(`${gw.url}/v1/chat/completions`, body(true));
  t.equal(res.status, 400);
  t.equal(b.mock.requests.length, 0);
});

t.test('the circuit breaker skips an upstream that keeps failing, for its cool-down', async (t) => {
  const { a, b } = await faultyAndHealthy(t, '[mock:fail-before=503]');
  const gw = await twoUpstreams(t, a.baseUrl, b.baseUrl, {
    failover: { ...defaultConfig().failover, maxAttempts: 3, backoffMs: 0, maxBackoffMs: 0, retryAfterCapMs: 0, breakerThreshold: 3, breakerCoolDownMs: 60_000 },
  });
  for (let i = 0; i < 6; i++) t.equal((await post(`${gw.url}/v1/chat/completions`, body(false))).status, 200);
  t.equal(a.mock.requests.length, 3, 'a was tried until its circuit opened, then skipped');
  t.equal(b.mock.requests.length, 6);
  // The log line is written when the response has closed: wait for all six.
  const chatLines = () => gw.logs.requests().filter((l) => l.url === '/v1/chat/completions');
  await waitUntil(() => chatLines().length === 6, 'six request log lines');
  const last = chatLines().at(-1)!;
  t.same((last.attempts as { result: unknown }[]).map((x) => x.result), ['skipped', 'ok']);
});

t.test('attempts are bounded and back off: one upstream that keeps failing', async (t) => {
  const a = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0, directives: '[mock:fail-before=502]' });
  t.teardown(() => a.mock.close());
  const gw = await startGateway({
    upstreams: { a: { baseUrl: a.baseUrl } },
    models: { chat: { upstream: 'a', model: 'mock-1' } },
    failover: { ...defaultConfig().failover, maxAttempts: 3, backoffMs: 5, maxBackoffMs: 20, retryAfterCapMs: 0, breakerThreshold: 100, breakerCoolDownMs: 0 },
  });
  t.teardown(() => gw.close());
  const res = await post(`${gw.url}/v1/chat/completions`, body(true));
  t.equal(res.status, 502);
  t.equal(a.mock.requests.length, 2, 'one upstream is tried at most twice');
});
