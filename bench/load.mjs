// Load generator for the benchmark (its own process, spawned per scenario by run.js).
//
//   node bench/load.mjs '<json options>'
//
// Talks node:http with a keep-alive Agent (never fetch), counts SSE events as
// `\n\n`-terminated blocks containing `data: {`, and prints ONE JSON line with
// the results on stdout. Every loop is bounded in count and in time.
//
// Modes (options.mode):
//   ttft        sequential requests at concurrency 1: TTFT percentiles
//   throughput  `concurrency` workers looping requests for `duration_ms`: data events/s,
//               plus CPU (utime+stime) of `cpu_pids` over the measured window; `chunks`
//               per stream, `gap_ms` between them (0 unless given). With `api` (chat,
//               responses, messages: the request in that API's shape, see APIS), also the
//               text deltas/s (the upstream's chunks that reached the client as text) and bytes/s.
//               With `fill` ({metrics_url, bytes, streams}): the window ends early once the relay's
//               /metrics shows its stream store holding that many bytes or streams (a warm-up)
//   slow        `streams` slow streams opened within `open_ms`: completions, TTFT,
//               inter-chunk gaps, and RSS of `rss_pids` idle vs. while all are open
//   abort       sequential streams, socket destroyed after `abort_after` events; the
//               upstream's /stats tells when it saw each close
//   probe       one short stream (3 chunks): its status and whether it came whole
//   sustained   `answers` streams of `chunks` events with no gap, `concurrency` at a time,
//               from a fresh relay: RSS of `rss_pids` every `sample_ms` from before the first
//               request, at each quarter of the answers, and after `settle_ms` idle at the end
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const opts = JSON.parse(process.argv[2] ?? '{}');
const target = new URL(opts.url);
const HARD_LIMIT_MS = opts.hard_limit_ms ?? 120_000;
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Never hang: whatever happens, this process ends.
setTimeout(() => {
  process.stderr.write(`load: hard time limit ${HARD_LIMIT_MS} ms reached\n`);
  process.exit(3);
}, HARD_LIMIT_MS).unref();

// ---------------------------------------------------------------- stats helpers
function pct(sorted, q) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}
function summary(values) {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  const r = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
  return {
    n: s.length,
    p50: r(pct(s, 0.5)),
    p90: r(pct(s, 0.9)),
    p99: r(pct(s, 0.99)),
    max: r(s.length ? s[s.length - 1] : null),
    min: r(s.length ? s[0] : null),
    mean: r(s.length ? sum / s.length : null),
  };
}

const errors = new Map();
let errorCount = 0;
function recordError(msg) {
  errorCount++;
  if (errors.size < 50 || errors.has(msg)) errors.set(msg, (errors.get(msg) ?? 0) + 1);
}
const errorReport = () => ({ count: errorCount, kinds: Object.fromEntries(errors) });

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

// ---------------------------------------------------------------- /proc sampling
const CLK_TCK = opts.clk_tck ?? 100;
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids ?? []) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      /* gone */
    }
  }
  return ticks / CLK_TCK;
}
function rssKb(pids) {
  let kb = 0;
  for (const pid of pids ?? []) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      /* gone */
    }
  }
  return kb;
}

// ---------------------------------------------------------------- the APIs a stream is asked in
/** True when the SSE block buf[start, end) is the named event (`id: n\nevent: <type>\ndata: …`). */
function namedEvent(type) {
  const needle = 'event: ' + type + '\n';
  return (buf, start, end) => {
    const i = buf.indexOf('event: ', start);
    return i !== -1 && i < end && buf.startsWith(needle, i);
  };
}
const CHAT_TEXT = '"delta":{"content":"';
/** A chat chunk with text in it: the gateway relays the upstream's JSON as it came. */
function chatTextDelta(buf, start, end) {
  const i = buf.indexOf(CHAT_TEXT, start);
  return i !== -1 && i < end && buf.charCodeAt(i + CHAT_TEXT.length) !== 34 /* " : empty */;
}
/** The options for the fake upstream in the user's text, where every API's translation carries them. */
const benchText = (bench) => 'benchmark bench:' + JSON.stringify(bench);
/**
 * Each API's request body; how its text deltas and its last event look on the wire (null: `data: [DONE]`
 * ends it, and deltas are not told apart). Of the fake upstream's N chunks, N − 2 carry text: the first
 * carries only the role, the last only finish_reason.
 */
const APIS = {
  // Scenarios A–E: chat completions, the options in the body's `bench` field.
  'chat-bench': {
    body: (bench) => ({ model: 'bench-model', messages: [{ role: 'user', content: 'benchmark' }], stream: true, bench }),
    delta: null,
    end: null,
  },
  chat: {
    body: (bench) => ({ model: 'bench-model', messages: [{ role: 'user', content: benchText(bench) }], stream: true }),
    delta: chatTextDelta,
    end: null,
  },
  responses: {
    body: (bench) => ({ model: 'bench-model', input: benchText(bench), stream: true }),
    delta: namedEvent('response.output_text.delta'),
    end: namedEvent('response.completed'),
  },
  messages: {
    body: (bench) => ({ model: 'bench-model', max_tokens: 1024, messages: [{ role: 'user', content: benchText(bench) }], stream: true }),
    delta: namedEvent('content_block_delta'),
    end: namedEvent('message_stop'),
  },
};
const API = APIS[opts.api ?? 'chat-bench'];
if (!API) {
  process.stderr.write(`load: unknown api ${opts.api}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- one streaming request
/**
 * Sends one streaming request in API's shape. Callbacks: onEvent(text, tNow) per data event,
 * onDelta() per text delta (APIs that tell them apart), onBytes(n) per read.
 * Resolves {ok, events, deltas, bytes, done, status, error} when the response ends, fails or is destroyed.
 */
function streamRequest(agent, bench, { onEvent, onDelta, onBytes, timeoutMs = 30_000, onRequest } = {}) {
  const body = JSON.stringify(API.body(bench));
  return new Promise((resolve) => {
    let settled = false;
    let events = 0;
    let deltas = 0;
    let bytes = 0;
    let done = false;
    let status = 0;
    const finish = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) recordError(error);
      resolve({ ok: !error && done, events, deltas, bytes, done, status, error: error ?? null });
    };
    const req = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), accept: 'text/event-stream' },
      },
      (res) => {
        status = res.statusCode;
        if (status !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => (text.length < 300 ? (text += c) : null));
          res.on('end', () => finish(`HTTP ${status}: ${text.slice(0, 200).replace(/\s+/g, ' ')}`));
          res.on('error', (e) => finish(`HTTP ${status}, then ${e.code ?? e.message}`));
          return;
        }
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (c) => {
          const t = performance.now();
          bytes += c.length; // the bench's streams are ASCII: characters are bytes
          if (onBytes) onBytes(c.length);
          buf = buf.length ? buf + c : c;
          let start = 0;
          let end;
          while ((end = buf.indexOf('\n\n', start)) !== -1) {
            const d = buf.indexOf('data: {', start);
            if (d !== -1 && d < end) {
              events++;
              if (API.delta !== null && API.delta(buf, start, end)) {
                deltas++;
                if (onDelta) onDelta();
              } else if (API.end !== null && API.end(buf, start, end)) done = true;
              if (onEvent) onEvent(buf, start, end, t, req);
            } else if (buf.startsWith('data: [DONE]', start)) done = true;
            start = end + 2;
            if (settled) return;
          }
          buf = start === 0 ? buf : buf.slice(start);
        });
        res.on('end', () => finish(done ? null : `stream ended without ${API.end ? 'its last event' : '[DONE]'} after ${events} events`));
        res.on('aborted', () => finish(settled ? null : `response aborted after ${events} events`));
        res.on('error', (e) => finish(`response error after ${events} events: ${e.code ?? e.message}`));
      },
    );
    req.on('error', (e) => finish(settled ? null : `request error: ${e.code ?? e.message}`));
    const timer = setTimeout(() => {
      finish(`timeout after ${timeoutMs} ms with ${events} events`);
      req.destroy();
    }, timeoutMs);
    req.benchSettle = () => finish(null); // an intentional destroy is not an error
    if (onRequest) onRequest(req);
    req.end(body);
  });
}

// ---------------------------------------------------------------- modes
async function modeTtft() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const bench = { chunks: opts.chunks ?? 5, gap_ms: 0 };
  const ttft = [];
  let completed = 0;
  const deadline = performance.now() + (opts.time_limit_ms ?? 60_000);
  const total = (opts.warmup ?? 50) + (opts.requests ?? 300);
  for (let i = 0; i < total && performance.now() < deadline; i++) {
    const t0 = performance.now();
    let first = -1;
    const r = await streamRequest(agent, bench, {
      timeoutMs: 10_000,
      onEvent: (_b, _s, _e, t) => {
        if (first < 0) first = t;
      },
    });
    if (i < (opts.warmup ?? 50)) continue;
    if (r.ok && r.events === bench.chunks) {
      completed++;
      ttft.push(first - t0);
    } else if (r.ok) recordError(`expected ${bench.chunks} events, got ${r.events}`);
  }
  agent.destroy();
  return { mode: 'ttft', completed, ttft_ms: summary(ttft), errors: errorReport() };
}

async function modeThroughput() {
  const c = opts.concurrency ?? 64;
  const agent = new http.Agent({ keepAlive: true, maxSockets: c + 8 });
  const bench = { chunks: opts.chunks ?? 100, gap_ms: opts.gap_ms ?? 0 };
  // Complete: every chunk as an event (chat-bench), or every text chunk as a text delta (the APIs).
  const textChunks = bench.chunks - 2;
  let events = 0;
  let deltas = 0;
  let bytes = 0;
  let completed = 0;
  let stopped = false;
  const inflight = new Set();
  const worker = async () => {
    for (let k = 0; k < 1_000_000 && !stopped; k++) {
      let handle = null;
      const r = await streamRequest(agent, bench, {
        timeoutMs: 30_000,
        onEvent: () => events++,
        onDelta: () => deltas++,
        onBytes: (n) => (bytes += n),
        onRequest: (req) => inflight.add((handle = req)),
      });
      inflight.delete(handle);
      if (stopped) break;
      if (r.ok) {
        if (API.delta === null ? r.events === bench.chunks : r.deltas === textChunks) completed++;
        else if (API.delta === null) recordError(`expected ${bench.chunks} events, got ${r.events}`);
        else recordError(`expected ${textChunks} text deltas, got ${r.deltas}`);
      } else await sleep(5); // do not spin on a failing target
    }
  };
  const workers = Array.from({ length: c }, () => worker());
  await sleep(opts.warmup_ms ?? 1000);
  const e0 = events;
  const d0 = deltas;
  const b0 = bytes;
  const c0 = completed;
  const cpu0 = cpuSeconds(opts.cpu_pids);
  const up0 = cpuSeconds(opts.upstream_pids);
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const mono0 = monotonicUs();
  const store = opts.fill ? await untilStoreFull(opts.fill, t0 + (opts.duration_ms ?? 8000)) : (await sleep(opts.duration_ms ?? 8000), null);
  const t1 = performance.now();
  const mono1 = monotonicUs();
  const e1 = events;
  const d1 = deltas;
  const b1 = bytes;
  const c1 = completed;
  const cpu1 = cpuSeconds(opts.cpu_pids);
  const up1 = cpuSeconds(opts.upstream_pids);
  const self1 = process.cpuUsage(self0);
  stopped = true;
  const errorsInWindow = errorCount;
  for (const req of inflight) {
    req.benchSettle();
    req.destroy();
  }
  await Promise.race([Promise.all(workers), sleep(3000)]);
  agent.destroy();
  const seconds = (t1 - t0) / 1000;
  const cpu = cpu1 - cpu0;
  const withDeltas =
    API.delta === null
      ? {}
      : {
          api: opts.api,
          deltas: d1 - d0,
          deltas_per_s: Math.round((d1 - d0) / seconds),
          bytes_per_s: Math.round((b1 - b0) / seconds),
          relay_cpu_us_per_delta: opts.cpu_pids?.length && d1 > d0 ? Math.round((cpu * 1e7) / (d1 - d0)) / 10 : null,
        };
  return {
    mode: 'throughput',
    ...withDeltas,
    ...(store ? { store } : {}),
    window_s: Math.round(seconds * 1000) / 1000,
    // On the clock of V8's CPU profiles (CLOCK_MONOTONIC): bench/prof-summary.mjs --window cuts a profile to it.
    window_mono_us: [mono0, mono1],
    events: e1 - e0,
    events_per_s: Math.round((e1 - e0) / seconds),
    requests_completed: c1 - c0,
    relay_cpu_s: opts.cpu_pids?.length ? Math.round(cpu * 100) / 100 : null,
    events_per_cpu_s: opts.cpu_pids?.length && cpu > 0 ? Math.round((e1 - e0) / cpu) : null,
    upstream_cpu_s: Math.round((up1 - up0) * 100) / 100,
    loadgen_cpu_s: Math.round(((self1.user + self1.system) / 1e6) * 100) / 100,
    errors: { ...errorReport(), count_in_window: errorsInWindow },
  };
}

/** Polls the relay's stream store gauges every 250 ms until either bound is reached or `until` (performance.now()). */
async function untilStoreFull({ metrics_url, bytes, streams }, until) {
  const gauge = (text, name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  let last = { bytes: null, streams: null, full: false };
  for (let k = 0; k < 10_000 && performance.now() < until; k++) {
    await sleep(Math.min(250, Math.max(0, until - performance.now())));
    try {
      const text = await getText(metrics_url);
      last = { bytes: gauge(text, 'gateway_stream_store_bytes'), streams: gauge(text, 'gateway_stream_store_streams'), full: false };
    } catch (e) {
      recordError(`metrics: ${e.message}`);
      continue;
    }
    if (last.bytes >= bytes || last.streams >= streams) return { ...last, full: true };
  }
  return last;
}

async function modeSlow() {
  const n = opts.streams ?? 2000;
  const chunks = opts.chunks ?? 10;
  const gap = opts.gap_ms ?? 500;
  const openMs = opts.open_ms ?? 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: n + 100 });

  // Warm-up: every process's hot paths optimised before the burst, connection set-up too: the burst
  // opens a new connection per stream (and a relay one upstream), so each warm-up request does, 64 at a time.
  const warm = opts.warmup ?? 100;
  const fresh = new http.Agent({ keepAlive: false });
  const LANES = 64;
  await Promise.all(
    Array.from({ length: LANES }, async (_, lane) => {
      for (let i = lane; i < warm; i += LANES) await streamRequest(fresh, { chunks: 5, gap_ms: 0 }, { timeoutMs: 10_000 });
    }),
  );
  // A rehearsal of the burst, smaller: 500 streams at once make a relay open hundreds of upstream
  // connections, so that path is warm as well (a gateway that has seen traffic has been there before).
  await Promise.all(Array.from({ length: 500 }, () => streamRequest(fresh, { chunks: 3, gap_ms: 100 }, { timeoutMs: 10_000 })));
  const warmErrors = errorCount;
  await sleep(opts.settle_ms ?? 1000);
  const idleRss = rssKb(opts.rss_pids);

  const ttft = [];
  const gapAdded = []; // client gap - gap_ms (the brief's definition)
  const gapAddedExact = []; // client gap - the upstream's actual gap between its two writes
  const latency = []; // client receive wall time - upstream write wall time
  let firstSeen = 0;
  let finishedOrFailed = 0;
  let completed = 0;
  let allOpenAt = null;
  let cpuAtAllOpen = null;
  let anyEndedBeforeAllOpen = false;
  let peakRss = 0; // max while all streams are open
  let maxRss = idleRss; // max over the whole scenario
  const STAMP = /"bench_t":([0-9.]+)/;

  const sampler = setInterval(() => {
    const kb = rssKb(opts.rss_pids);
    if (kb > maxRss) maxRss = kb;
    if (allOpenAt !== null && finishedOrFailed === 0 && kb > peakRss) peakRss = kb;
  }, 100);

  const one = async (i) => {
    const t0 = performance.now();
    let prevT = -1;
    let prevStamp = -1;
    let gotFirst = false;
    const r = await streamRequest(
      agent,
      { chunks, gap_ms: gap, stamp: true },
      {
        timeoutMs: chunks * gap + 30_000,
        onEvent: (buf, s, e, t) => {
          const m = STAMP.exec(buf.slice(s, e));
          const stamp = m ? Number(m[1]) : NaN;
          if (m) latency.push(performance.timeOrigin + t - stamp);
          if (!gotFirst) {
            gotFirst = true;
            ttft.push(t - t0);
            firstSeen++;
            if (firstSeen + finishedOrFailed === n && allOpenAt === null) {
              allOpenAt = performance.now();
              cpuAtAllOpen = cpuSeconds(opts.cpu_pids);
              if (finishedOrFailed > 0) anyEndedBeforeAllOpen = true;
              const kb = rssKb(opts.rss_pids);
              peakRss = Math.max(peakRss, kb);
              maxRss = Math.max(maxRss, kb);
            }
          } else {
            gapAdded.push(t - prevT - gap);
            if (m && prevStamp > 0) gapAddedExact.push(t - prevT - (stamp - prevStamp));
          }
          prevT = t;
          prevStamp = stamp;
        },
      },
    );
    if (!gotFirst) {
      finishedOrFailed++;
      if (firstSeen + finishedOrFailed === n && allOpenAt === null) {
        allOpenAt = performance.now();
        cpuAtAllOpen = cpuSeconds(opts.cpu_pids);
        anyEndedBeforeAllOpen = true;
      }
    } else finishedOrFailed++;
    if (r.ok && r.events === chunks) completed++;
    else if (r.ok) recordError(`expected ${chunks} events, got ${r.events}`);
    void i;
  };

  const started = [];
  const cpuAtOpen = cpuSeconds(opts.cpu_pids);
  const tOpen = performance.now();
  await new Promise((resolve) => {
    let opened = 0;
    const tick = () => {
      const due = Math.min(n, Math.floor(((performance.now() - tOpen) / openMs) * n) + 1);
      while (opened < due) started.push(one(opened++));
      if (opened < n) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const openedInMs = performance.now() - tOpen;
  await Promise.race([Promise.all(started), sleep(chunks * gap + openMs + 30_000)]);
  clearInterval(sampler);
  agent.destroy();
  return {
    mode: 'slow',
    streams: n,
    opened_in_ms: Math.round(openedInMs),
    completed,
    all_open_after_ms: allOpenAt === null ? null : Math.round(allOpenAt - tOpen),
    some_ended_before_all_open: anyEndedBeforeAllOpen,
    relay_cpu_s_while_opening: opts.cpu_pids?.length && cpuAtAllOpen !== null ? Math.round((cpuAtAllOpen - cpuAtOpen) * 100) / 100 : null,
    ttft_ms: summary(ttft),
    added_gap_ms: summary(gapAdded),
    added_gap_vs_upstream_ms: summary(gapAddedExact),
    chunk_latency_ms: summary(latency),
    rss_idle_kb: opts.rss_pids?.length ? idleRss : null,
    rss_all_open_kb: opts.rss_pids?.length ? peakRss : null,
    rss_max_kb: opts.rss_pids?.length ? maxRss : null,
    kb_per_stream: opts.rss_pids?.length && peakRss > 0 ? Math.round(((peakRss - idleRss) / n) * 100) / 100 : null,
    warmup_errors: warmErrors,
    errors: errorReport(),
  };
}

async function modeAbort() {
  const n = opts.streams ?? 50;
  const after = opts.abort_after ?? 3;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const destroyed = []; // {id, t}
  const deadline = performance.now() + (opts.time_limit_ms ?? 30_000);
  for (let i = 0; i < n && performance.now() < deadline; i++) {
    const id = `${opts.id_prefix ?? 'abort'}-${i}`;
    const r = await streamRequest(
      agent,
      { chunks: opts.chunks ?? 1000, gap_ms: opts.gap_ms ?? 20, id },
      {
        timeoutMs: 10_000,
        onEvent: (_b, _s, _e, _t, req) => {
          // (events counted before this call: the current one is included)
          if (++counts[id] === after) {
            destroyed.push({ id, t: wall() });
            req.benchSettle();
            req.destroy();
          }
        },
        onRequest: () => (counts[id] = 0),
      },
    );
    if (counts[id] < after) recordError(`stream ${id} ended after ${counts[id]} events, before the abort point (${r.error ?? 'no error'})`);
    await sleep(opts.pause_ms ?? 50);
  }
  agent.destroy();
  // Ask the upstream when it saw each close; give late closes up to 2 s.
  const ids = new Set(destroyed.map((d) => d.id));
  let seen = {};
  for (let k = 0; k < 20; k++) {
    seen = (await getJson(new URL('/stats', opts.stats_url))).aborts ?? {};
    if ([...ids].every((id) => id in seen)) break;
    await sleep(100);
  }
  const delays = [];
  for (const d of destroyed) if (d.id in seen) delays.push(seen[d.id] - d.t);
  return {
    mode: 'abort',
    streams: n,
    client_destroyed: destroyed.length,
    upstream_saw_aborted: delays.length,
    propagation_ms: summary(delays),
    errors: errorReport(),
  };
}
const counts = Object.create(null);

function getText(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5000 }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (t += c));
      res.on('end', () => resolve(t));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

async function getJson(url) {
  return JSON.parse(await getText(url));
}

/** Least-squares slope of y over x; null with fewer than 3 points or no spread in x. */
function slope(points) {
  if (points.length < 3) return null;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / points.length;
  const my = sy / points.length;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) * (x - mx);
  }
  return den === 0 ? null : num / den;
}

async function modeSustained() {
  const n = opts.answers ?? 3000;
  const c = opts.concurrency ?? 16;
  const chunks = opts.chunks ?? 2000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: c + 4 });
  const bench = { chunks, gap_ms: 0 };
  const samples = []; // [ms since start, answers done, RSS kB]
  const quarterAt = [1, 2, 3].map((q) => Math.round((q * n) / 4)); // also sampled exactly there
  let done = 0;
  let completed = 0;
  let started = 0;
  const t0 = performance.now();
  const sample = () => {
    const kb = rssKb(opts.rss_pids);
    samples.push([Math.round(performance.now() - t0), done, kb]);
    return kb;
  };
  sample();
  const sampler = setInterval(sample, opts.sample_ms ?? 500);
  const deadline = t0 + (opts.time_limit_ms ?? 60_000);
  const cpu0 = cpuSeconds(opts.cpu_pids);
  const worker = async () => {
    while (started < n && performance.now() < deadline) {
      started++;
      const r = await streamRequest(agent, bench, { timeoutMs: 30_000 });
      done++;
      if (quarterAt.includes(done)) sample();
      if (r.ok) {
        if (r.events === chunks) completed++;
        else recordError(`expected ${chunks} events, got ${r.events}`);
      } else await sleep(5); // do not spin on a failing target
    }
  };
  await Promise.all(Array.from({ length: c }, () => worker()));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(opts.cpu_pids) - cpu0;
  clearInterval(sampler);
  agent.destroy();
  const endRss = sample();
  await sleep(opts.settle_ms ?? 2000);
  const idleAfter = rssKb(opts.rss_pids);
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, s[2]);
  // Quarters of the answers actually done (fewer than `n` when the time limit cut the run short).
  const at = (q) => samples.find((s) => s[1] >= q * done)?.[2] ?? null;
  const quarters = [at(0.25), at(0.5), at(0.75), endRss];
  // The last quarter's growth per answer, fitted over every sample taken in it.
  const lastQuarter = samples.filter((s) => s[1] >= 0.75 * done).map((s) => [s[1], s[2]]);
  const kbPerAnswer = slope(lastQuarter);
  const r2 = (x) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    mode: 'sustained',
    answers: n,
    chunks,
    concurrency: c,
    done,
    completed,
    time_limit_ms: opts.time_limit_ms ?? 60_000,
    seconds: r2(seconds),
    answers_per_s: r2(done / seconds),
    relay_cpu_s: opts.cpu_pids?.length ? r2(cpu) : null,
    relay_cpu_ms_per_answer: opts.cpu_pids?.length && done ? r2((cpu * 1000) / done) : null,
    rss_start_kb: samples[0][2],
    rss_quarters_kb: quarters,
    rss_end_kb: endRss,
    rss_peak_kb: peak,
    rss_idle_after_kb: idleAfter,
    settle_ms: opts.settle_ms ?? 2000,
    last_half_growth_kb: quarters[1] === null ? null : endRss - quarters[1],
    last_quarter_kb_per_answer: r2(kbPerAnswer),
    samples,
    errors: errorReport(),
  };
}

async function modeProbe() {
  const agent = new http.Agent({ keepAlive: false });
  const r = await streamRequest(agent, { chunks: 3, gap_ms: 0 }, { timeoutMs: 5000 });
  return { mode: 'probe', status: r.status, ok: r.ok, events: r.events, deltas: r.deltas, error: r.error };
}

const modes = { probe: modeProbe, ttft: modeTtft, throughput: modeThroughput, slow: modeSlow, abort: modeAbort, sustained: modeSustained };
const run = modes[opts.mode];
if (!run) {
  process.stderr.write(`load: unknown mode ${opts.mode}\n`);
  process.exit(2);
}
try {
  const result = await run();
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
} catch (e) {
  process.stderr.write(`load: ${e?.stack ?? e}\n`);
  process.exit(1);
}
