import { randomBytes } from 'node:crypto';
import { REDIS_URL, redisReachable } from '../helpers/redis.js';
import t, { type Test } from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { getStream, openStream, parseSse, post, serialize } from '../helpers/sse.js';
import { send } from '../helpers/http.js';


if (!(await redisReachable())) {
  t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the cross-replica tests need one (CI starts it)`);
  t.plan(0, `no Redis at ${REDIS_URL}`);
} else {
  /** Two replicas sharing one Redis, as two processes would; a fresh namespace per run. */
  const pair = async (t: Test, extra: Record<string, unknown> = {}) => {
    const { mock, baseUrl } = await startMock({ tokensPerSecond: 60, firstTokenDelayMs: 0 });
    const redisNamespace = `test-${randomBytes(6).toString('hex')}:`;
    const cfg = { ...viaUpstream(baseUrl), redisUrl: REDIS_URL, ...extra };
    const a = await startGateway(cfg, { redisNamespace });
    const b = await startGateway(cfg, { redisNamespace });
    t.teardown(async () => {
      await a.close();
      await b.close();
      await mock.close();
    });
    return { a, b, mock };
  };

  t.test('a reader moves from replica A to replica B mid-stream: no gap, no duplicate', async (t) => {
    const { a, b } = await pair(t);
    const res = await post(`${a.url}/v1/streams`, chatBody('[mock:tokens=40]'));
    t.equal(res.status, 201);
    const { url } = JSON.parse(res.body) as { url: string };
    const whole = await getStream(a.url + url);
    const first = await getStream(a.url + url);
    await first.until((h) => h.events.filter((e) => e.id).length >= 8);
    const seen = first.events.filter((e) => e.id);
    first.destroy();
    const rest = await getStream(b.url + url, { 'last-event-id': seen.at(-1)!.id! });
    t.equal(rest.res.statusCode, 200, 'replica B serves a stream generated on A');
    await rest.done();
    await whole.done();
    t.equal(serialize([...seen, ...rest.events]), serialize(whole.events));
    t.equal(whole.events.at(-1)!.event, 'done');
  });

  t.test('the generation keeps running while its only reader is on the other replica', async (t) => {
    const { a, b, mock } = await pair(t, { streamResumeGraceMs: 200 });
    const res = await post(`${a.url}/v1/streams`, chatBody('[mock:tokens=60]'));
    const { url } = JSON.parse(res.body) as { url: string };
    const text = await (await getStream(b.url + url)).done();
    t.equal(parseSse(text).events.at(-1)!.event, 'done', 'read to the end on B');
    t.equal(mock.aborted, 0, 'A did not abort for lack of a (local) reader');
  });

  t.test('a chat stream from A resumes on B by its X-Stream-Id; DELETE on B aborts the upstream on A', async (t) => {
    const { a, b, mock } = await pair(t, { chatResumeGraceMs: 5000 });
    const s = await openStream(`${a.url}/v1/chat/completions`, chatBody('[mock:tokens=400]', { stream: true }));
    await s.until((h) => h.events.length >= 3);
    const id = s.res.headers['x-stream-id'] as string;
    const seen = s.events;
    s.destroy();
    const r = await getStream(`${b.url}/v1/streams/${id}`, { 'last-event-id': seen.at(-1)!.id! });
    await r.until((h) => h.events.filter((e) => e.id).length >= 2);
    const more = r.events.filter((e) => e.id);
    t.equal(Number(more[0]!.id), Number(seen.at(-1)!.id) + 1, 'continues right after the last id seen');
    const del = (await send(`${b.url}/v1/streams/${id}`, { method: 'DELETE' })).status;
    t.equal(del, 204);
    await mock.waitForAborts(1);
    const last = parseSse(await r.done()).events.at(-1)!;
    t.equal(JSON.parse(last.data).error.type, 'deleted');
  });

  t.test('the request rate limit is one window across both replicas', async (t) => {
    const { a, b } = await pair(t, { rateLimit: { max: 4, windowMs: 60_000 }, gatewayApiKeys: [`k-${randomBytes(4).toString('hex')}`] });
    const key = a.config.gatewayApiKeys[0]!;
    const statuses: number[] = [];
    for (const gw of [a, b, a, b, a, b]) {
      const res = await gw.app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Bearer ${key}` } });
      statuses.push(res.statusCode);
    }
    t.same(statuses, [200, 200, 200, 200, 429, 429]);
  });

  t.test('unknown ids are 404 on every replica', async (t) => {
    const { b } = await pair(t);
    const r = await getStream(`${b.url}/v1/streams/str_${'A'.repeat(22)}`);
    t.equal(r.res.statusCode, 404);
    await r.done();
  });
}
