import { createServer, request as httpRequest, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { openAIError, send } from '../helpers/http.js';
import { getStream, openStream, parseSse, post } from '../helpers/sse.js';

/** Idempotency-Key on every route that starts a generation: one generation per caller and key. */

async function setup(t: Test, mockOpts = {}, config: Record<string, unknown> = {}) {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0, ...mockOpts });
  const gw = await startGateway({ ...viaUpstream(baseUrl), ...config });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  return { mock, gw };
}

const key = (k: string) => ({ 'idempotency-key': k });

t.test('POST /v1/streams: the same key answers the same 201; equal JSON is the same body', async (t) => {
  const { mock, gw } = await setup(t);
  const body = chatBody('[mock:tokens=5]', { temperature: 0.5 });
  const a = await post(`${gw.url}/v1/streams`, body, key('k-streams'));
  t.equal(a.status, 201);
  // Other key order and spacing, 0.50 for 0.5: equal JSON.
  const reordered = `{ "temperature": 0.50, "messages": ${JSON.stringify(body.messages)}, "model": "mock-1" }`;
  const b = await send(`${gw.url}/v1/streams`, { method: 'POST', headers: { 'content-type': 'application/json', ...key('k-streams') }, body: reordered });
  t.equal(b.status, 201);
  t.same(JSON.parse(b.body), JSON.parse(a.body), 'the same {id, url}');
  t.equal(b.headers.location, a.headers.location);
  // Another POST without the key starts its own, as before.
  const c = await post(`${gw.url}/v1/streams`, body);
  t.not(JSON.parse(c.body).id, JSON.parse(a.body).id);
  await readToEnd(gw.url, a.body, c.body);
  t.equal(mock.requests.length, 2, 'one generation for the keyed POSTs, one for the other');
});

t.test('the same key with another body, or on another endpoint → 409 idempotency_key_reused', async (t) => {
  const { mock, gw } = await setup(t);
  const first = await post(`${gw.url}/v1/streams`, chatBody('one [mock:tokens=3]'), key('k-409'));
  t.equal(first.status, 201);
  await readToEnd(gw.url, first.body);
  const other = await post(`${gw.url}/v1/streams`, chatBody('two [mock:tokens=3]'), key('k-409'));
  t.equal(other.status, 409);
  const e = openAIError(other.body);
  if (typeof e === 'string') t.fail(e);
  else {
    t.equal(e.error.code, 'idempotency_key_reused');
    t.equal(e.error.type, 'invalid_request_error');
    t.equal(e.error.param, 'Idempotency-Key');
  }
  const chat = await post(`${gw.url}/v1/chat/completions`, chatBody('one [mock:tokens=3]', { stream: true }), key('k-409'));
  t.equal(chat.status, 409, 'keys are the caller\'s across endpoints');
  t.equal(mock.requests.length, 1, 'nothing else reached the upstream');
});

t.test('concurrent duplicate POSTs: one upstream request, every client the same stream', async (t) => {
  // The first token takes a while: the duplicates arrive while the first POST still waits for it.
  const { mock, gw } = await setup(t, { firstTokenDelayMs: 200, tokensPerSecond: 500 });
  const body = chatBody('together [mock:tokens=20]', { stream: true });
  const handles = await Promise.all([1, 2, 3, 4].map(() => openStream(`${gw.url}/v1/chat/completions`, body, key('k-race'))));
  const texts = await Promise.all(handles.map((h) => h.done()));
  t.same(handles.map((h) => h.res.statusCode), [200, 200, 200, 200]);
  const ids = new Set(handles.map((h) => h.res.headers['x-stream-id']));
  t.equal(ids.size, 1, 'one X-Stream-Id');
  t.ok(texts.every((x) => x === texts[0]), 'the same bytes for all');
  t.equal(parseSse(texts[0]!).events.at(-1)!.data, '[DONE]');
  t.equal(mock.requests.length, 1, 'the upstream was asked once');

  const launches = await Promise.all([1, 2, 3].map(() => post(`${gw.url}/v1/streams`, chatBody('launch [mock:tokens=3]'), key('k-race-2'))));
  t.equal(new Set(launches.map((r) => r.body)).size, 1, 'one 201 body');
  await readToEnd(gw.url, launches[0]!.body);
  t.equal(mock.requests.length, 2);
});

t.test('keys are per caller: another API key with the same Idempotency-Key starts its own', async (t) => {
  const { mock, gw } = await setup(t, {}, { gatewayApiKeys: ['key-a', 'key-b'] });
  const as = (k: string) => ({ authorization: `Bearer ${k}`, ...key('shared') });
  const a = await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=3]'), as('key-a'));
  const b = await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=3]'), as('key-b'));
  t.equal(a.status, 201);
  t.equal(b.status, 201);
  t.not(JSON.parse(a.body).id, JSON.parse(b.body).id);
  await readToEnd(gw.url, a.body, b.body);
  const b2 = await post(`${gw.url}/v1/streams`, chatBody('other [mock:tokens=3]'), as('key-b'));
  t.equal(b2.status, 409, 'and within one caller the key holds');
  t.equal(mock.requests.length, 2);
});

t.test('a first POST that failed before its first byte does not pin the key', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  // The upstream refuses the first call (a 4xx the gateway does not retry), then answers.
  const flaky = await failingFirst(baseUrl, 1);
  const gw = await startGateway(viaUpstream(flaky.baseUrl));
  t.teardown(async () => {
    await gw.close();
    await flaky.close();
    await mock.close();
  });
  const body = chatBody('[mock:tokens=4]', { stream: true });
  const failed = await post(`${gw.url}/v1/chat/completions`, body, key('k-fail'));
  t.equal(failed.status, 400);
  t.equal(JSON.parse(failed.body).error.code, 'upstream_rejected');
  const retry = await openStream(`${gw.url}/v1/chat/completions`, body, key('k-fail'));
  t.equal(retry.res.statusCode, 200, 'the retry starts anew');
  t.equal(parseSse(await retry.done()).events.at(-1)!.data, '[DONE]');
  t.equal(flaky.posts, 2);
  t.equal(mock.requests.length, 1, 'the one generation that streamed');

  // Refused before the relay (404 model): the key was never taken.
  const missing = await post(`${gw.url}/v1/streams`, { ...chatBody('x'), model: 'no-such-model' }, key('k-404'));
  t.equal(missing.status, 404);
  const ok = await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=2]'), key('k-404'));
  t.equal(ok.status, 201, 'not 409: the failed POST left no record');
});

t.test('CORS preflight allows Idempotency-Key and Last-Event-ID', async (t) => {
  const origin = 'https://app.example';
  const { gw } = await setup(t, {}, { corsOrigins: [origin] });
  const res = await gw.app.inject({
    method: 'OPTIONS',
    url: '/v1/chat/completions',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,idempotency-key,last-event-id' },
  });
  t.equal(res.statusCode, 204);
  const allowed = String(res.headers['access-control-allow-headers']).toLowerCase().split(/\s*,\s*/);
  t.ok(allowed.includes('idempotency-key'), 'Idempotency-Key allowed');
  t.ok(allowed.includes('last-event-id'), 'Last-Event-ID allowed');
  for (const h of ['x-api-key', 'anthropic-version', 'anthropic-beta']) t.ok(allowed.includes(h), `${h} allowed (Anthropic's browser client)`);
});

t.test('a keyed streaming POST keeps generating for STREAM_RESUME_GRACE_MS after its client left', async (t) => {
  const grace = 400;
  const { mock, gw } = await setup(t, { tokensPerSecond: 50 }, { streamResumeGraceMs: grace, chatResumeGraceMs: 0 });
  const body = chatBody('[mock:tokens=1000]', { stream: true });

  // Without a key (CHAT_RESUME_GRACE_MS=0): stopped the moment the client leaves.
  const plain = await openStream(`${gw.url}/v1/chat/completions`, body);
  await plain.until((h) => h.events.length >= 2);
  plain.destroy();
  await mock.waitForAborts(1);
  t.equal(await endType(gw.url, plain.res.headers['x-stream-id'] as string), 'client_disconnected');

  // With one: generating on without a reader, until the grace period ends.
  const keyed = await openStream(`${gw.url}/v1/chat/completions`, body, key('k-grace'));
  await keyed.until((h) => h.events.length >= 2);
  const left = performance.now();
  keyed.destroy();
  await mock.waitForAborts(2);
  const after = performance.now() - left;
  t.ok(after >= grace - 20, `the upstream ran on ${Math.round(after)} ms after the client left (grace ${grace} ms)`);
  t.equal(await endType(gw.url, keyed.res.headers['x-stream-id'] as string), 'no_reader');
});

t.test('a retry within the grace period attaches after its Last-Event-ID', async (t) => {
  const { mock, gw } = await setup(t, { tokensPerSecond: 100 }, { streamResumeGraceMs: 5000 });
  const body = chatBody('[mock:tokens=30]', { stream: true });
  const first = await openStream(`${gw.url}/v1/chat/completions`, body, key('k-back'));
  await first.until((h) => h.events.length >= 4);
  const got = first.events;
  first.destroy();
  const retry = await openStream(`${gw.url}/v1/chat/completions`, body, { ...key('k-back'), 'last-event-id': got.at(-1)!.id! });
  t.equal(retry.res.statusCode, 200);
  t.equal(retry.res.headers['x-stream-id'], first.res.headers['x-stream-id']);
  const rest = parseSse(await retry.done()).events;
  const ids = [...got, ...rest].filter((e) => e.id).map((e) => Number(e.id));
  t.same(ids, ids.map((_, i) => i + 1), 'ids 1..n: nothing lost, nothing repeated');
  t.equal(rest.at(-1)!.data, '[DONE]');
  t.equal(mock.requests.length, 1);
  t.equal(mock.aborted, 0);

  const ahead = await post(`${gw.url}/v1/chat/completions`, body, { ...key('k-back'), 'last-event-id': '9999' });
  t.equal(ahead.status, 400, 'a Last-Event-ID past the stream');
  const bad = await post(`${gw.url}/v1/chat/completions`, body, { ...key('k-back'), 'last-event-id': 'x' });
  t.equal(bad.status, 400);
  const long = await post(`${gw.url}/v1/chat/completions`, body, key('k'.repeat(300)));
  t.equal(long.status, 400, 'an Idempotency-Key over 255 characters');
  t.equal(JSON.parse(long.body).error.param, 'Idempotency-Key');
});

t.test('Anthropic Messages: a keyed retry attaches too, and a reused key is a conflict_error', async (t) => {
  const { mock, gw } = await setup(t, { tokensPerSecond: 0 });
  const body = { model: 'mock-1', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi [mock:tokens=5]' }] };
  const a = await openStream(`${gw.url}/v1/messages`, body, key('k-msg'));
  const textA = await a.done();
  const b = await openStream(`${gw.url}/v1/messages`, body, key('k-msg'));
  const textB = await b.done();
  t.equal(a.res.statusCode, 200);
  t.equal(b.res.headers['x-stream-id'], a.res.headers['x-stream-id']);
  t.equal(textB, textA, 'the same events, in the API\'s own shape');
  t.match(textA, /event: message_stop/);
  t.equal(mock.requests.length, 1);
  // A retry that has every event (its Last-Event-ID is the last one) gets an empty stream, not an end again.
  const lastId = parseSse(textA).events.at(-1)!.id!;
  t.ok(lastId, 'Messages events carry ids');
  const done = await post(`${gw.url}/v1/messages`, body, { ...key('k-msg'), 'last-event-id': lastId });
  t.equal(done.status, 200);
  t.match(done.headers['content-type'], /^text\/event-stream/);
  t.equal(done.body, '');
  const c = await post(`${gw.url}/v1/messages`, { ...body, max_tokens: 65 }, key('k-msg'));
  t.equal(c.status, 409);
  t.equal(JSON.parse(c.body).error.type, 'conflict_error');
});

/** Reads streams created by POST /v1/streams (their 201 bodies) to their end: their upstream requests are over then. */
async function readToEnd(url: string, ...created: string[]): Promise<void> {
  for (const c of created) await (await getStream(url + (JSON.parse(c) as { url: string }).url)).done();
}

t.test('OpenAI Responses: a keyed streaming retry attaches to the same response stream', async (t) => {
  const { mock, gw } = await setup(t, { tokensPerSecond: 0 });
  const body = { model: 'mock-1', stream: true, input: 'hi [mock:tokens=5]' };
  const a = await openStream(`${gw.url}/v1/responses`, body, key('k-resp'));
  const textA = await a.done();
  const b = await openStream(`${gw.url}/v1/responses`, body, key('k-resp'));
  const textB = await b.done();
  t.equal(a.res.statusCode, 200);
  t.equal(b.res.headers['x-stream-id'], a.res.headers['x-stream-id']);
  t.equal(textB, textA, 'the same events');
  t.match(textA, /event: response\.completed/);
  t.equal(mock.requests.length, 1);
});

async function endType(url: string, id: string): Promise<string> {
  const events = parseSse(await (await getStream(`${url}/v1/streams/${id}`)).done()).events;
  return JSON.parse(events.at(-1)!.data).error.type as string;
}

/** An upstream that answers its first `n` POSTs with a 400 and forwards everything else to `target`. */
async function failingFirst(target: string, n: number): Promise<{ baseUrl: string; posts: number; close(): Promise<void> }> {
  const to = new URL(target);
  const state = { posts: 0 };
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && state.posts++ < n) {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"refused once","type":"invalid_request_error"}}');
      return;
    }
    const fwd = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode!, up.headers);
      up.pipe(res);
    });
    res.on('close', () => fwd.destroy());
    req.pipe(fwd);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    get posts() {
      return state.posts;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
