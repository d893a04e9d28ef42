import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import { chatBody } from '../helpers/gateway.js';
import { clusterSkipReason, get, processOf, readLog, sleep, startCluster, within, type Cluster, type Replica } from '../helpers/cluster.js';
import { answerText, getStream, openStream, post, serialize, type SseEvent, type StreamHandle } from '../helpers/sse.js';
import { waitUntil } from '../helpers/http.js';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { redisGet } from '../helpers/redis.js';

/**
 * The compose topology as local processes (scripts/cluster-lib.mjs, what `npm run cluster`
 * runs): mock upstream, Redis, two replicas of dist/server.js sharing REDIS_URL, nginx in
 * front. Everything below goes through nginx, as a client would.
 */

const skip = await clusterSkipReason();
if (skip) {
  t.comment(`SKIPPED: ${skip} — the cluster tests need both (CI installs them)`);
  t.plan(0, skip);
} else {
  const key = () => `k-${randomBytes(8).toString('hex')}`;
  const auth = (k: string) => ({ authorization: `Bearer ${k}` });
  const fast = (text: string, tokens: number) => `${text} [mock:tokens=${tokens}] [mock:tps=0] [mock:first-token-ms=0]`;

  /** Starts a cluster for one group of tests; stopped (everything killed) when the group ends, pass or fail. */
  async function cluster(t: Test, env: Record<string, string>): Promise<Cluster> {
    const started = Date.now();
    // Each part gets 10 s to come up; on a failure startCluster stops what it had started.
    const c = await startCluster({ port: 0, env, keepDir: true, readyTimeoutMs: 10_000 });
    t.teardown(async () => {
      const s0 = Date.now();
      await c.stop();
      t.comment(`cluster stopped in ${Date.now() - s0} ms`);
      if (t.passing()) rmSync(c.dir, { recursive: true, force: true });
      else t.comment(`cluster logs kept in ${c.dir}`);
    });
    t.ok(c.nginx, 'nginx is in front');
    t.comment(`cluster up in ${Date.now() - started} ms: nginx ${c.entry}, replicas ${c.replicas.map((r) => r.url).join(' ')}, redis ${c.redis.url}`);
    return c;
  }

  /** The x-request-id prefix of a replica's current process (asked directly, outside /v1: no limit counted). */
  async function prefixOf(r: Replica): Promise<string> {
    return processOf(await get(`${r.url}/healthz`));
  }

  t.test('limits are shared by the replicas behind nginx', async (t) => {
    const kRate = key();
    const kBudget = key();
    const c = await cluster(t, {
      GATEWAY_API_KEYS: `${kRate},${kBudget}`,
      RATE_LIMIT_MAX: '4',
      RATE_LIMIT_WINDOW_MS: '60000',
      TOKENS_PER_MINUTE: '60',
    });
    const replicaOf = new Map(await Promise.all(c.replicas.map(async (r) => [await prefixOf(r), r.name] as const)));

    t.test('the request rate limit is one window across both replicas', async (t) => {
      const statuses: number[] = [];
      const servedBy: string[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await get(`${c.entry}/v1/models`, auth(kRate));
        statuses.push(res.status);
        servedBy.push(replicaOf.get(processOf(res)) ?? `unknown ${processOf(res)}`);
        if (res.status === 429) t.ok(Number(res.headers['retry-after']) >= 1, 'a 429 says when to retry');
      }
      t.same(statuses, [200, 200, 200, 200, 429, 429], '4 allowed, then refused');
      t.same(new Set(servedBy), new Set(['gateway-1', 'gateway-2']), `both replicas answered (${servedBy.join(', ')})`);
      t.same(new Set(servedBy.slice(4)), new Set(['gateway-1', 'gateway-2']), 'both replicas refused');
    });

    t.test('the token budget is one budget across both replicas', async (t) => {
      // The budget counts per wall-clock minute: keep the three requests inside one.
      const left = 60_000 - (Date.now() % 60_000);
      if (left < 5_000) await sleep(left + 200);
      const servedBy: string[] = [];
      const ask = async (n: number) => {
        const res = await within(10_000, `request ${n}`, post(`${c.entry}/v1/chat/completions`, chatBody(fast(`n${n}`, 35)), auth(kBudget)));
        servedBy.push(replicaOf.get(processOf(res)) ?? 'unknown');
        return res;
      };
      // ~40 tokens each (prompt + 35 completion) against 60 per minute: the second spends the minute.
      t.equal((await ask(1)).status, 200);
      t.equal((await ask(2)).status, 200);
      // A non-streamed answer leaves only after its tokens are counted in Redis: no wait needed.
      const third = await ask(3);
      t.equal(third.status, 429, 'the third request is refused');
      t.equal(JSON.parse(third.body).error?.code, 'token_budget_exceeded');
      const fourth = await ask(4);
      t.equal(fourth.status, 429, 'and the next one, on the other replica');
      t.equal(JSON.parse(fourth.body).error?.code, 'token_budget_exceeded');
      t.same(new Set(servedBy.slice(0, 2)), new Set(['gateway-1', 'gateway-2']), `the two allowed ran on different replicas (${servedBy.join(', ')})`);
      t.same(new Set(servedBy.slice(2)), new Set(['gateway-1', 'gateway-2']), 'both replicas refused');
    });
  });

  t.test('streams across replicas and restarts', async (t) => {
    const k = key();
    const c = await cluster(t, {
      GATEWAY_API_KEYS: k,
      RATE_LIMIT_MAX: '100000',
      MAX_CONCURRENT_STREAMS: '1000',
      DRAIN_TIMEOUT_MS: '10000',
      STREAM_LEASE_MS: '1000',
    });

    t.test('a resumable stream read in pieces through nginx equals one uninterrupted read', async (t) => {
      const created = await post(`${c.entry}/v1/streams`, chatBody('[mock:tokens=40] [mock:tps=20] [mock:first-token-ms=0]'), auth(k));
      t.equal(created.status, 201);
      const { url } = JSON.parse(created.body) as { url: string };
      const whole = await getStream(c.entry + url);
      t.equal(whole.res.statusCode, 200);

      const seen: SseEvent[] = [];
      const readers = new Set<string>();
      let last: string | undefined;
      let hops = 0;
      for (; hops < 30; hops++) {
        const s = await getStream(c.entry + url, last ? { 'last-event-id': last } : {});
        if (s.res.statusCode === 204) break; // the previous piece ended right on the final event
        t.equal(s.res.statusCode, 200, `piece ${hops} is served`);
        readers.add(processOf(s.res));
        // A few events per connection, then hang up; the final piece reads to the end.
        await within(10_000, `piece ${hops}`, s.until((h) => h.events.filter((e) => e.id).length >= 4 || h.ended));
        s.destroy();
        const got = s.events.filter((e) => e.id !== undefined);
        seen.push(...got);
        if (got.length) last = got.at(-1)!.id;
        if (got.some((e) => e.event === 'done' || e.event === 'error')) break;
      }
      await within(10_000, 'the uninterrupted read', whole.done());
      t.equal(whole.events.at(-1)?.event, 'done', 'the generation finished');
      t.equal(serialize(seen), serialize(whole.events), `${hops + 1} pieces joined: nothing lost, nothing repeated`);
      t.equal(readers.size, 2, 'the pieces were served by both replicas');
    });

    t.test('SIGKILL of the replica running a resumable stream: the other replica finishes it, with no gap', async (t) => {
      const text = `survivor ${Date.now()} [mock:tokens=50] [mock:tps=20] [mock:first-token-ms=0]`;
      const created = await post(`${c.entry}/v1/streams`, chatBody(text), auth(k));
      t.equal(created.status, 201);
      const { id, url } = JSON.parse(created.body) as { id: string; url: string };
      // The lease names the process running the generation (its x-request-id prefix).
      const holder = await redisGet(c.redis.url, `sse-gw:lease:${id}`);
      const byPrefix = new Map(await Promise.all(c.replicas.map(async (r) => [await prefixOf(r), r] as const)));
      const victim = byPrefix.get(holder ?? '');
      if (!victim) throw new Error(`no replica holds the lease of ${id} (lease: ${holder})`);
      const survivor = c.replicas.find((r) => r !== victim)!;

      // One reader on each replica (round robin decides; ask until it has placed both), both through nginx.
      const first = new Map<string, StreamHandle>();
      for (let i = 0; i < 6 && first.size < 2; i++) {
        const s = await getStream(c.entry + url);
        t.equal(s.res.statusCode, 200);
        const on = processOf(s.res);
        if (first.has(on)) s.destroy();
        else first.set(on, s);
      }
      const onVictim = first.get(holder!);
      const onSurvivor = first.get(await prefixOf(survivor));
      if (!onVictim || !onSurvivor) throw new Error('nginx did not spread 6 connections over both replicas');
      await within(10_000, 'first events', Promise.all([onVictim, onSurvivor].map((s) => s.until((h) => h.events.filter((e) => e.id).length >= 10))));
      victim.kill('SIGKILL');
      t.same(await victim.waitExit(5000), { code: null, signal: 'SIGKILL' }, `${victim.name} was killed mid-stream`);

      /** Reads to the end, reconnecting through nginx with Last-Event-ID whenever the connection drops (as EventSource does). */
      const follow = async (s: StreamHandle) => {
        const seen: SseEvent[] = [];
        let connections = 1;
        for (;;) {
          await within(20_000, `connection ${connections}`, s.done());
          const got = s.events.filter((e) => e.id !== undefined);
          seen.push(...got);
          if (got.some((e) => e.event === 'done' || e.event === 'error') || connections >= 10) break;
          s = await getStream(c.entry + url, { 'last-event-id': seen.at(-1)!.id! });
          connections++;
          if (s.res.statusCode === 204) break;
          t.equal(s.res.statusCode, 200, 'the reconnect is served');
          t.equal(processOf(s.res), await prefixOf(survivor), `the reconnect lands on ${survivor.name}`);
        }
        return { seen, connections };
      };
      const expected = planCompletion(chatBody(text) as never, { tokensPerSecond: 20, firstTokenDelayMs: 0 }).content;
      for (const [where, reader] of [
        [`on ${victim.name} (killed)`, onVictim],
        [`on ${survivor.name}`, onSurvivor],
      ] as const) {
        const { seen, connections } = await follow(reader);
        const ids = seen.map((e) => Number(e.id));
        t.same(ids, Array.from({ length: ids.length }, (_, i) => i + 1), `reader ${where}: ids 1..${ids.length}, no gap, no duplicate (${connections} connection(s))`);
        t.equal(seen.at(-1)?.event, 'done', `reader ${where}: the stream finished normally`);
        t.equal(answerText(seen), expected, `reader ${where}: the whole answer, once`);
        if (reader === onVictim) t.ok(connections >= 2, 'the reader on the killed replica had to reconnect');
        else t.equal(connections, 1, 'the reader on the other replica never lost its connection');
      }
      t.ok(readLog(survivor.logFile).includes('stream taken over'), `${survivor.name} took the generation over`);
      await within(20_000, `${victim.name} back`, victim.start());
    });

    t.test('rolling restart: streams in flight finish, new requests keep succeeding', async (t) => {
      // New requests all along the restarts, one after another through nginx.
      const probes: { status: number; during: string }[] = [];
      let phase = 'before';
      let probing = true;
      const prober = (async () => {
        for (let n = 0; probing; n++) {
          const res = await within(10_000, `probe ${n}`, post(`${c.entry}/v1/chat/completions`, chatBody(fast(`p${n}`, 2)), auth(k))).then(
            (r) => r.status,
            () => -1,
          );
          probes.push({ status: res, during: phase });
          await sleep(25);
        }
      })();

      const before = await c.mock.stats();
      let streams = 0;
      for (const replica of c.replicas) {
        const prefix = await prefixOf(replica);
        const batch: StreamHandle[] = await within(
          10_000,
          'opening 20 streams',
          Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              openStream(`${c.entry}/v1/chat/completions`, chatBody(`s${streams + i} [mock:tokens=30] [mock:tps=20] [mock:first-token-ms=0]`, { stream: true }), auth(k)),
            ),
          ),
        );
        streams += batch.length;
        t.same(batch.map((s) => s.res.statusCode), Array(20).fill(200), 'all 20 streams start');
        await within(10_000, 'first events', Promise.all(batch.map((s) => s.until((h) => h.events.length >= 1))));
        const onIt = batch.filter((s) => processOf(s.res) === prefix).length;
        t.ok(onIt >= 5, `${onIt} of the 20 streams are on ${replica.name}, which is restarted now`);

        phase = `${replica.name} draining`;
        const t0 = Date.now();
        replica.kill('SIGTERM');
        const exit = await replica.waitExit(15_000);
        t.same(exit, { code: 0, signal: null }, `${replica.name} drained and exited 0 (${Date.now() - t0} ms after SIGTERM)`, {
          log: exit.code === 0 ? undefined : readLog(replica.logFile).split('\n').filter((l) => !l.includes('"msg":"request"')).slice(-8),
        });
        phase = `${replica.name} down`;
        // Probes while the replica is gone: nginx meets connection refused and must go to the other one.
        await waitUntil(() => probes.filter((p) => p.during === phase).length >= 2, `probes while ${replica.name} is down`, 10_000);
        phase = `${replica.name} starting`;
        await within(20_000, `${replica.name} restart`, replica.start());
        phase = `${replica.name} back`;
        t.not(await prefixOf(replica), prefix, `${replica.name} is a new process on the same port`);

        await within(10_000, 'streams of the batch', Promise.all(batch.map((s) => s.done())));
        // Complete events only (s.events): a stream cut mid-event fails here rather than in the parser.
        const ends = batch.map((s) => s.events.at(-1)?.data);
        t.equal(ends.filter((d) => d === '[DONE]').length, 20, `all 20 streams of the ${replica.name} batch ended with [DONE]`);
        const bad = batch.find((s) => s.events.at(-1)?.data !== '[DONE]' || s.events.some((e) => e.data.includes('"error"')));
        if (bad) t.fail('a stream was cut or failed', { tail: bad.text.slice(-400) });
        await waitUntil(() => probes.filter((p) => p.during === phase).length >= 3, `probes against the restarted pair`, 10_000);
      }
      probing = false;
      await within(15_000, 'the prober', prober);

      const failed = probes.filter((p) => p.status !== 200);
      const phases = [...new Set(probes.map((p) => p.during))];
      t.same(failed, [], `all ${probes.length} new requests during the restarts succeeded`);
      for (const name of ['gateway-1', 'gateway-2']) {
        t.ok(probes.some((p) => p.during === `${name} draining`), `some requests were sent while ${name} was draining`);
      }
      t.comment(`probes per phase: ${phases.map((ph) => `${ph}: ${probes.filter((p) => p.during === ph).length}`).join(', ')}`);
      const after = await c.mock.stats();
      t.equal(after.aborted - before.aborted, 0, 'no upstream generation was aborted');
      t.equal(after.failed - before.failed, 0, 'no upstream generation failed');
      t.equal(streams, 40);
      // nginx retried on the other replica where one was draining or down; worth seeing in the log.
      const retried = readLog(c.nginx!.accessLog)
        .split('\n')
        .filter((l) => /upstream=\S+, /.test(l)).length;
      t.comment(`nginx passed ${retried} requests on to the other replica`);
    });
  });
}
