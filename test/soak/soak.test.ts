import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chatBody, startMock } from '../helpers/gateway.js';
import { send, waitUntil } from '../helpers/http.js';
import { parseExposition, valueOf } from '../helpers/metrics.js';
import { getStream, openStream, parseSse, post, type SseEvent } from '../helpers/sse.js';
import { spacedUpstream } from '../helpers/spaced-upstream.js';

/**
 * ONE gateway process (the built server, as `npm start` runs it) under mixed
 * traffic for a while: what a fresh gateway per test cannot show. State that
 * leaks from one request into the next (a breaker, a map), memory that grows
 * with every request served, streams that end without notice.
 */

const SERVER = new URL('../../dist/server.js', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;
const TRAFFIC_MS = 12_000;
const CLIENTS = 16;
const STORE_MAX_BYTES = 8 * 1024 * 1024;
const DEADLINE_MS = 1500;

/** The address the server logs once it listens; the rest of its output is drained unread. */
async function listening(child: ChildProcess): Promise<string> {
  for await (const line of createInterface({ input: child.stdout! })) {
    const entry = JSON.parse(line) as { address?: string };
    if (entry.address) {
      child.stdout!.resume();
      return entry.address;
    }
  }
  throw new Error('the server exited before listening');
}

function rssBytes(child: ChildProcess): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

type Kind = 'stream' | 'long' | 'fail' | 'hang' | 'abort' | 'resume' | 'delete' | 'json' | 'spaced' | 'mid_fail';
const KINDS: readonly Kind[] = ['stream', 'long', 'fail', 'stream', 'hang', 'abort', 'resume', 'delete', 'json', 'spaced', 'mid_fail', 'long', 'spaced', 'resume'];
/** The kinds whose upstream is healthy: every one of these must succeed. */
const HEALTHY: ReadonlySet<Kind> = new Set(['stream', 'long', 'resume', 'json', 'spaced']);

const isDone = (events: SseEvent[]) => events.at(-1)?.data === '[DONE]';
const isErrorEvent = (events: SseEvent[]) => {
  const last = events.at(-1);
  return last !== undefined && last.data !== undefined && last.data.startsWith('{"error"');
};

t.test('soak: one gateway process, mixed traffic, nothing leaks', async (t) => {
  const { mock, baseUrl } = await startMock();
  const spaced = await spacedUpstream(baseUrl);
  t.teardown(async () => {
    await spaced.close();
    await mock.close();
  });
  const configFile = join(tmpdir(), `soak-${process.pid}.json`);
  writeFileSync(
    configFile,
    JSON.stringify({
      upstreams: { main: { baseUrl }, py: { baseUrl: spaced.baseUrl } },
      models: { 'mock-1': { upstream: 'main', model: 'mock-1' }, 'spaced-1': { upstream: 'py', model: 'mock-1' } },
    }),
  );
  const child = spawn(process.execPath, [SERVER], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      CONFIG_FILE: configFile,
      LOG_LEVEL: 'info',
      UPSTREAM_TIMEOUT_MS: String(DEADLINE_MS),
      STREAM_STORE_MAX_BYTES: String(STORE_MAX_BYTES),
      STREAM_RESUME_GRACE_MS: '2000',
      RATE_LIMIT_MAX: '1000000',
      MAX_CONCURRENT_STREAMS: '10000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const url = await listening(child);

  const failures: string[] = [];
  const counts = new Map<Kind, number>();
  const fail = (kind: Kind, why: string): void => {
    failures.push(`${kind}: ${why}`);
  };
  let circuitOpen = 0;

  async function one(kind: Kind, n: number): Promise<void> {
    const tag = `soak ${n}`;
    switch (kind) {
      case 'stream':
      case 'long':
      case 'spaced': {
        const tokens = kind === 'long' ? 2000 : 20;
        const model = kind === 'spaced' ? 'spaced-1' : 'mock-1';
        const res = await post(`${url}/v1/chat/completions`, { ...chatBody(`${tag} [mock:tokens=${tokens}]`, { stream: true }), model });
        const events = parseSse(res.body).events;
        if (res.status !== 200 || !isDone(events)) return fail(kind, `${res.status} ${res.body.slice(-200)}`);
        if (events.some((e) => e.data !== '[DONE]' && (JSON.parse(e.data!) as { choices: unknown[] }).choices.length === 0)) fail(kind, 'a usage chunk nobody asked for');
        return;
      }
      case 'json': {
        const res = await post(`${url}/v1/chat/completions`, chatBody(`${tag} [mock:tokens=30]`));
        if (res.status !== 200 || (JSON.parse(res.body) as { object: string }).object !== 'chat.completion') fail(kind, `${res.status} ${res.body}`);
        return;
      }
      case 'fail':
      case 'hang': {
        const directive = kind === 'fail' ? '[mock:fail-before=500]' : '[mock:hang]';
        const res = await post(`${url}/v1/chat/completions`, chatBody(`${tag} ${directive}`, { stream: n % 2 === 0 }));
        const want = kind === 'fail' ? 502 : 504;
        if (/circuit open/.test(res.body)) circuitOpen++;
        if (res.status !== want) fail(kind, `${res.status} ${res.body}`);
        return;
      }
      case 'mid_fail': {
        const res = await post(`${url}/v1/chat/completions`, chatBody(`${tag} [mock:tokens=20] [mock:fail-after=3]`, { stream: true }));
        if (res.status !== 200 || !isErrorEvent(parseSse(res.body).events)) fail(kind, `${res.status} ${res.body.slice(-200)}`);
        return;
      }
      case 'abort': {
        const h = await openStream(`${url}/v1/chat/completions`, chatBody(`${tag} [mock:tokens=400] [mock:tps=400]`, { stream: true }));
        await h.until((x) => x.events.length >= 2);
        h.destroy();
        return;
      }
      case 'resume': {
        const created = await post(`${url}/v1/streams`, chatBody(`${tag} [mock:tokens=60] [mock:tps=600]`));
        if (created.status !== 201) return fail(kind, `POST ${created.status} ${created.body}`);
        const { url: path } = JSON.parse(created.body) as { url: string };
        const first = await getStream(`${url}${path}`);
        await first.until((x) => x.events.filter((e) => e.id).length >= 3);
        first.destroy();
        const seen = first.events.filter((e) => e.id && e.event === undefined);
        const lastId = seen.at(-1)!.id!;
        const rest = await getStream(`${url}${path}`, { 'last-event-id': lastId });
        await rest.done();
        const all = [...seen, ...rest.events.filter((e) => e.id)];
        const ids = all.map((e) => Number(e.id));
        if (!ids.every((id, i) => id === i + 1)) fail(kind, `ids not contiguous: ${ids.join(',')}`);
        if (all.at(-1)?.event !== 'done') fail(kind, `ended with ${JSON.stringify(all.at(-1))}`);
        return;
      }
      case 'delete': {
        const created = await post(`${url}/v1/streams`, chatBody(`${tag} [mock:tokens=200] [mock:tps=50]`));
        if (created.status !== 201) return fail(kind, `POST ${created.status}`);
        const { id, url: path } = JSON.parse(created.body) as { id: string; url: string };
        const reader = await getStream(`${url}${path}`);
        await reader.until((x) => x.events.some((e) => e.id));
        const del = await send(`${url}/v1/streams/${id}`, { method: 'DELETE' });
        if (del.status !== 204) fail(kind, `DELETE ${del.status}`);
        await reader.done();
        const last = reader.events.at(-1);
        if (last?.event !== 'error' || !last.data!.includes('deleted')) fail(kind, `after DELETE: ${JSON.stringify(last)}`);
        return;
      }
    }
  }

  // Warm-up, then the idle baseline the bound is measured from.
  for (let i = 0; i < 40; i++) await one(KINDS[i % KINDS.length]!, -i);
  const idleRss = rssBytes(child);
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rssBytes(child)), 500);
  const until = Date.now() + TRAFFIC_MS;
  let n = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_x, c) => {
      for (let i = 0; i < 100_000 && Date.now() < until; i++) {
        const kind = KINDS[(c + i) % KINDS.length]!;
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        await one(kind, ++n).catch((e: Error) => fail(kind, `threw ${e.message}`));
      }
    }),
  );
  clearInterval(sampler);

  t.same(failures.slice(0, 10), [], `every request whose upstream was healthy succeeded, every failure was the upstream's (${n} requests)`);
  t.equal(circuitOpen, 0, 'no "circuit open" answer: the only upstream is never refused for');
  for (const k of HEALTHY) t.ok((counts.get(k) ?? 0) > 10, `${k}: ${counts.get(k)} requests`);

  // Every upstream request ends: answered, or aborted by the gateway.
  await waitUntil(() => mock.requests.every((r) => r.outcome !== 'pending'), 'no upstream request left open', 10_000);
  t.pass(`${mock.requests.length} upstream requests, none left open`);

  const metrics = parseExposition((await send(`${url}/metrics`)).body);
  const storeBytes = valueOf(metrics, 'gateway_stream_store_bytes');
  t.ok(storeBytes <= STORE_MAX_BYTES, `ended streams kept: ${storeBytes} bytes ≤ ${STORE_MAX_BYTES}`);
  t.equal(valueOf(metrics, 'gateway_active_streams'), 0, 'no generation left running');
  const peak = Math.max(...samples);
  const end = rssBytes(child);
  const bound = idleRss + STORE_MAX_BYTES + 160 * 1024 * 1024;
  t.ok(peak <= bound, `RSS peak ${mb(peak)} within idle ${mb(idleRss)} + store ${mb(STORE_MAX_BYTES)} + 160 MB`);
  t.ok(end <= bound, `RSS at the end ${mb(end)}`);
  t.comment(`RSS samples (MB): ${samples.map((s) => Math.round(s / 1048576)).join(' ')}`);
  t.comment(`requests by kind: ${JSON.stringify(Object.fromEntries(counts))}`);

  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0, 'drains and exits cleanly');
  t.notMatch(stderr, /\n\s+at /, 'no stack trace on stderr');
});

const mb = (b: number) => `${Math.round(b / 1048576)} MB`;
