import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { defaultConfig } from '../../src/config.js';
import { FAST_MOCK, chatBody, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { REDIS_URL, redisCall, redisReachable } from '../helpers/redis.js';
import { getStream, parseSse, post, serialize } from '../helpers/sse.js';

if (!(await redisReachable())) {
  t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the cross-replica tests need one (CI starts it)`);
  t.plan(0, `no Redis at ${REDIS_URL}`);
} else {
  /** Two replicas sharing one Redis under a fresh namespace; answers come from A's built-in mock. */
  const pair = async (t: Test, streamStoreMaxBytes: number, extra: Record<string, unknown> = {}) => {
    const ns = `test-${randomBytes(6).toString('hex')}:`;
    const cfg = { mock: FAST_MOCK, redisUrl: REDIS_URL, streamStoreMaxBytes, rateLimit: { max: 10_000, windowMs: 60_000 }, ...extra };
    const a = await startGateway(cfg, { redisNamespace: ns });
    const b = await startGateway(cfg, { redisNamespace: ns });
    t.teardown(async () => {
      await a.close();
      await b.close();
      const keys = (await redisCall(REDIS_URL, 'KEYS', `${ns}*`)) as string[];
      if (keys.length > 0) await redisCall(REDIS_URL, 'DEL', ...keys);
    });
    return { a, b, ns };
  };

  const keysOf = async (pattern: string) => ((await redisCall(REDIS_URL, 'KEYS', pattern)) as string[]).sort();

  /** Polls Redis (bounded) until `pred` holds: a stream's end reaches Redis a moment after its client saw it. */
  const eventually = async <T>(read: () => Promise<T>, pred: (v: T) => boolean, what: string): Promise<T> => {
    let v = await read();
    for (let i = 0; i < 200 && !pred(v); i++) {
      await new Promise((r) => setTimeout(r, 10));
      v = await read();
    }
    if (!pred(v)) throw new Error(`${what}: never held (last ${JSON.stringify(v)})`);
    return v;
  };

  t.test('Redis keeps the ended streams of a replica within STREAM_STORE_MAX_BYTES; a dropped one is 404 on the other replica too', async (t) => {
    const bound = 600_000;
    const { a, b, ns } = await pair(t, bound);
    const served: { id: string; events: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await post(`${a.url}/v1/chat/completions`, chatBody('[mock:tokens=400]', { stream: true }));
      t.equal(res.status, 200);
      served.push({ id: res.headers['x-stream-id'] as string, events: serialize(parseSse(res.body).events.filter((e) => e.id)) });
    }
    const last = served.at(-1)!.id;
    const [totalKey] = await eventually(() => keysOf(`${ns}ended-bytes:*`), (k) => k.length === 1, 'one byte count, for replica A');
    const ended = totalKey!.replace('ended-bytes:', 'ended:');
    const members = await eventually(
      async () => (await redisCall(REDIS_URL, 'ZRANGE', ended, '0', '-1')) as string[],
      (m) => m.at(-1)?.endsWith(' ' + last) === true,
      'the last answer listed as ended',
    );
    const total = Number(await redisCall(REDIS_URL, 'GET', totalKey!));
    const sizes = members.map((m) => Number(m.split(' ')[0]));
    t.ok(total <= bound, `${total} bytes counted, within ${bound}`);
    t.equal(total, sizes.reduce((x, y) => x + y, 0), 'the count is the sum of the listed streams');
    t.ok(members.length >= 2 && members.length < 10, `a handful kept (${members.length})`);
    t.equal(total, a.store.finishedBytes, "the same bytes as A's own store keeps");

    const records = await keysOf(`${ns}log:*`);
    t.same(records, members.map((m) => `${ns}log:${m.split(' ')[1]}`).sort(), 'a record only for each listed stream');
    const metas = await keysOf(`${ns}meta:*`);
    t.equal(metas.length, members.length, 'a meta only for each listed stream');
    t.equal(await redisCall(REDIS_URL, 'HGET', metas[0]!, 'request'), null, 'an ended stream keeps no request');

    for (const old of served.slice(0, 3)) {
      t.equal((await send(`${b.url}/v1/streams/${old.id}`)).status, 404, 'dropped: 404 on B');
      t.equal((await send(`${a.url}/v1/streams/${old.id}`)).status, 404, 'and on A');
    }
    const recent = served.at(-1)!;
    const replay = await getStream(`${b.url}/v1/streams/${recent.id}`);
    t.equal(replay.res.statusCode, 200, 'a recent one replays on B');
    const events = parseSse(await replay.done()).events;
    t.equal(serialize(events.filter((e) => e.id && !e.event)), recent.events, 'whole, byte for byte');
  });

  t.test('STREAM_STORE_MAX_BYTES=0: an ended stream leaves nothing in Redis', async (t) => {
    const { a, b, ns } = await pair(t, 0);
    const res = await post(`${a.url}/v1/chat/completions`, chatBody('[mock:tokens=50]', { stream: true }));
    t.equal(res.status, 200);
    t.match(res.body, /data: \[DONE\]\n\n$/);
    const id = res.headers['x-stream-id'] as string;
    await eventually(() => keysOf(`${ns}*:${id}`), (k) => k.length === 0, 'no key of the stream left');
    t.same(await keysOf(`${ns}ended*`), [], 'nothing listed');
    t.equal((await send(`${b.url}/v1/streams/${id}`)).status, 404);
  });

  t.test('records gone by their TTL stop counting against the bound', async (t) => {
    const { a, ns } = await pair(t, 1_000_000, { limits: { ...defaultConfig().limits, streamTtlMs: 1000 } });
    const first = await post(`${a.url}/v1/chat/completions`, chatBody('[mock:tokens=100]', { stream: true }));
    const firstId = first.headers['x-stream-id'] as string;
    await eventually(() => keysOf(`${ns}log:${firstId}`), (k) => k.length === 1, 'the first record');
    // Redis expires it by its TTL (a second); the count still lists it until the next end.
    await eventually(() => keysOf(`${ns}log:${firstId}`), (k) => k.length === 0, 'the first record expired');
    const second = await post(`${a.url}/v1/chat/completions`, chatBody('[mock:tokens=10]', { stream: true }));
    const secondId = second.headers['x-stream-id'] as string;
    const [totalKey] = await keysOf(`${ns}ended-bytes:*`);
    const members = await eventually(
      async () => (await redisCall(REDIS_URL, 'ZRANGE', totalKey!.replace('ended-bytes:', 'ended:'), '0', '-1')) as string[],
      (m) => m.some((x) => x.endsWith(' ' + secondId)),
      'the second listed',
    );
    t.equal(members.length, 1, 'the expired one is no longer listed');
    t.equal(Number(await redisCall(REDIS_URL, 'GET', totalKey!)), Number(members[0]!.split(' ')[0]), 'nor counted');
  });
}
