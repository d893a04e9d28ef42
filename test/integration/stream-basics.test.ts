import t from 'tap';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { openStream, parseSse, post } from '../helpers/sse.js';

t.test('stream: true answers with SSE framed as the contract says', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK });
  t.teardown(() => gw.close());
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hello [mock:tokens=12]', { stream: true }), {
    'accept-encoding': 'gzip, br',
  });
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
  t.equal(res.headers['cache-control'], 'no-cache, no-transform');
  t.equal(res.headers['x-accel-buffering'], 'no');
  t.equal(res.headers['content-encoding'], undefined, 'never compressed');
  t.match(res.headers['x-stream-id'], /^str_[A-Za-z0-9_-]{22}$/);
  const { events } = parseSse(res.body);
  const last = events.at(-1)!;
  t.equal(last.data, '[DONE]');
  t.equal(last.id, undefined);
  const data = events.slice(0, -1);
  t.equal(data.length, 12 + 2, 'role chunk + 12 tokens + finish chunk');
  data.forEach((e, i) => t.equal(e.id, String(i + 1)));
  const chunks = data.map((e) => JSON.parse(e.data));
  t.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
  t.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
});

t.test('the first event is flushed before the upstream sends its second chunk', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 4, firstTokenDelayMs: 0 });
  const gw = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=3]', { stream: true }));
  await s.until((h) => h.events.length >= 1);
  t.equal(mock.requests[0]!.chunksSent, 1, 'the upstream had sent one chunk when the client saw it');
  await s.done();
});

t.test('heartbeat comments while the upstream is silent', async (t) => {
  const gw = await startGateway({ mock: { tokensPerSecond: 4, firstTokenDelayMs: 0 }, heartbeatMs: 40 });
  t.teardown(() => gw.close());
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=3]', { stream: true }));
  await s.until((h) => h.text.includes(': ping\n\n'));
  const text = await s.done();
  const { events, comments } = parseSse(text);
  t.ok(comments.length >= 1 && comments.every((c) => c === 'ping'));
  t.equal(events.at(-1)!.data, '[DONE]', 'pings do not disturb the events');
});

t.test('upstream text cannot break the framing or add an event', async (t) => {
  const nasty = 'a\n\ndata: x\n\nb\r\nc\rd: e\n\nid: 99\n\nevent: error\n\ndata: [DONE]\n\n"quoted" ünïcødé 🌍 end';
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const direct = await startGateway({ mock: FAST_MOCK });
  const proxied = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await direct.close();
    await proxied.close();
    await mock.close();
  });
  for (const gw of [direct, proxied]) {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody(`${nasty} [mock:echo]`, { stream: true }));
    const { events } = parseSse(res.body);
    const data = events.slice(0, -1);
    t.equal(events.at(-1)!.data, '[DONE]');
    t.ok(events.slice(0, -1).every((e, i) => e.id === String(i + 1) && e.event === undefined));
    const text = data.map((e) => JSON.parse(e.data).choices[0]?.delta.content ?? '').join('');
    t.equal(text, `${nasty} `, 'the text arrives intact, inside JSON strings');
    for (const line of res.body.split('\n')) t.ok(line === '' || /^(id: \d+|data: (\{.*\}|\[DONE\]))$/.test(line), 'only id and data lines');
  }
});
