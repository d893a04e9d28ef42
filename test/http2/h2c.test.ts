import http2 from 'node:http2';
import t from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { closeSession, connectH2, h2Get, h2Post, within } from '../helpers/http2.js';
import { post } from '../helpers/sse.js';

/** HTTP2_CLEARTEXT: h2c with prior knowledge, for a proxy that speaks HTTP/2 to the gateway. No TLS, no HTTP/1.1. */

t.test('h2c: streams of both endpoints share one cleartext session; RST aborts the upstream', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 50, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), http2Cleartext: true, maxConcurrentStreams: 20 });
  t.match(gw.url, /^http:\/\//);
  const session = await connectH2(gw.url);
  t.teardown(async () => {
    await closeSession(session);
    await gw.close();
    await mock.close();
  });
  t.equal(session.encrypted, false, 'cleartext');

  const chat = h2Post(session, '/v1/chat/completions', chatBody('h2c chat [mock:tokens=15]', { stream: true }));
  const created = h2Post(session, '/v1/streams', chatBody('h2c stream [mock:tokens=15]'));
  const leaving = h2Post(session, '/v1/chat/completions', chatBody('h2c leaving [mock:tokens=500]', { stream: true }));
  const { url } = JSON.parse(await created.done(5000)) as { url: string };
  t.equal(created.status, 201);
  const read = h2Get(session, url);

  await leaving.until((x) => x.events.length >= 2, 5000, 'the stream to reset to start');
  leaving.stream.close(http2.constants.NGHTTP2_CANCEL);
  await within(mock.waitForAborts(1), 5000, 'the reset stream’s upstream to be aborted');

  await Promise.all([chat.done(10_000), read.done(10_000)]);
  t.equal(chat.status, 200);
  t.equal(chat.headers?.['content-type'], 'text/event-stream; charset=utf-8');
  t.equal(chat.events.at(-1)?.data, '[DONE]', 'chat completion ends with [DONE]');
  t.equal(chat.events.length, 18, 'role chunk, 15 tokens, finish chunk, [DONE]');
  t.equal(read.events.at(-1)?.event, 'done', 'GET /v1/streams/:id ends with the done event');
  t.equal(mock.aborted, 1, 'only the reset stream was aborted');
});

t.test('h2c has no HTTP/1.1 fallback on its port (documented in the README)', async (t) => {
  const gw = await startGateway({ http2Cleartext: true });
  t.teardown(() => gw.close());
  await t.rejects(within(post(`${gw.url}/v1/chat/completions`, chatBody('hi', { stream: true })), 5000, 'an HTTP/1.1 answer'), 'an HTTP/1.1 request fails');
});
