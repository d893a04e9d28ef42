import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { chatBody, startGateway, startMock, viaUpstream, type RunningGateway } from '../helpers/gateway.js';
import { REDIS_URL, redisCall, redisGet, redisReachable } from '../helpers/redis.js';
import { send } from '../helpers/http.js';
import { within } from '../helpers/cluster.js';
import { answerText, getStream, post, type SseEvent, type StreamHandle } from '../helpers/sse.js';
import { planCompletion } from '../../src/upstream/mock/model.js';

/**
 * A replica dies (SIGKILL: no drain, no end event, its lease just stops being
 * renewed) while it runs a resumable stream. Replica A is the real server as
 * a child process; replica B is in this process, on the same Redis.
 */

const SERVER = new URL('../../dist/server.js', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;
const LEASE_MS = 300;
// The server process uses the default namespace; B must share it.
const NAMESPACE = 'sse-gw:';

if (!(await redisReachable())) {
  t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the replica-death tests need one (CI starts it)`);
  t.plan(0, `no Redis at ${REDIS_URL}`);
} else {
  /** Replica A: `node dist/server.js` with the built-in mock, on a free port. */
  async function replicaA(t: Test): Promise<{ url: string; child: ChildProcess }> {
    const child = spawn(process.execPath, [SERVER], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: '0', REDIS_URL, STREAM_LEASE_MS: String(LEASE_MS), LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    for await (const line of createInterface({ input: child.stdout! })) {
      const entry = JSON.parse(line) as { address?: string };
      if (entry.address) {
        child.stdout!.resume();
        return { url: entry.address, child };
      }
    }
    throw new Error('replica A exited before listening');
  }

  async function replicaB(t: Test, extra: Parameters<typeof startGateway>[0] = {}): Promise<RunningGateway> {
    const b = await startGateway({ redisUrl: REDIS_URL, streamLeaseMs: LEASE_MS, ...extra }, { redisNamespace: NAMESPACE });
    t.teardown(() => b.close());
    return b;
  }

  const kill = async (child: ChildProcess) => {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };

  const prompt = (label: string) => `${label} ${Date.now()} [mock:tokens=40] [mock:tps=25] [mock:first-token-ms=0]`;
  /** What the mock answers to this prompt, uninterrupted (it is deterministic). */
  const expected = (label: string) => planCompletion(chatBody(label) as never, { tokensPerSecond: 25, firstTokenDelayMs: 0 }).content;
  const ids = (events: SseEvent[]) => events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
  /** A reader's condition: at least `n` events with an id. */
  const idEvents = (n: number) => (h: StreamHandle) => h.events.filter((e) => e.id).length >= n;

  /** A stream created on A and read on B; A is SIGKILLed once B has read `after` events. */
  async function readOnBThenKillA(t: Test, a: { url: string; child: ChildProcess }, b: RunningGateway, text: string, after: number) {
    const created = await post(`${a.url}/v1/streams`, chatBody(text));
    t.equal(created.status, 201);
    const { url } = JSON.parse(created.body) as { url: string };
    const s = await getStream(b.url + url);
    await within(10_000, 'first events via B', s.until(idEvents(after)));
    await kill(a.child);
    return { s, url };
  }

  t.test('a reader on B: A is killed mid-stream, B takes the generation over and the reader never notices', async (t) => {
    const b = await replicaB(t);
    const a = await replicaA(t);
    const text = prompt('reader-on-b');
    const { s } = await readOnBThenKillA(t, a, b, text, 8);
    await within(15_000, 'the rest of the stream', s.done());

    const events = s.events.filter((e) => e.id !== undefined);
    const n = events.length;
    t.same(ids(events), Array.from({ length: n }, (_, i) => i + 1), `ids 1..${n}: no gap, no duplicate`);
    t.equal(events.at(-1)!.event, 'done', 'the stream finished');
    t.equal(JSON.parse(events.at(-1)!.data).finish_reason, 'stop');
    t.equal(answerText(events), expected(text), 'the text is the whole answer, once');
    t.ok(b.logs.lines.some((l) => l.msg === 'stream taken over'), 'B says it took the stream over');
  });

  t.test('a reader on A: its connection dies with A, it reconnects to B with Last-Event-ID and gets the rest', async (t) => {
    const b = await replicaB(t);
    const a = await replicaA(t);
    const text = prompt('reader-on-a');
    const created = await post(`${a.url}/v1/streams`, chatBody(text));
    const { url } = JSON.parse(created.body) as { url: string };
    const first = await getStream(a.url + url);
    await within(10_000, 'first events via A', first.until(idEvents(6)));
    await kill(a.child);
    await within(5_000, 'the connection to A ends', first.done().catch(() => ''));
    const before = first.events.filter((e) => e.id !== undefined);
    t.notOk(before.some((e) => e.event === 'done'), 'A died before the end');

    let rest: StreamHandle = await getStream(b.url + url, { 'last-event-id': before.at(-1)!.id! });
    t.equal(rest.res.statusCode, 200, 'B serves the stream');
    await within(15_000, 'the rest via B', rest.done());
    const all = [...before, ...rest.events.filter((e) => e.id !== undefined)];
    t.same(ids(all), Array.from({ length: all.length }, (_, i) => i + 1), 'ids continue with no gap and no duplicate');
    t.equal(all.at(-1)!.event, 'done');
    t.equal(answerText(all), expected(text), 'the text is the whole answer, once');

    // Everyone else now reads the finished stream from B too, from the start.
    rest = await getStream(b.url + url);
    await rest.done();
    t.equal(answerText(rest.events), expected(text), 'a later reader gets the same answer');
  });

  t.test('drain past its deadline hands a resumable stream over instead of ending it', async (t) => {
    // Both replicas in this process, on a namespace of their own.
    const redisNamespace = `test-${Date.now().toString(36)}-${process.pid}:`;
    const cfg = { redisUrl: REDIS_URL, streamLeaseMs: LEASE_MS, mock: { tokensPerSecond: 25, firstTokenDelayMs: 0 } };
    const a = await startGateway(cfg, { redisNamespace });
    const b = await startGateway(cfg, { redisNamespace });
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    const text = prompt('drained');
    const created = await post(`${a.url}/v1/streams`, chatBody(text));
    const { url } = JSON.parse(created.body) as { url: string };
    const onA = await getStream(a.url + url);
    const onB = await getStream(b.url + url);
    await within(10_000, 'first events', Promise.all([onA, onB].map((s) => s.until(idEvents(6)))));
    t.equal(await a.drain(50), 1, 'the stream outlived the drain deadline');
    await within(5_000, 'A lets its reader go', onA.done());
    const before = onA.events.filter((e) => e.id !== undefined);
    t.notOk(before.some((e) => e.event !== undefined), 'no final event: the reader is told to reconnect, not that the stream ended');
    t.match(onA.text, /: this replica is stopping; reconnect to resume\n\n$/);

    const rest = await getStream(b.url + url, { 'last-event-id': before.at(-1)!.id! });
    await within(15_000, 'the rest via B', Promise.all([rest.done(), onB.done()]));
    const all = [...before, ...rest.events.filter((e) => e.id !== undefined)];
    t.same(ids(all), Array.from({ length: all.length }, (_, i) => i + 1), 'the reconnected reader: no gap, no duplicate');
    t.equal(answerText(all), expected(text));
    const seenOnB = onB.events.filter((e) => e.id !== undefined);
    t.same(ids(seenOnB), ids(all), 'the reader on B never noticed');
    t.equal(seenOnB.at(-1)!.event, 'done');
  });

  t.test('a lease that vanished (Redis lost it) is taken back by its holder: the stream goes on', async (t) => {
    const redisNamespace = `test-${Date.now().toString(36)}-${process.pid}-v:`;
    const a = await startGateway({ redisUrl: REDIS_URL, streamLeaseMs: LEASE_MS, mock: { tokensPerSecond: 25, firstTokenDelayMs: 0 } }, { redisNamespace });
    t.teardown(() => a.close());
    const text = prompt('vanished');
    const created = await post(`${a.url}/v1/streams`, chatBody(text));
    const { id, url } = JSON.parse(created.body) as { id: string; url: string };
    const lease = `${redisNamespace}lease:${id}`;
    const holder = await redisGet(REDIS_URL, lease);
    t.ok(holder, 'the generating replica holds a lease');
    const s = await getStream(a.url + url);
    await within(10_000, 'first events', s.until(idEvents(5)));
    t.equal(await redisCall(REDIS_URL, 'DEL', lease), 1, 'the lease is deleted behind the replica’s back');
    await within(10_000, 'more events', s.until(idEvents(10)));
    t.equal(await redisGet(REDIS_URL, lease), holder, 'the holder took it back (its next append or renewal)');
    await within(15_000, 'the end', s.done());
    const events = s.events.filter((e) => e.id !== undefined);
    t.equal(events.at(-1)!.event, 'done', 'the stream was not handed over: it finished here');
    t.equal(answerText(events), expected(text));
  });

  t.test('DELETE while no replica runs the stream: a later takeover ends it as deleted instead of resuming it', async (t) => {
    const b = await replicaB(t);
    const a = await replicaA(t);
    const { s, url } = await readOnBThenKillA(t, a, b, prompt('deleted-while-orphaned'), 5);
    const del = (await send(`${b.url}${url}`, { method: 'DELETE' })).status;
    t.equal(del, 204);
    await within(15_000, 'the end of the stream', s.done());
    const last = s.events.filter((e) => e.id !== undefined).at(-1)!;
    t.equal(last.event, 'error');
    t.equal(JSON.parse(last.data).error.type, 'deleted');
    t.notOk(b.logs.lines.some((l) => l.msg === 'stream taken over'), 'no generation was started for it');
  });

  t.test('an upstream that cannot continue: the stream ends with a generation_lost error, not silence', async (t) => {
    // B reaches the mock over HTTP as a plain OpenAI-compatible upstream (continuation: none).
    const { mock, baseUrl } = await startMock({ tokensPerSecond: 25, firstTokenDelayMs: 0 });
    t.teardown(() => mock.close());
    const b = await replicaB(t, viaUpstream(baseUrl));
    const a = await replicaA(t);
    const { s } = await readOnBThenKillA(t, a, b, prompt('no-continuation'), 5);
    await within(15_000, 'the end of the stream', s.done());
    const events = s.events.filter((e) => e.id !== undefined);
    t.same(ids(events), Array.from({ length: events.length }, (_, i) => i + 1), 'no gap before the end');
    const last = events.at(-1)!;
    t.equal(last.event, 'error');
    t.equal(JSON.parse(last.data).error.type, 'generation_lost');
    t.equal(mock.requests.length, 0, 'nothing was sent to an upstream that would start a different answer');
  });
}
