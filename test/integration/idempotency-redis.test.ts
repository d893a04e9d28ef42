import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { cuttingProxy } from '../helpers/cutting-proxy.js';
import { postEventStream } from '../helpers/fetch-event-source.js';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { REDIS_URL, redisCall, redisReachable } from '../helpers/redis.js';
import { openStream, parseSse, post } from '../helpers/sse.js';

/** Idempotency-Key records shared through Redis: a retry may land on any replica. */

if (!(await redisReachable())) {
  t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the cross-replica Idempotency-Key tests need one (CI starts it)`);
  t.plan(0, `no Redis at ${REDIS_URL}`);
} else {
  const pair = async (t: Test, mockOpts: Record<string, number> = {}) => {
    const { mock, baseUrl } = await startMock({ tokensPerSecond: 100, firstTokenDelayMs: 0, ...mockOpts });
    const redisNamespace = `test-${randomBytes(6).toString('hex')}:`;
    const cfg = { ...viaUpstream(baseUrl), redisUrl: REDIS_URL, streamResumeGraceMs: 5000 };
    const a = await startGateway(cfg, { redisNamespace });
    const b = await startGateway(cfg, { redisNamespace });
    t.teardown(async () => {
      await a.close();
      await b.close();
      await mock.close();
    });
    return { a, b, mock, redisNamespace };
  };
  const key = (k: string) => ({ 'idempotency-key': k });

  t.test('a retry on replica B attaches to the stream the first POST started on A', async (t) => {
    const { a, b, mock, redisNamespace } = await pair(t);
    const body = chatBody('[mock:tokens=40]', { stream: true });
    const first = await openStream(`${a.url}/v1/chat/completions`, body, key('k-move'));
    await first.until((h) => h.events.length >= 5);
    const got = first.events;
    first.destroy();
    const retry = await openStream(`${b.url}/v1/chat/completions`, body, { ...key('k-move'), 'last-event-id': got.at(-1)!.id! });
    t.equal(retry.res.statusCode, 200);
    t.equal(retry.res.headers['x-stream-id'], first.res.headers['x-stream-id'], 'the first POST\'s X-Stream-Id');
    const rest = parseSse(await retry.done()).events;
    const ids = [...got, ...rest].filter((e) => e.id).map((e) => Number(e.id));
    t.same(ids, ids.map((_, i) => i + 1), 'ids 1..n: nothing lost, nothing repeated');
    t.equal(rest.at(-1)!.data, '[DONE]');
    t.equal(mock.requests.length, 1, 'one upstream request for both replicas');

    // The record: under the gateway's namespace, expiring with the stream's retention.
    const records = (await redisCall(REDIS_URL, 'KEYS', `${redisNamespace}idem:*`)) as string[];
    t.equal(records.length, 1);
    const ttl = Number(await redisCall(REDIS_URL, 'PTTL', records[0]!));
    t.ok(ttl > 0 && ttl <= a.config.maxDurationMs + a.config.limits.streamTtlMs, `expires (PTTL ${ttl} ms)`);
  });

  t.test('concurrent duplicates on both replicas: one upstream request', async (t) => {
    const { a, b, mock } = await pair(t, { firstTokenDelayMs: 200, tokensPerSecond: 500 });
    const body = chatBody('[mock:tokens=10]', { stream: true });
    const handles = await Promise.all([a, b, a, b].map((gw) => openStream(`${gw.url}/v1/chat/completions`, body, key('k-both'))));
    const texts = await Promise.all(handles.map((h) => h.done()));
    t.same(handles.map((h) => h.res.statusCode), [200, 200, 200, 200]);
    t.equal(new Set(handles.map((h) => h.res.headers['x-stream-id'])).size, 1);
    t.ok(texts.every((x) => x === texts[0]), 'the same bytes from either replica');
    t.equal(mock.requests.length, 1);

    const launched = await Promise.all([a, b].map((gw) => post(`${gw.url}/v1/streams`, chatBody('[mock:tokens=3]'), key('k-both-2'))));
    t.same(launched.map((r) => r.status), [201, 201]);
    t.equal(launched[0]!.body, launched[1]!.body, 'the same 201 {id, url} from both');
    const other = await post(`${b.url}/v1/streams`, chatBody('another [mock:tokens=3]'), key('k-both-2'));
    t.equal(other.status, 409, 'another body on the other replica');
  });

  t.test('fetch-event-source cut on A, its retry routed to B: every event once', async (t) => {
    const { a, b, mock } = await pair(t);
    // The first connection goes to A and is cut; the library's retry lands on B, as a load balancer may send it.
    const balancer = await cuttingProxy((n) => (n === 0 ? a.url : b.url), { connection: 0, afterEvents: 6 });
    t.teardown(() => balancer.close());
    const s = await postEventStream(`${balancer.url}/v1/chat/completions`, chatBody('[mock:tokens=40]', { stream: true }), key('k-fes'));
    t.equal(s.opens.length, 2, 'cut once, retried once');
    t.equal(s.opens[1]!.streamId, s.opens[0]!.streamId, 'B answered with the stream A started');
    const ids = s.messages.filter((m) => m.id).map((m) => Number(m.id));
    t.same(ids, ids.map((_, i) => i + 1), 'every event once');
    t.equal(s.messages.at(-1)?.data, '[DONE]');
    t.equal(mock.requests.length, 1);
  });
}
