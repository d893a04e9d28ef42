import t, { type Test } from 'tap';
import { keyIdOf } from '../../src/plugins/auth.js';
import { MAX_TRIES_PER_UPSTREAM } from '../../src/relay/failover.js';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream, type RunningGateway } from '../helpers/gateway.js';
import { scrape, scrapeText, valueOf, waitForMetric } from '../helpers/metrics.js';
import { openStream, post } from '../helpers/sse.js';

async function started(t: Test, ...args: Parameters<typeof startGateway>): Promise<RunningGateway> {
  const gw = await startGateway(...args);
  t.teardown(() => gw.close());
  return gw;
}

/**
 * Over a real socket: under inject() the response never reports writableFinished,
 * so request-summary logs every injected request as client_aborted.
 */
async function get(gw: RunningGateway, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${gw.url}${path}`);
  return { status: res.status, body: await res.text() };
}

const CHAT_OK = { route: '/v1/chat/completions', method: 'POST', status: '200', outcome: 'completed' };

t.test('GET /metrics: Prometheus text at the root, with the gateway and default process metrics', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  const res = await gw.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  for (const name of [
    'gateway_requests_total',
    'gateway_ttft_seconds',
    'gateway_stream_duration_seconds',
    'gateway_active_streams',
    'gateway_tokens_total',
    'gateway_upstream_attempts_total',
    'gateway_upstream_failures_total',
    'gateway_aborts_total',
    'gateway_rate_limit_rejections_total',
    'gateway_draining',
    'gateway_stream_store_bytes',
    'gateway_stream_store_streams',
    'process_cpu_seconds_total',
    'nodejs_eventloop_lag_seconds',
  ]) {
    t.match(res.body, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exposed`);
  }
  t.equal((await gw.app.inject({ method: 'GET', url: '/v1/metrics' })).statusCode, 404, 'not under /v1');
  const line = await gw.logs.waitForRequest((l) => l.url === '/metrics');
  t.equal(line.level, 20, 'scrapes are logged at debug');
});

t.test('a streamed completion moves requests, ttft, duration and tokens; active streams go back to 0', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  const before = await scrape(gw.app);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:tokens=5]', { stream: true }));
  t.equal(res.status, 200);
  t.match(res.body, /data: \[DONE\]\n\n$/);
  const after = await waitForMetric(gw.app, 'gateway_requests_total', CHAT_OK, valueOf(before, 'gateway_requests_total', CHAT_OK) + 1);

  const delta = (name: string, labels: Record<string, string> = {}) => valueOf(after, name, labels) - valueOf(before, name, labels);
  t.equal(delta('gateway_requests_total', CHAT_OK), 1, 'requests_total{route,POST,200,completed} +1');
  t.equal(delta('gateway_ttft_seconds_count', { model: 'mock-1' }), 1, 'ttft histogram count +1');
  t.ok(valueOf(after, 'gateway_ttft_seconds_sum', { model: 'mock-1' }) > 0, 'ttft sum grows');
  t.equal(delta('gateway_stream_duration_seconds_count', { model: 'mock-1', outcome: 'completed' }), 1, 'duration histogram count +1');
  t.equal(delta('gateway_tokens_total', { model: 'mock-1', direction: 'out' }), 5, 'tokens out +5');
  t.ok(delta('gateway_tokens_total', { model: 'mock-1', direction: 'in' }) > 0, 'tokens in counted');
  t.equal(delta('gateway_upstream_attempts_total', { upstream: 'mock', result: 'ok' }), 1, 'one successful attempt');
  t.equal(valueOf(after, 'gateway_active_streams'), 0, 'no stream open any more');
  t.equal(valueOf(after, 'gateway_draining'), 0);
  t.equal(delta('gateway_aborts_total'), 0, 'a completed stream is no abort');
});

t.test('a non-streamed completion counts its tokens and attempt from the request summary', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  const before = await scrape(gw.app);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:tokens=4]'));
  t.equal(res.status, 200);
  const after = await waitForMetric(gw.app, 'gateway_requests_total', CHAT_OK, valueOf(before, 'gateway_requests_total', CHAT_OK) + 1);
  const out = { model: 'mock-1', direction: 'out' };
  t.equal(valueOf(after, 'gateway_tokens_total', out) - valueOf(before, 'gateway_tokens_total', out), 4, 'tokens out +4');
  t.equal(valueOf(after, 'gateway_ttft_seconds_count'), valueOf(before, 'gateway_ttft_seconds_count'), 'no ttft without a stream');
  const ok = { upstream: 'mock', result: 'ok' };
  t.equal(valueOf(after, 'gateway_upstream_attempts_total', ok) - valueOf(before, 'gateway_upstream_attempts_total', ok), 1);
});

t.test('429s are counted by kind', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK, rateLimit: { max: 1, windowMs: 60_000 } });
  t.equal((await get(gw, '/v1/models')).status, 200);
  const limited = await get(gw, '/v1/models');
  t.equal(limited.status, 429);
  const samples = await waitForMetric(gw.app, 'gateway_rate_limit_rejections_total', { kind: 'requests' }, 1);
  t.equal(valueOf(samples, 'gateway_rate_limit_rejections_total', { kind: 'requests' }), 1);
  t.equal(valueOf(samples, 'gateway_rate_limit_rejections_total', { kind: 'concurrency' }), 0);
  t.equal(valueOf(samples, 'gateway_requests_total', { route: '/v1/models', status: '429', outcome: 'rejected' }), 1);
  t.equal((await gw.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200, '/metrics is not rate limited');
});

t.test('a concurrency 429 counts as kind="concurrency"', async (t) => {
  const gw = await started(t, { mock: { tokensPerSecond: 50, firstTokenDelayMs: 0 }, maxConcurrentStreams: 1 });
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=1000]', { stream: true }));
  await s.until((h) => h.events.length >= 1);
  const second = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: chatBody('hi', { stream: true }) });
  t.equal(second.statusCode, 429);
  const samples = await waitForMetric(gw.app, 'gateway_rate_limit_rejections_total', { kind: 'concurrency' }, 1);
  t.equal(valueOf(samples, 'gateway_active_streams'), 1, 'the first stream is still open');
  s.destroy();
});

t.test('a client that leaves mid-stream moves aborts_total{reason="client_disconnected"}', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  const reason = { reason: 'client_disconnected' };
  const before = valueOf(await scrape(gw.app), 'gateway_aborts_total', reason);
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('[mock:tps=50] [mock:tokens=1000]', { stream: true }));
  await s.until((h) => h.events.length >= 1);
  s.destroy();
  const after = await waitForMetric(gw.app, 'gateway_aborts_total', reason, before + 1);
  t.equal(valueOf(after, 'gateway_aborts_total', reason), before + 1);
  t.equal(valueOf(after, 'gateway_stream_duration_seconds_count', { model: 'mock-1', outcome: 'client_aborted' }), 1);
  t.equal(valueOf(after, 'gateway_active_streams'), 0, 'the generation has ended');
  await waitForMetric(gw.app, 'gateway_requests_total', { route: '/v1/chat/completions', outcome: 'client_aborted' }, 1);
});

t.test('an upstream failure before the first byte moves upstream attempts (5xx) and failures', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await started(t, viaUpstream(baseUrl));
  t.teardown(() => mock.close());
  const failed = { upstream: 'default', result: '5xx' };
  const before = await scrape(gw.app);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:fail-before=503]', { stream: true }));
  t.equal(res.status, 502);
  const err = { route: '/v1/chat/completions', status: '502', outcome: 'upstream_error' };
  const after = await waitForMetric(gw.app, 'gateway_requests_total', err, 1);
  const tries = valueOf(after, 'gateway_upstream_attempts_total', failed) - valueOf(before, 'gateway_upstream_attempts_total', failed);
  t.equal(tries, Math.min(gw.config.failover.maxAttempts, MAX_TRIES_PER_UPSTREAM), 'every try is counted with its status class');
  t.equal(valueOf(after, 'gateway_upstream_failures_total', { upstream: 'default' }), tries, 'each failed try is an upstream failure');
  t.equal(valueOf(after, 'gateway_upstream_attempts_total', { result: 'ok' }), 0);
  t.equal(valueOf(after, 'gateway_ttft_seconds_count'), 0, 'no first byte, no ttft');
});

t.test('a stream broken by the upstream mid-way counts as an upstream failure and an upstream_error abort', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await started(t, viaUpstream(baseUrl));
  t.teardown(() => mock.close());
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:drop-after=2]', { stream: true }));
  t.equal(res.status, 200);
  const after = await waitForMetric(gw.app, 'gateway_aborts_total', { reason: 'upstream_error' }, 1);
  t.equal(valueOf(after, 'gateway_upstream_failures_total', { upstream: 'default' }), 1);
  t.equal(valueOf(after, 'gateway_upstream_attempts_total', { upstream: 'default', result: 'ok' }), 1);
  t.equal(valueOf(after, 'gateway_ttft_seconds_count', { model: 'mock-1' }), 1);
});

t.test('unknown routes and model names create no label values', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  t.equal((await get(gw, '/nope?x=zzz-query')).status, 404);
  t.equal((await get(gw, '/v1/streams/str_zzzzzzzzzzzzzzzzzzzzzz')).status, 404);
  const unknown = await post(`${gw.url}/v1/chat/completions`, chatBody('hi', { model: 'zzz-random', stream: true }));
  t.equal(unknown.status, 404);
  const samples = await waitForMetric(gw.app, 'gateway_requests_total', { route: 'unmatched', status: '404' }, 1);
  await waitForMetric(gw.app, 'gateway_requests_total', { route: '/v1/chat/completions', status: '404', outcome: 'rejected' }, 1);
  t.equal(valueOf(samples, 'gateway_requests_total', { route: '/v1/streams/:id', status: '404' }), 1, 'the route pattern, not the URL');
  const text = await scrapeText(gw.app);
  for (const needle of ['nope', 'zzz', 'str_']) t.notOk(text.includes(needle), `no label value contains ${needle}`);
  const models = new Set((await scrape(gw.app)).map((s) => s.labels.model).filter((m) => m !== undefined));
  t.same([...models].filter((m) => m !== 'mock-1' && m !== 'mock-1-mini' && m !== 'other'), [], 'model labels are served models only');
});

t.test('no label value ever carries an API key (and /metrics needs none)', async (t) => {
  const keys = ['sk-metrics-test-key-0123456789', 'gw-second-key-abcdef'];
  const gw = await started(t, { mock: FAST_MOCK, gatewayApiKeys: keys });
  const auth = (k: string) => ({ authorization: `Bearer ${k}` });
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:tokens=3]', { stream: true }), auth(keys[0]!))).status, 200);
  t.equal((await gw.app.inject({ method: 'GET', url: '/v1/models', headers: auth(keys[1]!) })).statusCode, 200);
  t.equal((await gw.app.inject({ method: 'GET', url: '/v1/models', headers: auth('sk-wrong-key-999999999') })).statusCode, 401);
  const res = await gw.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200, '/metrics is not behind auth');
  const samples = await waitForMetric(gw.app, 'gateway_requests_total', { route: '/v1/models', status: '401' }, 1);
  await waitForMetric(gw.app, 'gateway_requests_total', CHAT_OK, 1);
  const text = await scrapeText(gw.app);
  for (const secret of [...keys, 'sk-wrong-key-999999999', keyIdOf(keys[0]!), 'Bearer']) {
    t.notOk(text.includes(secret), `the exposition does not contain ${secret.slice(0, 6)}…`);
  }
  const labelNames = new Set(samples.flatMap((s) => Object.keys(s.labels)));
  for (const forbidden of ['key', 'key_id', 'user', 'stream_id', 'url']) t.notOk(labelNames.has(forbidden), `no "${forbidden}" label`);
});

t.test('draining shows on the gauge, and /metrics still answers', async (t) => {
  const gw = await started(t, { mock: FAST_MOCK });
  const draining = gw.drain(1000);
  const samples = await scrape(gw.app);
  t.equal(valueOf(samples, 'gateway_draining'), 1);
  await draining;
});
