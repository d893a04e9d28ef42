import t from 'tap';
import { FAST_MOCK, chatBody, startGateway } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';

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
