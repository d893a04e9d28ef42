import http2 from 'node:http2';
import t from 'tap';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { chatBody } from '../helpers/gateway.js';
import { CONNECTION_HEADERS, closeSession, connectH2, h2Get, h2Post, testCert, startTlsGateway, within, type H2Exchange } from '../helpers/http2.js';
import type { SseEvent } from '../helpers/sse.js';

/** 20 SSE streams multiplexed on ONE HTTP/2 connection; an RST_STREAM on one is that stream's disconnect only. */

const expected = (prompt: string) =>
  planCompletion({ model: 'mock-1', messages: [{ role: 'user', content: prompt }] } as ChatRequest, { tokensPerSecond: 0, firstTokenDelayMs: 0 }).content;

/** Text of chat.completion.chunk events, and whether their SSE ids run 1, 2, 3… */
function read(events: SseEvent[]): { text: string; idsInOrder: boolean } {
  let text = '';
  let idsInOrder = true;
  events
    .filter((e) => e.retry === undefined && e.event === undefined && e.data !== '[DONE]')
    .forEach((e, i) => {
      if (e.id !== String(i + 1)) idsInOrder = false;
      text += (JSON.parse(e.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
    });
  return { text, idsInOrder };
}

const cert = testCert(t);
if (!cert) {
  t.plan(0, 'no openssl to make a test certificate');
} else {

  t.test('20 concurrent streams over one session; resetting one aborts exactly its upstream request', async (t) => {
    const { mock, gw } = await startTlsGateway(t, cert, { rateLimit: { max: 1000, windowMs: 60_000 }, maxConcurrentStreams: 100 });
    let sessions = 0;
    gw.app.server.on('session', () => sessions++);
    const session = await connectH2(gw.url);
    t.teardown(() => closeSession(session));
    t.equal(session.alpnProtocol, 'h2', 'ALPN chose h2');

    const RESET = 3;
    const prompts = Array.from({ length: 20 }, (_, i) => `stream ${i} [mock:tokens=40]`);
    // 0–9: POST /v1/chat/completions; 10–19: POST /v1/streams, then GET it (what EventSource does).
    const streams: Promise<H2Exchange>[] = prompts.map(async (prompt, i) => {
      if (i < 10) return h2Post(session, '/v1/chat/completions', chatBody(prompt, { stream: true }));
      const created = h2Post(session, '/v1/streams', chatBody(prompt));
      const { url } = JSON.parse(await created.done(5000)) as { url: string };
      return h2Get(session, url);
    });
    const all = await within(Promise.all(streams), 10_000, '20 streams to open');

    const victim = all[RESET]!;
    await victim.until((x) => x.events.length >= 3, 5000, 'three events on the stream to reset');
    t.equal(all.filter((x) => x.ended).length, 0, 'no stream had finished when one was reset');
    victim.stream.close(http2.constants.NGHTTP2_CANCEL);
    await within(mock.waitForAborts(1), 5000, 'the upstream request of the reset stream to be aborted');
    const aborted = mock.requests.filter((r) => r.outcome === 'aborted');
    t.equal(aborted.length, 1, 'one upstream request aborted');
    t.match(aborted[0]!.body.messages[0], { content: prompts[RESET] }, '…the reset stream’s own');

    const others = all.filter((_, i) => i !== RESET);
    await within(Promise.all(others.map((x) => x.done(15_000))), 20_000, 'the other 19 streams to finish');
    for (const [i, x] of all.entries()) {
      if (i === RESET) continue;
      const events = x.events;
      const { text, idsInOrder } = read(events);
      t.equal(x.status, 200, `stream ${i}: 200`);
      t.equal(text, expected(prompts[i]!), `stream ${i}: its own answer, complete`);
      t.ok(idsInOrder, `stream ${i}: ids 1, 2, 3… in order`);
      if (i < 10) {
        t.equal(events.at(-1)?.data, '[DONE]', `stream ${i}: ends with [DONE]`);
        t.match(x.headers?.['x-stream-id'], /^str_/, `stream ${i}: X-Stream-Id`);
      } else {
        const last = events.at(-1)!;
        t.equal(last.event, 'done', `stream ${i}: ends with the done event`);
        t.equal(Number(last.id), events.length - 1, `stream ${i}: the done event carries the next id`);
      }
    }
    t.equal(mock.aborted, 1, 'still exactly one upstream abort');
    t.equal(mock.requests.filter((r) => r.outcome === 'completed').length, 19, '19 upstream requests answered in full');

    // SSE headers as HTTP/2 wants them: no connection-specific fields (Node's client would refuse them anyway).
    const h = all[0]!.headers!;
    t.equal(h['content-type'], 'text/event-stream; charset=utf-8');
    t.equal(h['cache-control'], 'no-cache, no-transform');
    t.equal(h['x-accel-buffering'], 'no');
    t.same(CONNECTION_HEADERS.filter((n) => n in h), [], 'no connection-specific headers');

    // The disconnect is seen as on HTTP/1: the stream log ends client_disconnected, the request line says client_aborted.
    const resetId = victim.headers!['x-stream-id'] as string;
    t.match(gw.store.get(resetId)?.end, { kind: 'error', type: 'client_disconnected' }, 'the reset stream’s log ends client_disconnected');
    const resetLine = await within(gw.logs.waitForRequest((l) => l.stream_id === resetId), 2000, 'the reset stream’s request line');
    t.equal(resetLine.outcome, 'client_aborted');
    const okId = all[0]!.headers!['x-stream-id'];
    const okLine = await within(gw.logs.waitForRequest((l) => l.stream_id === okId), 2000, 'a finished stream’s request line');
    t.equal(okLine.outcome, 'completed', 'a stream that ended normally counts as completed (writableFinished on HTTP/2)');
    t.equal(sessions, 1, 'all of it on one HTTP/2 session');
  });
}
