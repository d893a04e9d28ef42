import t, { type Test } from 'tap';
import { MAX_READERS_PER_STREAM } from '../../src/relay/relay.js';
import { chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { openAIError, send } from '../helpers/http.js';
import { getStream, parseSse, post, type StreamHandle } from '../helpers/sse.js';

/**
 * GET /v1/streams/:id is outside the request rate limit (EventSource takes a
 * 429 on a reconnect as the end of the stream), and bounded instead by open
 * readers per stream and a budget for reads of ids that do not exist.
 */

const LIMITS = { rateLimit: { max: 3, windowMs: 60_000 } };

async function started(t: Test, mock: { tokensPerSecond: number; firstTokenDelayMs: number }): Promise<RunningGateway> {
  const gw = await startGateway({ mock, ...LIMITS });
  t.teardown(() => gw.close());
  return gw;
}

async function create(gw: RunningGateway, prompt: string): Promise<string> {
  const res = await post(`${gw.url}/v1/streams`, chatBody(prompt));
  if (res.status !== 201) throw new Error(`POST /v1/streams → ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { url: string }).url;
}

const dataEvents = (h: StreamHandle) => h.events.filter((e) => e.data !== undefined);
const ratelimitHeaders = (headers: Record<string, unknown>) => Object.keys(headers).filter((k) => k.startsWith('x-ratelimit'));

function errorOf(t: Test, body: string): { code: string; param?: string | null } {
  const e = openAIError(body);
  if (typeof e === 'string') {
    t.fail(e);
    return { code: '' };
  }
  return e.error;
}

t.test('with RATE_LIMIT_MAX=3, reconnects always read (200, then 204), and POSTs are still limited', async (t) => {
  const gw = await started(t, { tokensPerSecond: 100, firstTokenDelayMs: 0 });
  const url = gw.url + (await create(gw, 'reconnect often [mock:tokens=12]'));

  // EventSource's way: read a little, lose the connection, come back with Last-Event-ID.
  const statuses: number[] = [];
  let lastId = '';
  for (let i = 0; i < 30; i++) {
    const h = await getStream(url, lastId ? { 'last-event-id': lastId } : {});
    statuses.push(h.res.statusCode!);
    t.same(ratelimitHeaders(h.res.headers), [], `read ${i + 1}: not counted (no x-ratelimit headers)`);
    if (h.res.statusCode !== 200) break;
    await h.until((s) => s.ended || dataEvents(s).length >= 1);
    const got = dataEvents(h);
    lastId = got[0]?.id ?? lastId;
    h.destroy();
  }
  t.ok(statuses.length >= 6, `${statuses.length} reads`);
  t.same(statuses, [...statuses.slice(0, -1).map(() => 200), 204], 'every read 200 until the stream is over, then 204');

  // One POST so far: the reads spent none of the budget.
  const posts = [];
  for (let i = 0; i < 3; i++) posts.push(await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=1]')));
  t.same(posts.map((p) => p.status), [201, 201, 429], 'POSTs 2 and 3 pass, the 4th is over the limit');
  t.equal(errorOf(t, posts[2]!.body).code, 'rate_limit_exceeded');

  // Over the request limit, the stream still reads.
  const again = await getStream(url);
  t.equal(again.res.statusCode, 200, 'a fresh read while POSTs are refused');
  t.equal(parseSse(await again.done()).events.at(-1)?.event, 'done', 'and it reads to the end');
  const over = await getStream(url, { 'last-event-id': lastId });
  t.equal(over.res.statusCode, 204);
});

t.test(`the ${MAX_READERS_PER_STREAM + 1}th concurrent reader of one stream: 429 with Retry-After; the others keep streaming`, async (t) => {
  // 20 tokens a second for 1,000 tokens: live for the whole test.
  const gw = await started(t, { tokensPerSecond: 20, firstTokenDelayMs: 0 });
  const url = gw.url + (await create(gw, 'many tabs [mock:tokens=1000]'));
  const readers: StreamHandle[] = [];
  t.teardown(() => readers.forEach((r) => r.destroy()));
  for (let i = 0; i < MAX_READERS_PER_STREAM; i++) readers.push(await getStream(url));
  t.same(readers.map((r) => r.res.statusCode), readers.map(() => 200), `${MAX_READERS_PER_STREAM} readers`);
  await Promise.all(readers.map((r) => r.until((h) => dataEvents(h).length >= 2)));

  const refused = await getStream(url);
  t.equal(refused.res.statusCode, 429, `reader ${MAX_READERS_PER_STREAM + 1} is refused`);
  t.equal(refused.res.headers['retry-after'], '1', 'Retry-After: 1');
  t.equal(errorOf(t, await refused.done()).code, 'too_many_streams');

  // The others go on receiving events after the refusal.
  const counts = readers.map((r) => dataEvents(r).length);
  await Promise.all(readers.map((r, i) => r.until((h) => dataEvents(h).length >= counts[i]! + 3)));
  t.ok(readers.every((r) => !r.ended), 'none of them was ended');

  // One leaves: its place is free again once the gateway has seen it go (its request line is written first).
  const leaving = readers.shift()!;
  const reqId = leaving.res.headers['x-request-id'];
  leaving.destroy();
  await gw.logs.waitForRequest((l) => l.reqId === reqId);
  const next = await getStream(url);
  readers.push(next);
  t.equal(next.res.statusCode, 200, 'a reader that left frees its place');
  await next.until((h) => dataEvents(h).length >= 1);
  t.ok(readers.slice(0, -1).every((r) => !r.ended), 'the others still stream');
});

t.test('reads of unknown ids: 404 up to the budget, then 429; a known id still reads', async (t) => {
  const gw = await started(t, { tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const known = gw.url + (await create(gw, '[mock:tokens=3]'));
  const unknown = [
    '/v1/streams/str_AAAAAAAAAAAAAAAAAAAAAA',
    '/v1/streams/not-a-stream-id',
    '/v1/streams/str_BBBBBBBBBBBBBBBBBBBBBB',
  ];
  for (const path of unknown) {
    const res = await send(gw.url + path);
    t.equal(res.status, 404, `${path}: 404`);
    t.equal(errorOf(t, res.body).code, 'stream_not_found');
  }
  const probe = await send(`${gw.url}/v1/streams/str_CCCCCCCCCCCCCCCCCCCCCC`);
  t.equal(probe.status, 429, 'the 4th unknown id in the window: 429');
  t.equal(errorOf(t, probe.body).code, 'rate_limit_exceeded');
  t.ok(Number(probe.headers['retry-after']) > 0, 'with Retry-After');
  t.equal(probe.headers['x-ratelimit-limit'], '3');
  t.equal(probe.headers['x-ratelimit-remaining'], '0');

  const read = await getStream(known);
  t.equal(read.res.statusCode, 200, 'the same client still reads a stream that exists');
  t.equal(parseSse(await read.done()).events.at(-1)?.event, 'done');

  // Another client has its own budget; the misses spent none of the request budget.
  const elsewhere = await gw.app.inject({ method: 'GET', url: '/v1/streams/str_DDDDDDDDDDDDDDDDDDDDDD', remoteAddress: '10.0.0.2' });
  t.equal(elsewhere.statusCode, 404, 'another IP: 404');
  const posts = [await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=1]')), await post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=1]'))];
  t.same(posts.map((p) => p.status), [201, 201], 'POSTs 2 and 3 of the window pass');
});
