import t, { type Test } from 'tap';
import { cuttingProxy, type CutPlan } from '../helpers/cutting-proxy.js';
import { postEventStream, type PostedStream } from '../helpers/fetch-event-source.js';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { getStream, parseSse } from '../helpers/sse.js';

/**
 * A client on a network that drops: the real @microsoft/fetch-event-source,
 * its first connection cut mid-stream by a TCP proxy, retrying by itself
 * with Last-Event-ID. With an Idempotency-Key the retry resumes the stream
 * the first POST started; the upstream is asked once.
 */

/** 40 tokens at 200/s: long enough to be cut in the middle, short enough for a test. */
const MOCK = { tokensPerSecond: 200, firstTokenDelayMs: 0 };
const BODY = chatBody('count for me [mock:tokens=40]', { stream: true });

async function setup(t: Test, cut: CutPlan) {
  const { mock, baseUrl } = await startMock(MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), streamResumeGraceMs: 5000 });
  const proxy = await cuttingProxy(gw.url, cut);
  t.teardown(async () => {
    await proxy.close();
    await gw.close();
    await mock.close();
  });
  return { mock, gw, proxy };
}

/** The stream as the gateway logged it, read on GET /v1/streams/:id (no upstream call): id|data per data event. */
async function logged(gwUrl: string, id: string): Promise<string[]> {
  const text = await (await getStream(`${gwUrl}/v1/streams/${id}`)).done();
  return parseSse(text)
    .events.filter((e) => e.id !== undefined && e.event === undefined)
    .map((e) => `${e.id}|${e.data}`);
}

const seen = (s: PostedStream) => s.messages.filter((m) => m.data !== '[DONE]').map((m) => `${m.id}|${m.data}`);

for (const [label, cut, trackDispatched] of [
  ['between two events', { connection: 0, afterEvents: 6 }, false],
  ['inside an event (last dispatched id sent, as the README shows)', { connection: 0, afterEvents: 6, extraBytes: 40 }, true],
] as const) {
  t.test(`cut ${label}: the library's retry resumes; every event once, one upstream request`, async (t) => {
    const { mock, gw, proxy } = await setup(t, cut);
    const s = await postEventStream(`${proxy.url}/v1/chat/completions`, BODY, { 'idempotency-key': 'retry-me-1' }, { trackDispatched });
    await proxy.cut;
    t.equal(s.errors.length, 1, 'the library saw the cut once and retried');
    t.equal(s.opens.length, 2);
    t.same(s.opens.map((o) => o.status), [200, 200]);
    const id = s.opens[0]!.streamId!;
    t.match(id, /^str_/);
    t.equal(s.opens[1]!.streamId, id, 'the retry carries the first POST\'s X-Stream-Id');
    t.match(proxy.requests[1], /\r\nlast-event-id: 6\r\n/i, 'the retry sent Last-Event-ID');
    t.match(proxy.requests[1], /\r\nidempotency-key: retry-me-1\r\n/i, 'and the same Idempotency-Key');
    t.equal(s.messages.at(-1)?.data, '[DONE]', 'read to the end');
    const whole = await logged(gw.url, id);
    t.equal(whole.length, 42, 'role chunk, 40 tokens, finish chunk');
    t.same(seen(s), whole, 'every event exactly once, in order');
    t.equal(mock.requests.length, 1, 'the upstream was asked once');
    t.equal(mock.aborted, 0);
  });
}

t.test('without an Idempotency-Key the same retry starts a second generation (and repeats events)', async (t) => {
  const { mock, proxy } = await setup(t, { connection: 0, afterEvents: 6 });
  const s = await postEventStream(`${proxy.url}/v1/chat/completions`, BODY, {});
  t.equal(s.opens.length, 2);
  t.not(s.opens[1]!.streamId, s.opens[0]!.streamId, 'another stream');
  t.equal(mock.requests.length, 2, 'the upstream was asked twice');
  const ids = s.messages.filter((m) => m.id).map((m) => Number(m.id));
  t.same(ids.slice(0, 7), [1, 2, 3, 4, 5, 6, 1], 'the retry starts over from the first event');
  t.equal(s.messages.at(-1)?.data, '[DONE]');
});

t.test('a retry after the stream ended replays it whole (no Last-Event-ID) without a new generation', async (t) => {
  const { mock, gw } = await setup(t, { connection: 99, afterEvents: 1 });
  const headers = { 'idempotency-key': 'replay-1' };
  const first = await postEventStream(`${gw.url}/v1/chat/completions`, BODY, headers);
  const again = await postEventStream(`${gw.url}/v1/chat/completions`, BODY, headers);
  t.equal(again.opens[0]!.streamId, first.opens[0]!.streamId);
  t.same(seen(again), seen(first), 'the same events');
  t.equal(again.messages.at(-1)?.data, '[DONE]');
  t.equal(mock.requests.length, 1);
});
