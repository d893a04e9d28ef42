import { once } from 'node:events';
import { request } from 'node:http';
import t from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { openStream } from '../helpers/sse.js';
import { waitUntil } from '../helpers/http.js';

/** Disconnects are asserted at the upstream: the mock records every request the gateway hung up on. */
t.test('a client that leaves mid-stream aborts the upstream request', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 50, firstTokenDelayMs: 0 });
  const gw = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('long [mock:tokens=5000]', { stream: true }));
  await s.until((h) => h.events.length >= 3);
  const streamId = s.res.headers['x-stream-id'];
  s.destroy();
  await mock.waitForAborts(1);
  t.equal(mock.requests[0]!.outcome, 'aborted');
  t.ok(mock.requests[0]!.chunksSent < 5000, 'the upstream stopped early');
  const line = await gw.logs.waitForRequest((l) => l.stream_id === streamId);
  t.equal(line.outcome, 'client_aborted');
  t.ok((line.chunks as number) >= 3);
});

t.test('20 parallel aborts → 20 upstream aborts, and every slot comes back', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 20, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), maxConcurrentStreams: 50, rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const streams = await Promise.all(
    Array.from({ length: 20 }, (_, i) => openStream(`${gw.url}/v1/chat/completions`, chatBody(`n${i} [mock:tokens=5000]`, { stream: true }))),
  );
  await Promise.all(streams.map((s) => s.until((h) => h.events.length >= 2)));
  t.equal(gw.slots.total, 20);
  for (const s of streams) s.destroy();
  await mock.waitForAborts(20);
  t.equal(mock.aborted, 20);
  await gw.logs.waitForRequest(() => gw.logs.requests().filter((l) => l.outcome === 'client_aborted').length === 20);
  // Slots are released when each generation has wound down; wait for the last one.
  await waitUntil(() => gw.slots.total === 0, 'every slot released');
  t.equal(gw.slots.total, 0);
});

t.test('the built-in mock is aborted too (no upstream configured)', async (t) => {
  const gw = await startGateway({ mock: { tokensPerSecond: 100, firstTokenDelayMs: 0 } });
  t.teardown(() => gw.close());
  const s = await openStream(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=100000]', { stream: true }));
  await s.until((h) => h.events.length >= 2);
  const id = s.res.headers['x-stream-id'] as string;
  s.destroy();
  const line = await gw.logs.waitForRequest((l) => l.stream_id === id);
  t.equal(line.outcome, 'client_aborted');
  const log = gw.store.get(id)!;
  await waitUntil(() => log.end !== null, 'the stream log to end');
  t.same(log.end, { kind: 'error', type: 'client_disconnected', message: 'the client disconnected; the generation was stopped' });
});

t.test('a client that leaves before the first token aborts the upstream too', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const req = request(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.end(JSON.stringify(chatBody('[mock:hang]', { stream: true })));
  await once(mock, 'request');
  req.destroy();
  await mock.waitForAborts(1);
  const line = await gw.logs.waitForRequest((l) => l.url === '/v1/chat/completions');
  t.equal(line.outcome, 'client_aborted');
});
