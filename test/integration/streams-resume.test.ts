import t from 'tap';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { getStream, parseSse, post, serialize, type StreamHandle } from '../helpers/sse.js';
import { send } from '../helpers/http.js';

/** A mock slow enough that a reader can leave and come back while the generation runs. */
const LIVE_MOCK = { tokensPerSecond: 150, firstTokenDelayMs: 0 };

async function create(url: string, prompt: string, headers: Record<string, string> = {}): Promise<{ id: string; url: string }> {
  const res = await post(`${url}/v1/streams`, chatBody(prompt), headers);
  if (res.status !== 201) throw new Error(`POST /v1/streams → ${res.status} ${res.body}`);
  const body = JSON.parse(res.body) as { id: string; url: string };
  if (res.headers.location !== body.url) throw new Error('Location header differs from url');
  return body;
}

const ended = (h: StreamHandle) => h.events.some((e) => e.event === 'done' || e.event === 'error');

t.test('POST creates a stream; GET reads it: retry first, ids, done with an id, then the end', async (t) => {
  const gw = await startGateway({ mock: LIVE_MOCK });
  t.teardown(() => gw.close());
  const s = await create(gw.url, 'hello [mock:tokens=10]');
  t.match(s.id, /^str_[A-Za-z0-9_-]{22}$/);
  t.equal(s.url, `/v1/streams/${s.id}`);
  const r = await getStream(gw.url + s.url);
  t.equal(r.res.statusCode, 200);
  t.equal(r.res.headers['content-type'], 'text/event-stream; charset=utf-8');
  const text = await r.done();
  t.ok(text.startsWith('retry: 1000\n\n'), 'retry comes first');
  const { events } = parseSse(text);
  const data = events.filter((e) => e.retry === undefined);
  const last = data.at(-1)!;
  t.equal(last.event, 'done');
  t.equal(last.id, String(data.length));
  t.same(JSON.parse(last.data), { finish_reason: 'stop', usage: { prompt_tokens: 6, completion_tokens: 10, total_tokens: 16 } }, 'done carries finish_reason and usage');
  t.ok(data.slice(0, -1).every((e, i) => e.event === undefined && e.id === String(i + 1)), 'unnamed data events, ids 1..n');
});

for (const [label, k] of [['0', 0], ['1', 1], ['middle', 6], ['last', 12]] as const) {
  for (const via of ['header', 'query'] as const) {
    t.test(`disconnect after ${label} events, resume with Last-Event-ID (${via}): nothing lost, nothing repeated`, async (t) => {
      const gw = await startGateway({ mock: LIVE_MOCK });
      t.teardown(() => gw.close());
      // 10 tokens → role chunk + 10 + finish chunk = 12 data events, then done.
      const s = await create(gw.url, 'resume me [mock:tokens=10]');
      const whole = await getStream(gw.url + s.url);
      const partial = await getStream(gw.url + s.url);
      await partial.until((h) => h.events.filter((e) => e.data !== undefined).length >= k);
      const first = partial.events.filter((e) => e.data !== undefined).slice(0, k);
      partial.destroy();
      const lastId = first.at(-1)?.id;
      const resumeUrl = via === 'query' && lastId ? `${gw.url}${s.url}?lastEventId=${lastId}` : gw.url + s.url;
      const headers: Record<string, string> = via === 'header' && lastId ? { 'last-event-id': lastId } : {};
      const rest = await getStream(resumeUrl, headers);
      await rest.done();
      await whole.done();
      t.equal(serialize([...first, ...rest.events]), serialize(whole.events));
      t.ok(ended(whole));
    });
  }
}

t.test('two concurrent readers get the same events', async (t) => {
  const gw = await startGateway({ mock: LIVE_MOCK });
  t.teardown(() => gw.close());
  const s = await create(gw.url, 'two tabs [mock:tokens=20]');
  const [a, b] = await Promise.all([getStream(gw.url + s.url), getStream(gw.url + s.url)]);
  const [ta, tb] = await Promise.all([a.done(), b.done()]);
  t.equal(ta, tb);
  t.equal(parseSse(ta).events.at(-1)!.event, 'done');
});

t.test('204 on reconnect to a finished stream; 404 for unknown, malformed or expired ids', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK });
  t.teardown(() => gw.close());
  const s = await create(gw.url, '[mock:tokens=3]');
  const text = await (await getStream(gw.url + s.url)).done();
  const finalId = parseSse(text).events.at(-1)!.id!;
  const again = await getStream(gw.url + s.url, { 'last-event-id': finalId });
  t.equal(again.res.statusCode, 204);
  const tail = await getStream(gw.url + s.url, { 'last-event-id': String(Number(finalId) - 1) });
  t.equal(parseSse(await tail.done()).events.filter((e) => e.data !== undefined).length, 1, 'only the final event');
  for (const id of ['str_AAAAAAAAAAAAAAAAAAAAAA', 'nope', 'str_%2e%2e', 'str_' + 'x'.repeat(100)]) {
    const r = await getStream(`${gw.url}/v1/streams/${id}`);
    t.equal(r.res.statusCode, 404, id);
    const body = JSON.parse(await r.done());
    t.equal(body.error.code, 'stream_not_found', id);
  }
  const bad = await getStream(gw.url + s.url, { 'last-event-id': 'abc' });
  t.equal(bad.res.statusCode, 400);
});

t.test('DELETE aborts the upstream (seen by the mock); another key may not', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 20, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-a', 'key-b'] });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const s = await create(gw.url, '[mock:tokens=1000]', { authorization: 'Bearer key-a' });
  const reader = await getStream(gw.url + s.url); // no key: the id is the capability
  await reader.until((h) => h.events.filter((e) => e.id).length >= 2);
  const other = await deleteStream(`${gw.url}${s.url}`, 'key-b');
  t.equal(other, 403);
  const none = await deleteStream(`${gw.url}${s.url}`);
  t.equal(none, 401);
  t.equal(await deleteStream(`${gw.url}${s.url}`, 'key-a'), 204);
  await mock.waitForAborts(1);
  const last = parseSse(await reader.done()).events.at(-1)!;
  t.equal(last.event, 'error');
  t.equal(JSON.parse(last.data).error.type, 'deleted');
});

t.test('with no reader for STREAM_RESUME_GRACE_MS the upstream is aborted', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 20, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), streamResumeGraceMs: 150 });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const s = await create(gw.url, '[mock:tokens=1000]');
  await mock.waitForAborts(1);
  const text = await (await getStream(gw.url + s.url)).done();
  const last = parseSse(text).events.at(-1)!;
  t.equal(JSON.parse(last.data).error.type, 'no_reader');

  // A reader that leaves and comes back within the grace period keeps it alive.
  const kept = await create(gw.url, '[mock:tokens=30]');
  const r1 = await getStream(gw.url + kept.url);
  await r1.until((h) => h.events.filter((e) => e.id).length >= 2);
  const seen = r1.events.filter((e) => e.id).at(-1)!.id!;
  r1.destroy();
  const r2 = await getStream(gw.url + kept.url, { 'last-event-id': seen });
  t.equal(parseSse(await r2.done()).events.at(-1)!.event, 'done');
  t.equal(mock.aborted, 1);
});

t.test('a POST /v1/chat/completions stream resumes on GET /v1/streams/<X-Stream-Id>', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 40, firstTokenDelayMs: 0 });
  const graceless = await startGateway(viaUpstream(baseUrl));
  const graceful = await startGateway({ ...viaUpstream(baseUrl), chatResumeGraceMs: 5000 });
  t.teardown(async () => {
    await graceless.close();
    await graceful.close();
    await mock.close();
  });
  const { openStream } = await import('../helpers/sse.js');

  // Default (grace 0): the upstream stops at disconnect; what was generated stays readable.
  const a = await openStream(`${graceless.url}/v1/chat/completions`, chatBody('[mock:tokens=200]', { stream: true }));
  await a.until((h) => h.events.length >= 3);
  const idA = a.res.headers['x-stream-id'] as string;
  const seenA = a.events.at(-1)!.id!;
  a.destroy();
  await mock.waitForAborts(1);
  const restA = parseSse(await (await getStream(`${graceless.url}/v1/streams/${idA}`, { 'last-event-id': seenA })).done()).events;
  t.equal(restA.at(-1)!.event, 'error');
  t.equal(JSON.parse(restA.at(-1)!.data).error.type, 'client_disconnected');

  // With a grace period the generation goes on, and the client resumes to the end.
  const b = await openStream(`${graceful.url}/v1/chat/completions`, chatBody('[mock:tokens=20]', { stream: true }));
  await b.until((h) => h.events.length >= 3);
  const idB = b.res.headers['x-stream-id'] as string;
  const firstB = b.events;
  b.destroy();
  const restB = parseSse(await (await getStream(`${graceful.url}/v1/streams/${idB}`, { 'last-event-id': firstB.at(-1)!.id! })).done()).events;
  const joined = [...firstB, ...restB.filter((e) => e.retry === undefined)];
  t.equal(joined.at(-1)!.event, 'done');
  const ids = joined.map((e) => Number(e.id));
  t.same(ids, ids.map((_, i) => i + 1), 'ids 1..n, no gap, no repeat');
  const text = joined.slice(0, -1).map((e) => JSON.parse(e.data).choices[0]?.delta.content ?? '').join('');
  t.equal(text.split(' ').length, 20);
  t.equal(mock.aborted, 1, 'the graceful stream was not aborted');
});

async function deleteStream(url: string, key?: string): Promise<number> {
  return (await send(url, { method: 'DELETE', headers: key ? { authorization: `Bearer ${key}` } : {} })).status;
}
