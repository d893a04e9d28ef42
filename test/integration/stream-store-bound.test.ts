import t from 'tap';
import { FAST_MOCK, chatBody, startGateway } from '../helpers/gateway.js';
import { scrape, valueOf } from '../helpers/metrics.js';
import { getStream, parseSse, post, serialize } from '../helpers/sse.js';
import { send } from '../helpers/http.js';

const BOUND = 600_000;

t.test('many long answers on one gateway: the kept bytes stay under STREAM_STORE_MAX_BYTES; the oldest 404, recent ones replay', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, streamStoreMaxBytes: BOUND, rateLimit: { max: 10_000, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const served: { id: string; events: string }[] = [];
  let most = 0;
  // ~100 KB per answer: the bound holds five or six; forty go through.
  for (let i = 0; i < 40; i++) {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=400]', { stream: true }));
    t.equal(res.status, 200);
    t.match(res.body, /data: \[DONE\]\n\n$/);
    served.push({ id: res.headers['x-stream-id'] as string, events: serialize(parseSse(res.body).events.filter((e) => e.id)) });
    const samples = await scrape(gw.app);
    const bytes = valueOf(samples, 'gateway_stream_store_bytes');
    most = Math.max(most, bytes);
    if (bytes > BOUND) t.fail(`after answer ${i}: ${bytes} bytes kept, over ${BOUND}`);
    t.equal(bytes, gw.store.finishedBytes, `after answer ${i}: the gauge is the store's count`);
    t.equal(valueOf(samples, 'gateway_stream_store_streams'), gw.store.finishedCount);
  }
  t.ok(most > BOUND / 2, `the store did fill up (${most} bytes at most)`);
  const kept = valueOf(await scrape(gw.app), 'gateway_stream_store_streams');
  t.ok(kept >= 2 && kept < 10, `a handful of streams kept (${kept})`);

  for (const old of served.slice(0, 3)) {
    const res = await send(`${gw.url}/v1/streams/${old.id}`, { method: 'GET' });
    t.equal(res.status, 404, 'an answer that ended among the first was dropped');
  }
  for (const recent of served.slice(-2)) {
    const replay = await getStream(`${gw.url}/v1/streams/${recent.id}`);
    t.equal(replay.res.statusCode, 200, 'a recent answer is still there');
    const events = parseSse(await replay.done()).events;
    t.equal(serialize(events.filter((e) => e.id && !e.event)), recent.events, 'replayed whole, byte for byte');
    t.equal(events.at(-1)!.event, 'done');
  }
});

t.test('STREAM_STORE_MAX_BYTES=0: an answer is served whole, then its id is unknown', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, streamStoreMaxBytes: 0 });
  t.teardown(() => gw.close());
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=50]', { stream: true }));
  t.equal(res.status, 200);
  t.match(res.body, /data: \[DONE\]\n\n$/);
  const again = await send(`${gw.url}/v1/streams/${res.headers['x-stream-id'] as string}`, { method: 'GET' });
  t.equal(again.status, 404);
  const samples = await scrape(gw.app);
  t.equal(valueOf(samples, 'gateway_stream_store_bytes'), 0);
  t.equal(valueOf(samples, 'gateway_stream_store_streams'), 0);
});
