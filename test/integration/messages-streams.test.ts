import http2 from 'node:http2';
import Anthropic, { APIUserAbortError } from '@anthropic-ai/sdk';
import t from 'tap';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { h2Post, startH2cGateway, within } from '../helpers/http2.js';
import { waitForMetric, valueOf } from '../helpers/metrics.js';
import { getStream, openStream, parseSse, post, serialize, type SseEvent } from '../helpers/sse.js';

/**
 * A Messages stream's life in the gateway: the client leaving aborts the
 * upstream; X-Stream-Id names it, and GET /v1/streams/{id} replays the same
 * Messages events (from Last-Event-ID on); the log line and /metrics name
 * the API.
 */

const KEY = 'gw-messages-streams-key';
const auth = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01' };

const body = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'mock-1',
  max_tokens: 512,
  stream: true,
  messages: [{ role: 'user', content }],
  ...extra,
});

const after = (events: SseEvent[], id: number) => events.filter((e) => e.id !== undefined && Number(e.id) > id);

t.test('Messages streams', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: [KEY], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });

  t.test('the client aborting the stream aborts the upstream request', async (t) => {
    const stream = client.messages.stream({ model: 'mock-1', max_tokens: 4096, messages: [{ role: 'user', content: 'Go on [mock:tps=100] [mock:tokens=3000]' }] });
    let deltas = 0;
    stream.on('text', () => {
      if (++deltas === 3) stream.abort();
    });
    const err = await stream.finalMessage().then(
      () => null,
      (e: unknown) => e,
    );
    t.type(err, APIUserAbortError, 'the SDK reports its own abort');
    await mock.waitForAborts(1);
    const rec = mock.requests.at(-1)!;
    t.equal(rec.outcome, 'aborted', 'the mock saw the gateway hang up');
    t.ok(rec.chunksSent < 3000, `the upstream stopped early (${rec.chunksSent} chunks sent)`);
    const { response } = await stream.withResponse();
    const id = response.headers.get('x-stream-id');
    const line = await gw.logs.waitForRequest((l) => l.stream_id === id);
    t.match(line, { api: 'messages', outcome: 'client_aborted' });
  });

  t.test('X-Stream-Id: GET /v1/streams/{id} replays the same Messages events, and resumes after Last-Event-ID', async (t) => {
    const res = await post(`${gw.url}/v1/messages`, body('Replay me [mock:tokens=12]'), auth);
    t.equal(res.status, 200);
    const id = res.headers['x-stream-id'] as string;
    t.match(id, /^str_/);
    const posted = parseSse(res.body).events;
    t.same(
      [...new Set(posted.map((e) => e.event))],
      ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'],
    );
    t.ok(
      posted.every((e, i) => e.id === String(i + 1)),
      'every event has an id, 1, 2, 3…',
    );

    const replay = await send(`${gw.url}/v1/streams/${id}`, { headers: { accept: 'text/event-stream' } });
    t.equal(replay.status, 200);
    t.match(replay.headers['content-type'], /^text\/event-stream/);
    t.equal(serialize(parseSse(replay.body).events), serialize(posted), 'the same events, byte for byte');

    const resumed = await send(`${gw.url}/v1/streams/${id}`, { headers: { 'last-event-id': '3' } });
    t.equal(serialize(parseSse(resumed.body).events), serialize(after(posted, 3)), 'the events after id 3');
    const finished = await send(`${gw.url}/v1/streams/${id}`, { headers: { 'last-event-id': posted.at(-1)!.id! } });
    t.equal(finished.status, 204, 'nothing after the final event');
  });

  t.test('a reader joining a live Messages stream mid-way gets the rest, nothing lost or repeated', async (t) => {
    const live = await openStream(`${gw.url}/v1/messages`, body('Live one [mock:tps=200] [mock:tokens=30]'), auth);
    t.equal(live.res.statusCode, 200);
    await live.until((h) => h.events.length >= 4);
    const id = live.res.headers['x-stream-id'] as string;
    const reader = await getStream(`${gw.url}/v1/streams/${id}`, { 'last-event-id': '2' });
    const [posted, read] = await Promise.all([live.done(), reader.done()]);
    const all = parseSse(posted).events;
    t.equal(all.at(-1)?.event, 'message_stop');
    t.equal(serialize(parseSse(read).events), serialize(after(all, 2)));
  });

  t.test('the log line and /metrics name the API', async (t) => {
    const before = valueOf(await waitForMetric(gw.app, 'gateway_requests_total', {}, 0), 'gateway_requests_total', { api: 'messages' });
    const { response } = await client.messages
      .stream({ model: 'mock-1', max_tokens: 64, messages: [{ role: 'user', content: 'Count me [mock:tokens=4]' }] })
      .withResponse();
    const id = response.headers.get('x-stream-id');
    const line = await gw.logs.waitForRequest((l) => l.stream_id === id);
    t.match(line, { api: 'messages', model: 'mock-1', status: 200, url: '/v1/messages' });

    await client.messages.create({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'plain [mock:tokens=2]' }] });
    await client.messages.countTokens({ model: 'mock-1', messages: [{ role: 'user', content: 'count' }] });
    const counted = await gw.logs.waitForRequest((l) => l.url === '/v1/messages/count_tokens');
    t.match(counted, { api: 'messages', status: 200 });
    const stranger = await send(`${gw.url}/v1/messages`, { headers: { 'content-type': 'application/json', 'x-api-key': 'nope' }, body: body('hi') });
    t.equal(stranger.status, 401);

    const samples = await waitForMetric(gw.app, 'gateway_requests_total', { api: 'messages' }, before + 4);
    t.equal(valueOf(samples, 'gateway_requests_total', { api: 'messages', status: '401' }), 1, 'a refused key counts under the API too');
    t.ok(valueOf(samples, 'gateway_requests_total', { api: 'messages', status: '200' }) >= 3);
  });
});

t.test('over HTTP/2 (h2c): a Messages stream ends with message_stop; a reset stream aborts its upstream', async (t) => {
  const { mock, session } = await startH2cGateway(t);
  const done = h2Post(session, '/v1/messages', body('h2 [mock:tokens=10]'));
  const leaving = h2Post(session, '/v1/messages', body('h2 leaving [mock:tokens=500]'));
  await leaving.until((x) => x.events.length >= 3, 5000, 'the leaving stream to start');
  leaving.stream.close(http2.constants.NGHTTP2_CANCEL);
  await within(mock.waitForAborts(1), 5000, 'the reset stream’s upstream to be aborted');
  await done.done(5000);
  t.equal(done.status, 200);
  t.match(done.headers?.['x-stream-id'], /^str_/);
  t.same(
    done.events.map((e) => e.event).slice(-3),
    ['content_block_stop', 'message_delta', 'message_stop'],
  );
  t.equal(mock.aborted, 1, 'only the reset stream was aborted');
});
