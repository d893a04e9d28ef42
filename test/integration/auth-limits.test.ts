import t, { type Test } from 'tap';
import { keyIdOf } from '../../src/plugins/auth.js';
import { FAST_MOCK, chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { STACK_TRACE, openAIError, send, waitUntil } from '../helpers/http.js';
import { openStream, parseSse, type StreamHandle } from '../helpers/sse.js';

/**
 * The gateway's gates, in front of every model call: API keys, request rate,
 * concurrent streams, CORS, and the health/readiness probes.
 */

const KEYS = ['key-a', 'key-b'];
const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });
const JSON_CT = { 'content-type': 'application/json' };

async function started(t: Test, overrides: Parameters<typeof startGateway>[0]): Promise<RunningGateway> {
  const gw = await startGateway({ mock: FAST_MOCK, ...overrides });
  t.teardown(() => gw.close());
  return gw;
}

/** Asserts an OpenAI-shaped error with the given status and code. */
function assertError(t: Test, res: { status: number; body: string }, status: number, code: string, type: string): void {
  t.equal(res.status, status, `status ${status}`);
  const err = openAIError(res.body);
  if (typeof err === 'string') {
    t.fail(err);
    return;
  }
  t.equal(err.error.code, code, `code ${code}`);
  t.equal(err.error.type, type, `type ${type}`);
  t.notMatch(res.body, STACK_TRACE, 'no stack trace');
}

const asResponse = (r: { statusCode: number; body: string }) => ({ status: r.statusCode, body: r.body });

t.test('auth: Bearer keys from gatewayApiKeys', async (t) => {
  const gw = await started(t, { gatewayApiKeys: KEYS });
  const url = `${gw.url}/v1/chat/completions`;
  let sent = 0;
  const call = (opts: Parameters<typeof send>[1], path = '/v1/chat/completions') => {
    sent++;
    return send(path === '/v1/chat/completions' ? url : `${gw.url}${path}`, opts);
  };

  const none = await call({ body: chatBody('hi'), headers: JSON_CT });
  assertError(t, none, 401, 'unauthorized', 'authentication_error');

  const wrong = await call({ body: chatBody('hi'), headers: { ...JSON_CT, ...bearer('key-c-not-known') } });
  assertError(t, wrong, 401, 'unauthorized', 'authentication_error');
  t.notOk(wrong.body.includes('key-c-not-known'), 'the presented key is not echoed back');

  const basic = await call({ body: chatBody('hi'), headers: { ...JSON_CT, authorization: 'Basic a2V5LWE6' } });
  assertError(t, basic, 401, 'unauthorized', 'authentication_error');

  const modelsNoKey = await call({}, '/v1/models');
  assertError(t, modelsNoKey, 401, 'unauthorized', 'authentication_error');

  const a = await call({ body: chatBody('hi [mock:tokens=2]'), headers: { ...JSON_CT, ...bearer('key-a') } });
  t.equal(a.status, 200, 'Bearer key-a → 200');
  t.equal((JSON.parse(a.body) as { object: string }).object, 'chat.completion');

  const b = await call({ body: chatBody('hi [mock:tokens=2]', { stream: true }), headers: { ...JSON_CT, ...bearer('key-b') } });
  t.equal(b.status, 200, 'Bearer key-b streams');
  t.equal(parseSse(b.body).events.at(-1)?.data, '[DONE]');

  const health = await call({}, '/healthz');
  t.equal(health.status, 200, '/healthz needs no key');
  const ready = await call({}, '/readyz');
  t.equal(ready.status, 200, '/readyz needs no key');

  // One summary line per request, written when the response closes.
  await waitUntil(() => gw.logs.requests().length >= sent, `${sent} request log lines`);
  t.notOk(gw.logs.raw.includes('key-a'), 'logs never contain key-a');
  t.notOk(gw.logs.raw.includes('key-b'), 'logs never contain key-b');
  t.notOk(gw.logs.raw.includes('key-c-not-known'), 'logs never contain a presented wrong key');
  const lines = gw.logs.requests();
  const line = (status: number, keyId: string) => lines.find((l) => l.status === status && l.key_id === keyId);
  t.match(keyIdOf('key-a'), /^key_[0-9a-f]{12}$/);
  t.ok(line(200, keyIdOf('key-a')), 'the key-a request line carries its key id');
  t.ok(line(200, keyIdOf('key-b')), 'the key-b request line carries its key id');
  for (const l of lines) {
    t.match(l.key_id, /^(key_[0-9a-f]{12}|anonymous)$/, `key_id of ${String(l.method)} ${String(l.url)} is an id`);
  }
  const rejected = lines.filter((l) => l.status === 401);
  t.equal(rejected.length, 4, 'four 401 lines');
  t.ok(rejected.every((l) => l.key_id === 'anonymous' && l.error_code === 'unauthorized'));
});

t.test('rate limit: per key per window, with OpenAI-shaped 429', async (t) => {
  const gw = await started(t, { gatewayApiKeys: KEYS, rateLimit: { max: 3, windowMs: 60_000 } });
  const models = (key: string) => gw.app.inject({ method: 'GET', url: '/v1/models', headers: bearer(key) });
  const chat = (key: string) =>
    gw.app.inject({ method: 'POST', url: '/v1/chat/completions', headers: bearer(key), payload: chatBody('hi [mock:tokens=1]') });

  // Every route of /v1 counts against the same budget.
  const first = [await models('key-a'), await models('key-a'), await chat('key-a')];
  t.same(first.map((r) => r.statusCode), [200, 200, 200], 'three requests pass');
  t.same(first.map((r) => r.headers['x-ratelimit-limit']), ['3', '3', '3'], 'x-ratelimit-limit on every response');
  t.same(first.map((r) => r.headers['x-ratelimit-remaining']), ['2', '1', '0'], 'x-ratelimit-remaining counts down');

  const fourth = await chat('key-a');
  assertError(t, asResponse(fourth), 429, 'rate_limit_exceeded', 'rate_limit_error');
  t.equal(fourth.headers['x-ratelimit-limit'], '3');
  t.equal(fourth.headers['x-ratelimit-remaining'], '0');
  const retryAfter = Number(fourth.headers['retry-after']);
  t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `retry-after is whole seconds within the window (${retryAfter})`);
  const reset = Number(fourth.headers['x-ratelimit-reset']);
  t.ok(Number.isInteger(reset) && reset > 0 && reset <= 60, `x-ratelimit-reset within the window (${reset})`);

  const fifth = await models('key-a');
  t.equal(fifth.statusCode, 429, 'still limited on another route');

  const other = await models('key-b');
  t.equal(other.statusCode, 200, 'key-b is counted apart');
  t.equal(other.headers['x-ratelimit-remaining'], '2');

  const unauthenticated = await gw.app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(unauthenticated.statusCode, 401, 'a missing key is refused before it is counted');

  const health = await gw.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200, '/healthz is not rate limited');
  t.equal(health.headers['x-ratelimit-limit'], undefined);
});

t.test('rate limit: without auth, requests are counted per IP', async (t) => {
  const gw = await started(t, { rateLimit: { max: 3, windowMs: 60_000 } });
  const from = (ip: string) => gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: ip });
  for (let i = 0; i < 3; i++) t.equal((await from('10.0.0.1')).statusCode, 200, `request ${i + 1} from 10.0.0.1`);
  const over = await from('10.0.0.1');
  assertError(t, asResponse(over), 429, 'rate_limit_exceeded', 'rate_limit_error');
  t.ok(over.headers['retry-after'], 'retry-after');
  const elsewhere = await from('10.0.0.2');
  t.equal(elsewhere.statusCode, 200, 'another IP has its own budget');
  t.equal(elsewhere.headers['x-ratelimit-remaining'], '2');
});

t.test('concurrency: at most maxConcurrentStreams open streams per key', async (t) => {
  const gw = await started(t, { gatewayApiKeys: KEYS, maxConcurrentStreams: 2 });
  const open: StreamHandle[] = [];
  t.teardown(() => {
    for (const h of open) h.destroy();
  });
  // One chunk, then the mock stalls until the gateway aborts it: the stream stays open.
  const hold = async (key: string): Promise<StreamHandle> => {
    const h = await openStream(`${gw.url}/v1/chat/completions`, chatBody('hold [mock:hang-after=1]', { stream: true }), bearer(key));
    open.push(h);
    return h;
  };
  const idA = keyIdOf('key-a');

  const s1 = await hold('key-a');
  const s2 = await hold('key-a');
  t.equal(s1.res.statusCode, 200);
  t.equal(s2.res.statusCode, 200);
  await s1.until((h) => h.events.length >= 1);
  await s2.until((h) => h.events.length >= 1);
  t.equal(gw.slots.count(idA), 2, 'key-a holds two slots');

  const s3 = await hold('key-a');
  const body = await s3.done();
  assertError(t, { status: s3.res.statusCode!, body }, 429, 'too_many_streams', 'rate_limit_error');
  t.equal(s3.res.headers['retry-after'], '1', 'retry-after');
  t.match(s3.res.headers['content-type'], /^application\/json/, 'refused before the stream started');
  t.equal(gw.slots.count(idA), 2, 'the refused stream took no slot');

  const b1 = await hold('key-b');
  t.equal(b1.res.statusCode, 200, 'key-b is unaffected');
  await b1.until((h) => h.events.length >= 1);
  t.equal(gw.slots.count(keyIdOf('key-b')), 1);

  s1.destroy();
  await waitUntil(() => gw.slots.count(idA) === 1, 'key-a slot released after the client left');
  t.equal(gw.slots.count(idA), 1, 'one slot released');

  const s4 = await hold('key-a');
  t.equal(s4.res.statusCode, 200, 'a new stream is accepted once a slot is free');
  await s4.until((h) => h.events.length >= 1);
  t.equal(gw.slots.count(idA), 2);

  for (const h of [s2, s4, b1]) h.destroy();
  await waitUntil(() => gw.slots.total === 0, 'every slot released');
  t.equal(gw.slots.total, 0, 'no slot leaks');
});

t.test('CORS with corsOrigins set', async (t) => {
  const origin = 'https://app.example';
  const gw = await started(t, { gatewayApiKeys: ['key-a'], corsOrigins: [origin] });

  await t.test('preflight: 204, allowed headers, no API key needed', async (t) => {
    const res = await gw.app.inject({
      method: 'OPTIONS',
      url: '/v1/chat/completions',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    t.equal(res.statusCode, 204);
    t.equal(res.headers['access-control-allow-origin'], origin);
    const allowHeaders = String(res.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/);
    t.ok(allowHeaders.includes('authorization'), 'Authorization allowed');
    t.ok(allowHeaders.includes('content-type'), 'Content-Type allowed');
    t.match(String(res.headers['access-control-allow-methods']), /\bPOST\b/);
  });

  await t.test('streaming POST carries allow-origin and exposes the gateway headers', async (t) => {
    const h = await openStream(`${gw.url}/v1/chat/completions`, chatBody('hi [mock:tokens=3]', { stream: true }), {
      origin,
      ...bearer('key-a'),
    });
    t.teardown(() => h.destroy());
    t.equal(h.res.statusCode, 200);
    t.equal(h.res.headers['access-control-allow-origin'], origin);
    const exposed = String(h.res.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
    t.ok(exposed.includes('x-stream-id'), 'X-Stream-Id exposed');
    t.ok(exposed.includes('x-ratelimit-remaining'), 'x-ratelimit-remaining exposed');
    t.ok(h.res.headers['x-stream-id'], 'X-Stream-Id present');
    const text = await h.done();
    t.equal(parseSse(text).events.at(-1)?.data, '[DONE]');
  });

  await t.test('a 401 is readable by the allowed origin', async (t) => {
    const res = await gw.app.inject({ method: 'GET', url: '/v1/models', headers: { origin } });
    t.equal(res.statusCode, 401);
    t.equal(res.headers['access-control-allow-origin'], origin);
  });

  await t.test('a disallowed origin gets no allow-origin', async (t) => {
    const evil = 'https://evil.example';
    const pre = await gw.app.inject({
      method: 'OPTIONS',
      url: '/v1/chat/completions',
      headers: { origin: evil, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    t.equal(pre.headers['access-control-allow-origin'], undefined, 'preflight');
    const get = await gw.app.inject({ method: 'GET', url: '/v1/models', headers: { origin: evil, ...bearer('key-a') } });
    t.equal(get.statusCode, 200);
    t.equal(get.headers['access-control-allow-origin'], undefined, 'actual request');
  });
});

t.test('CORS with corsOrigins undefined: no CORS headers at all', async (t) => {
  const gw = await started(t, { corsOrigins: undefined });
  const get = await gw.app.inject({ method: 'GET', url: '/v1/models', headers: { origin: 'https://app.example' } });
  t.equal(get.statusCode, 200);
  const pre = await gw.app.inject({
    method: 'OPTIONS',
    url: '/v1/chat/completions',
    headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
  });
  for (const res of [get, pre]) {
    t.same(Object.keys(res.headers).filter((k) => k.startsWith('access-control-')), [], `${res.raw.req.method}: none`);
  }
});

t.test('models and health probes', async (t) => {
  const gw = await started(t, {});

  const list = await gw.app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(list.statusCode, 200);
  const body = list.json() as { object: string; data: { id: string; object: string; created: number; owned_by: string }[] };
  t.equal(body.object, 'list');
  t.ok(Array.isArray(body.data));
  const entry = body.data.find((m) => m.id === 'mock-1');
  t.ok(entry, 'mock-1 is listed');
  t.match(entry, { id: 'mock-1', object: 'model', created: Number, owned_by: String });
  t.ok(body.data.every((m) => m.object === 'model' && Number.isInteger(m.created)));

  const one = await gw.app.inject({ method: 'GET', url: '/v1/models/mock-1' });
  t.equal(one.statusCode, 200);
  t.same(one.json(), entry, 'the entry, as listed');

  const missing = await gw.app.inject({ method: 'GET', url: '/v1/models/no-such-model' });
  assertError(t, asResponse(missing), 404, 'model_not_found', 'invalid_request_error');

  const healthz = await gw.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(healthz.statusCode, 200);
  const readyz = await gw.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(readyz.statusCode, 200);

  gw.state.draining = true;
  const notReady = await gw.app.inject({ method: 'GET', url: '/readyz' });
  assertError(t, asResponse(notReady), 503, 'draining', 'service_unavailable_error');
  t.equal((await gw.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz stays 200 while draining');

  const refused = await gw.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: chatBody('hi', { stream: true }) });
  assertError(t, asResponse(refused), 503, 'draining', 'service_unavailable_error');
  t.ok(Number(refused.headers['retry-after']) > 0, 'retry-after while draining');
  t.equal(gw.slots.total, 0, 'no stream was started');

  gw.state.draining = false;
  const back = await gw.app.inject({ method: 'GET', url: '/readyz' });
  t.equal(back.statusCode, 200, 'ready again once draining is cleared');
});

t.test('TRUST_PROXY: behind a proxy, per-IP limits count the forwarded client address', async (t) => {
  const { startGateway: start } = await import('../helpers/gateway.js');
  const trusting = await start({ trustProxy: '127.0.0.1', rateLimit: { max: 1, windowMs: 60_000 } });
  const naive = await start({ rateLimit: { max: 1, windowMs: 60_000 } });
  t.teardown(async () => {
    await trusting.close();
    await naive.close();
  });
  const get = (gw: { app: { inject: (o: object) => Promise<{ statusCode: number }> } }, ip: string) =>
    gw.app.inject({ method: 'GET', url: '/v1/models', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': ip } });
  t.same([(await get(trusting, '203.0.113.1')).statusCode, (await get(trusting, '203.0.113.2')).statusCode], [200, 200], 'two clients behind one proxy');
  t.same([(await get(naive, '203.0.113.1')).statusCode, (await get(naive, '203.0.113.2')).statusCode], [200, 429], 'without it, the proxy is one client');
});
