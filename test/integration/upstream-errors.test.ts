import { createServer } from 'node:net';
import { defaultConfig } from '../../src/config.js';
import t, { type Test } from 'tap';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';
import { waitUntil } from '../helpers/http.js';

const SECRET = 'sk-upstream-secret-abcdef123456';
/** One attempt, no breaker: these tests are about how a single failure is reported (failover has its own). */
const NO_FAILOVER = { failover: { ...defaultConfig().failover, maxAttempts: 1, backoffMs: 0, maxBackoffMs: 0, retryAfterCapMs: 0, breakerThreshold: 1_000_000, breakerCoolDownMs: 0 } };

function noStack(t: Test, body: string): void {
  t.notMatch(body, /\bat [\w.<>]+ \(|node:internal|\/src\/|\.ts:\d+/, 'no stack trace');
  t.notMatch(body, SECRET, 'no upstream key');
}

t.test('failures before the first byte keep their status', async (t) => {
  const { mock, baseUrl } = await startMock({ ...FAST_MOCK, apiKey: SECRET });
  const gw = await startGateway({ ...NO_FAILOVER, ...viaUpstream(baseUrl, SECRET), upstreamTimeoutMs: 300, rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const cases: [string, number, string][] = [
    ['[mock:fail-before=500]', 502, 'upstream_error'],
    ['[mock:fail-before=503]', 502, 'upstream_error'],
    ['[mock:fail-before=400]', 400, 'upstream_rejected'],
    ['[mock:fail-before=413]', 413, 'upstream_rejected'],
    ['[mock:fail-before=429]', 429, 'upstream_rate_limited'],
    ['[mock:fail-before=401]', 502, 'upstream_error'],
    ['[mock:hang]', 504, 'upstream_timeout'],
  ];
  for (const stream of [true, false]) {
    for (const [prompt, status, code] of cases) {
      const before = mock.aborted;
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody(prompt, { stream }));
      t.equal(res.status, status, `${prompt} stream=${stream} → ${status}`);
      t.match(res.headers['content-type'], /application\/json/);
      const body = JSON.parse(res.body);
      t.equal(body.error.code, code);
      t.type(body.error.message, 'string');
      noStack(t, res.body);
      if (prompt === '[mock:hang]') {
        await mock.waitForAborts(before + 1);
        t.pass('the hung upstream request was aborted at the timeout');
      }
      if (status === 429) t.equal(res.headers['retry-after'], '1', 'upstream Retry-After passes through');
    }
  }
  const line = await gw.logs.waitForRequest((l) => l.status === 504);
  t.equal(line.outcome, 'upstream_error');
  t.notMatch(gw.logs.raw, SECRET);
});

t.test('an unreachable upstream → 502', async (t) => {
  // A port that was free a moment ago: nothing listens there now.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const gw = await startGateway({ ...NO_FAILOVER, ...viaUpstream(`http://127.0.0.1:${port}/v1`) });
  t.teardown(() => gw.close());
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi', { stream: true }));
  t.equal(res.status, 502);
  t.equal(JSON.parse(res.body).error.code, 'upstream_error');
  noStack(t, res.body);
});

t.test('failures after the first byte end the stream with an error event, never [DONE]', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  for (const prompt of ['[mock:fail-after=3]', '[mock:drop-after=3]']) {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody(prompt, { stream: true }));
    t.equal(res.status, 200);
    const { events } = parseSse(res.body);
    t.equal(events.length, 4, `${prompt}: 3 chunks then one error event`);
    t.notOk(events.some((e) => e.data === '[DONE]'));
    const last = events.at(-1)!;
    t.equal(last.id, '4', 'the error event has an id');
    const err = JSON.parse(last.data).error;
    t.equal(err.type, 'upstream_error');
    t.type(err.message, 'string');
    noStack(t, res.body);
  }
  const chatLines = () => gw.logs.requests().filter((l) => l.url === '/v1/chat/completions');
  await waitUntil(() => chatLines().length === 2, 'two request log lines');
  const lines = chatLines();
  t.same(lines.map((l) => l.outcome), ['upstream_error', 'upstream_error']);
});

t.test('the in-process mock fails the same way', async (t) => {
  const gw = await startGateway({ ...NO_FAILOVER, mock: FAST_MOCK, upstreamTimeoutMs: 200 });
  t.teardown(() => gw.close());
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:fail-before=503]', { stream: true }))).status, 502);
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:hang]', { stream: true }))).status, 504);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:fail-after=2]', { stream: true }));
  const { events } = parseSse(res.body);
  t.equal(events.length, 3);
  t.equal(JSON.parse(events[2]!.data).error.type, 'upstream_error');
});
