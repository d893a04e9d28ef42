// Benchmark orchestrator: `npm run bench` (builds, then runs this file).
//
// Starts the fake upstream (bench/fake-upstream.mjs), then for each scenario
// runs the load generator (bench/load.mjs) against four targets in turn:
//   direct   the client talks to the fake upstream
//   gateway  node dist/server.js in front of it (a fresh process per scenario)
//   floor    bench/bare-relay.mjs in front of it (fresh per scenario): issue 16's targets are
//            ratios to it, so it runs in every run, beside the gateway
//   nginx    nginx as a streaming reverse proxy in front of it (fresh per scenario;
//            skipped with a note when nginx is not installed)
// With BENCH_REDIS=1, B and C also run the gateway with REDIS_URL (issue 16's scale-out targets).
// Scenario E (sustained long answers) runs against the gateway and the floor
// instead: it is about the relay's memory, not the upstream's.
// Scenario F (per-API throughput) runs B's load against one gateway once per client API.
// Prints one table (E and F: one more each), then one verdict line per issue-16 target,
// and writes the full results to /tmp/bench-results.json.
// Everything listens on 127.0.0.1; every child runs in its own process group
// and is killed at the end, on error, on a signal, or at the global deadline.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { findNginx, freePort, httpGet, killGroup } from '../scripts/proc-util.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, '..');
const RESULTS_FILE = process.env.BENCH_RESULTS ?? '/tmp/bench-results.json';
const WORK = join(os.tmpdir(), `sse-bench-${process.pid}`);
/**
 * BENCH_REDIS=1: B and C run the gateway a second time with REDIS_URL. Database 14 by default, so
 * that its keys (rate-limit windows included) never meet a test's or another gateway's on the same Redis.
 */
const REDIS_PASS = process.env.BENCH_REDIS === '1';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
const GLOBAL_DEADLINE_MS = 420_000 + (REDIS_PASS ? 90_000 : 0);
const GATEWAY_LOG_LEVEL = 'info'; // as production runs it: one summary line per request
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tStart = performance.now();
const log = (msg) => process.stderr.write(`[bench ${((performance.now() - tStart) / 1000).toFixed(1)}s] ${msg}\n`);

// ------------------------------------------------------------------ child processes
/** pid -> name of every process group we started. */
const children = new Map();
let cleanedUp = false;


function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const pid of children.keys()) killGroup(pid, 'SIGKILL');
  children.clear();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: killing children`);
    cleanup();
    process.exit(130);
  });
}
const deadline = setTimeout(() => {
  log(`global deadline of ${GLOBAL_DEADLINE_MS / 1000} s reached: killing children`);
  cleanup();
  process.exit(2);
}, GLOBAL_DEADLINE_MS);
deadline.unref();

/** Spawns a child in its own process group (so its own children die with it too). */
function start(name, cmd, args, { env, stdout = 'pipe', stderr = 'pipe', cwd = ROOT } = {}) {
  const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', stdout, stderr] });
  children.set(child.pid, name);
  child.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  child.exited.then(() => children.delete(child.pid));
  child.on('error', (e) => log(`${name}: ${e.message}`));
  return child;
}

async function stop(child, graceMs = 3000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  killGroup(child.pid, 'SIGTERM');
  const r = await Promise.race([child.exited, sleep(graceMs).then(() => null)]);
  if (r === null) {
    killGroup(child.pid, 'SIGKILL');
    await Promise.race([child.exited, sleep(2000)]);
  }
  // Whatever is left in the group (e.g. nginx workers) goes too.
  killGroup(child.pid, 'SIGKILL');
}



function httpPost(url) {
  return new Promise((res, rej) => {
    const req = http.request(url, { method: 'POST', agent: false, timeout: 2000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

async function waitReady(url, child, name, timeoutMs = 15_000, ok = () => true) {
  const until = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < until) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200 && ok(r.body)) return;
      last = `HTTP ${r.status} ${r.body.slice(0, 200)}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`${name} not ready at ${url} after ${timeoutMs} ms (${last})`);
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // No /proc/<pid>/task/<pid>/children: scan /proc for the parent pid.
    const out = [];
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === pid) out.push(Number(d));
      } catch {
        /* gone */
      }
    }
    return out;
  }
}

/** Sum of the processes' peak RSS since they started (VmHWM, KB): a fresh relay per scenario makes it the scenario's peak. */
function peakRssKb(pids) {
  let kb = 0;
  for (const pid of pids) {
    try {
      kb += Number(/^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return kb || null;
}

/** Null when a Redis at `url` answers PING within a second, else why not. */
function redisUnreachable(url) {
  const u = new URL(url);
  return new Promise((res) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port || 6379) });
    const done = (why) => {
      sock.destroy();
      res(why);
    };
    sock.setTimeout(1000, () => done('no answer within 1 s'));
    sock.on('error', (e) => done(e.message));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG') ? null : `PING answered ${JSON.stringify(d.toString().trim().slice(0, 80))}`));
  });
}

function clkTck() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
const CLK_TCK = clkTck();

// ------------------------------------------------------------------ the processes under test
async function startUpstream() {
  const child = start('fake-upstream', process.execPath, [join(BENCH_DIR, 'fake-upstream.mjs')], {
    env: { PATH: process.env.PATH, BENCH_MAX_LIFETIME_MS: String(GLOBAL_DEADLINE_MS + 10_000) },
  });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const port = await new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error(`fake upstream did not start: ${err}`)), 5000);
    child.stdout.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(t);
        res(JSON.parse(out.slice(0, nl)).port);
      }
    });
    child.exited.then(() => rej(new Error(`fake upstream exited: ${err}`)));
  });
  child.stdout.resume();
  return { child, port, base: `http://127.0.0.1:${port}` };
}

async function startGateway(upstream, tag, scriptOverride = null, extraEnv = {}) {
  const port = await freePort();
  const logFile = join(WORK, `gateway-${tag}.log`);
  const fd = openSync(logFile, 'w');
  // A clean environment: nothing from the caller's shell changes what is measured.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? '/tmp',
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    UPSTREAM_BASE_URL: `${upstream.base}/v1`,
    RATE_LIMIT_MAX: '1000000000',
    MAX_CONCURRENT_STREAMS: '1000000',
    LOG_LEVEL: GATEWAY_LOG_LEVEL,
    // HEARTBEAT_MS, CHAT_RESUME_GRACE_MS, UPSTREAM_TIMEOUT_MS: defaults.
    ...extraEnv,
  };
  // BENCH_GATEWAY_ENV: extra variables for experiments, "K=V K=V" (the default run passes none).
  for (const kv of (process.env.BENCH_GATEWAY_ENV ?? '').split(' ').filter(Boolean)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  // BENCH_GATEWAY_NODE_ARGS: extra node flags for experiments (the default run passes none).
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // BENCH_GATEWAY_SCRIPT: another relay in the gateway's place (bench/bare-relay.mjs: the node:http floor).
  const chosen = scriptOverride ?? process.env.BENCH_GATEWAY_SCRIPT;
  const script = chosen ? join(ROOT, chosen) : join(ROOT, 'dist/server.js');
  const child = start(`gateway(${tag})`, process.execPath, [...nodeArgs, script], { env, stdout: fd, stderr: fd });
  closeSync(fd);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(`${base}/readyz`, child, 'gateway');
    await waitReady(`${base}/v1/models`, child, 'gateway', 5000, (b) => b.includes('bench-model'));
  } catch (e) {
    await stop(child);
    throw new Error(`${e.message}\n--- ${logFile} ---\n${tail(logFile)}`);
  }
  // A relay of several processes (bench/cluster-gateway.mjs) counts them all: CPU and RSS are its tree's.
  return { child, base, pids: () => processTree(child.pid), rssPids: () => processTree(child.pid), logFile };
}

/** `pid` and its descendants (Linux /proc); just `pid` where that cannot be read. */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length && out.length < 64; i++) {
    try {
      for (const task of readdirSync(`/proc/${out[i]}/task`)) {
        for (const c of readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) out.push(Number(c));
      }
    } catch {
      // Gone, or no /proc: what was found so far.
    }
  }
  return out;
}

function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const EXPECTED_STARTUP_WARNING = /GATEWAY_API_KEYS is not set/; // the bench runs without auth on purpose

/**
 * Reads a gateway log: warn/error/fatal lines grouped by message, the request
 * outcomes, and the gateway's own ttft_ms for streams of `chunks` events.
 */
function readGatewayLog(file, chunks) {
  const out = { warn: 0, error: 0, fatal: 0, unparsed: 0, messages: {}, request_outcomes: {}, ttft_ms: null };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  const ttft = [];
  const bump = (o, k) => (o[k] = (o[k] ?? 0) + 1);
  for (const line of text.split('\n')) {
    if (!line) continue;
    let j;
    try {
      j = JSON.parse(line);
    } catch {
      out.unparsed++;
      bump(out.messages, line.slice(0, 160));
      continue;
    }
    if (j.msg === 'request' && j.outcome) {
      bump(out.request_outcomes, `${j.status} ${j.outcome}${j.error_code ? ' ' + j.error_code : ''}`);
      if (j.chunks === chunks && typeof j.ttft_ms === 'number') ttft.push(j.ttft_ms);
    }
    if (j.level < 40 || EXPECTED_STARTUP_WARNING.test(j.msg ?? '')) continue;
    const name = j.level >= 60 ? 'fatal' : j.level >= 50 ? 'error' : 'warn';
    out[name]++;
    bump(out.messages, `${name}: ${j.msg}${j.err ? ' — ' + String(j.err.message ?? JSON.stringify(j.err)).slice(0, 160) : ''}`);
  }
  ttft.sort((a, b) => a - b);
  const q = (p) => (ttft.length ? ttft[Math.min(ttft.length - 1, Math.ceil(p * ttft.length) - 1)] : null);
  if (ttft.length) out.ttft_ms = { n: ttft.length, p50: q(0.5), p99: q(0.99), max: ttft[ttft.length - 1] };
  return out;
}


async function startNginx(bin, upstream, tag) {
  const port = await freePort();
  const dir = join(WORK, `nginx-${tag}`);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = `
worker_processes auto;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
daemon off;
events { worker_connections 10000; multi_accept on; }
http {
  access_log ${dir}/logs/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  upstream fake {
    server 127.0.0.1:${upstream.port};
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = start(`nginx(${tag})`, bin, ['-p', dir, '-e', `${dir}/logs/error.log`, '-c', join(dir, 'nginx.conf')], {
    env: { PATH: process.env.PATH },
  });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  child.stdout.resume();
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitReady(`${base}/v1/models`, child, 'nginx', 10_000);
  } catch (e) {
    await stop(child);
    throw new Error(`${e.message}\n${err}\n${tail(join(dir, 'logs/error.log'))}`);
  }
  const workers = () => childPids(child.pid);
  return { child, base, pids: () => [child.pid, ...workers()], rssPids: workers, logFile: join(dir, 'logs/error.log') };
}

// ------------------------------------------------------------------ the load generator
async function runLoad(opts, limitMs) {
  // The shell raises the open-files limit to the hard limit before exec'ing node.
  const args = [join(BENCH_DIR, 'load.mjs'), JSON.stringify({ ...opts, clk_tck: CLK_TCK, hard_limit_ms: limitMs })];
  const cmd = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"`;
  const child = start('load', '/bin/sh', ['-c', cmd, process.execPath, ...args], { env: { PATH: process.env.PATH } });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  const r = await Promise.race([child.exited, sleep(limitMs + 5000).then(() => null)]);
  if (r === null) {
    await stop(child, 500);
    throw new Error(`load generator overran ${limitMs} ms: ${err.slice(-500)}`);
  }
  if (r.code !== 0) throw new Error(`load generator failed (exit ${r.code ?? r.signal}): ${err.slice(-1000)}`);
  const line = out.trim().split('\n').pop();
  return JSON.parse(line);
}

// ------------------------------------------------------------------ scenarios
/** E's size; BENCH_SUSTAINED_ANSWERS / _CONCURRENCY / _LIMIT_MS (per relay) change it for a longer run by hand. */
const SUSTAINED = {
  answers: positiveInt(process.env.BENCH_SUSTAINED_ANSWERS, 3000),
  concurrency: positiveInt(process.env.BENCH_SUSTAINED_CONCURRENCY, 16),
  chunks: 2000,
  timeLimitMs: positiveInt(process.env.BENCH_SUSTAINED_LIMIT_MS, 50_000),
};
/**
 * F: B's load in each client API's shape against one gateway. First chat traffic until the stream
 * store is nearly full (a fresh gateway's first seconds fill it, and a filling store costs more per
 * chunk than a full one: every window then runs in the steady state). Chat completions are then
 * measured first and last, so that the others sit between two chat windows: drift over the run (the
 * machine, the JIT) shows as the gap between those two, and their mean is what the others compare with.
 */
const API_ORDER = ['chat', 'responses', 'messages', 'chat'];
const APIS_FILL_LIMIT_MS = 15_000;
/** What F needs at most (a fill cut short at its limit, four windows, two probes), kept free by E. */
const F_RESERVE_MS = 60_000;
/** The gateway's store bounds (STREAM_STORE_MAX_BYTES unless BENCH_GATEWAY_ENV sets it; limits.maxStreams). */
const STORE_BOUNDS = {
  bytes: Number(/(?:^| )STREAM_STORE_MAX_BYTES=(\d+)/.exec(process.env.BENCH_GATEWAY_ENV ?? '')?.[1] ?? 134_217_728),
  streams: 10_000,
};
const API_PATHS = { chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' };
const API_ROUTE_FILES = { responses: 'src/routes/responses.ts', messages: 'src/routes/messages.ts' };
const APIS_WINDOW_MS = positiveInt(process.env.BENCH_APIS_WINDOW_MS, 5000);
/** Issue 16: the other APIs' chunks/s at least this share of chat completions' in the same run. */
const APIS_TARGET_SHARE = 0.85;

/** Why `api` cannot be measured on this gateway (its route is missing, or it refuses a short stream), or null. */
async function apiNotServed(api, base) {
  const file = API_ROUTE_FILES[api];
  if (file && !existsSync(join(ROOT, file))) return `${file} does not exist`;
  const p = await runLoad({ mode: 'probe', api, url: base + API_PATHS[api] }, 10_000);
  if (p.status === 404) return `POST ${API_PATHS[api]} answered 404`;
  if (p.ok) return null;
  return `POST ${API_PATHS[api]}: ${p.error ?? `HTTP ${p.status}`}`;
}

/** BENCH_ONLY=AC runs a subset (for profiling); the full run is what BENCHMARKS.md quotes. */
function runs(key) {
  const only = process.env.BENCH_ONLY;
  return !only || only.includes(key);
}

function positiveInt(v, def) {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : def;
}

const SCENARIOS = {
  A: {
    title: 'TTFT at concurrency 1',
    streamChunks: 5,
    // Warm-ups long enough for V8 to have optimised every process's hot paths (load generator and
    // upstream too): a gateway in production has served traffic before, and a cold one measures the JIT.
    // The gateway's own TTFT p50 still falls until ~6,000 sequential requests (batches of 1,000 from a
    // fresh process: 1.31, 1.12, 0.99, 0.91, 0.83, 0.79, 0.78, 0.78 ms), so 2,000 measured its JIT.
    run: (t) => runLoad({ mode: 'ttft', url: t.url, warmup: 6000, requests: 300, chunks: 5, time_limit_ms: 40_000 }, 45_000),
  },
  B: {
    title: 'throughput at concurrency 64',
    redisPass: true,
    run: (t) =>
      runLoad(
        {
          mode: 'throughput',
          url: t.url,
          concurrency: 64,
          chunks: 100,
          warmup_ms: 1000,
          duration_ms: 8000,
          cpu_pids: t.relay ? t.relay.pids() : [],
          upstream_pids: [t.upstream.child.pid],
        },
        20_000,
      ),
  },
  C: {
    title: '2,000 concurrent slow streams',
    streamChunks: 10,
    redisPass: true,
    run: (t) =>
      runLoad(
        {
          mode: 'slow',
          url: t.url,
          streams: 2000,
          chunks: 10,
          gap_ms: 500,
          open_ms: 1000,
          warmup: 3000,
          settle_ms: 1000,
          rss_pids: t.relay ? t.relay.rssPids() : [],
          cpu_pids: t.relay ? t.relay.pids() : [],
        },
        50_000,
      ),
  },
  D: {
    title: 'client abort propagation',
    run: async (t) => {
      await httpPost(`${t.upstream.base}/stats/reset`);
      return runLoad(
        {
          mode: 'abort',
          url: t.url,
          stats_url: t.upstream.base,
          id_prefix: `D-${t.name}-${Date.now()}`,
          streams: 50,
          chunks: 1000,
          gap_ms: 20,
          abort_after: 3,
          pause_ms: 50,
          time_limit_ms: 30_000,
        },
        40_000,
      );
    },
  },
  E: {
    title: 'sustained long answers',
    targets: ['gateway', 'floor'],
    streamChunks: SUSTAINED.chunks,
    // From a fresh process and without a warm-up: the RSS it starts at is part of the figure.
    run: (t) => {
      // On a busy machine A–D take longer: E shortens itself rather than meet the global deadline
      // (the gateway runs first and leaves the floor half of what is left), and leaves F its time.
      const left = GLOBAL_DEADLINE_MS - (performance.now() - tStart) - 25_000 - (runs('F') ? F_RESERVE_MS : 0);
      const limitMs = Math.round(Math.max(5000, Math.min(SUSTAINED.timeLimitMs, t.name === 'gateway' ? left / 2 : left)));
      return runLoad(
        {
          mode: 'sustained',
          url: t.url,
          answers: SUSTAINED.answers,
          concurrency: SUSTAINED.concurrency,
          chunks: SUSTAINED.chunks,
          sample_ms: 500,
          settle_ms: 2000,
          time_limit_ms: limitMs,
          rss_pids: t.relay.rssPids(),
          cpu_pids: t.relay.pids(),
        },
        limitMs + 15_000,
      );
    },
  },
  F: {
    title: 'per-API throughput',
    targets: ['gateway'],
    run: async (t) => {
      const out = { fill: null, windows: [], not_served: {}, errors: { count: 0, kinds: {} } };
      const cpuOpts = { concurrency: 64, chunks: 100, cpu_pids: t.relay.pids(), upstream_pids: [t.upstream.child.pid] };
      const fill = await runLoad(
        {
          mode: 'throughput',
          api: 'chat',
          url: t.relay.base + API_PATHS.chat,
          ...cpuOpts,
          warmup_ms: 0,
          duration_ms: APIS_FILL_LIMIT_MS,
          fill: { metrics_url: `${t.relay.base}/metrics`, bytes: 0.9 * STORE_BOUNDS.bytes, streams: 0.9 * STORE_BOUNDS.streams },
        },
        APIS_FILL_LIMIT_MS + 12_000,
      );
      out.fill = { seconds: fill.window_s, store: fill.store, errors: fill.errors.count };
      log(`F: store ${fill.store?.full ? 'filled' : 'NOT filled'} in ${fill.window_s} s (${fmt((fill.store?.bytes ?? 0) / 2 ** 20, 1)} MiB, ${fmt(fill.store?.streams)} streams)`);
      for (const api of API_ORDER) {
        if (api in out.not_served) continue;
        if (api !== 'chat' && !out.windows.some((w) => w.api === api)) {
          const why = await apiNotServed(api, t.relay.base);
          if (why) {
            out.not_served[api] = why;
            log(`F: ${api} not served: ${why}`);
            continue;
          }
        }
        const r = await runLoad(
          { mode: 'throughput', api, url: t.relay.base + API_PATHS[api], ...cpuOpts, warmup_ms: 1000, duration_ms: APIS_WINDOW_MS },
          APIS_WINDOW_MS + 12_000,
        );
        out.windows.push(r);
        out.errors.count += r.errors.count_in_window;
        for (const [k, n] of Object.entries(r.errors.kinds)) out.errors.kinds[`${api}: ${k}`] = n;
      }
      return out;
    },
  },
};

// ------------------------------------------------------------------ table
const fmt = (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? 'n/a' : typeof v === 'number' ? (Number.isInteger(v) && d <= 2 ? v.toLocaleString('en-US') : v.toFixed(d)) : String(v));
const ratio = (a, b) => (a == null || b == null || b === 0 ? null : a / b);

function buildRows(R, haveNginx) {
  const g = (s, t) => R[s]?.[t] ?? null;
  const err = (s, t) => (g(s, t)?.error ? 'ERROR' : null);
  const rows = [];
  const row = (label, f, { d = 2, ratioOf = null, target = null, pass = null } = {}) => {
    if (!R[label[0]]) return; // a scenario BENCH_ONLY left out
    const vals = ['direct', 'gateway', 'floor', 'nginx'].map((t) => {
      if (t === 'nginx' && !haveNginx) return 'skipped';
      const e = err(label[0], t);
      if (e) return e;
      try {
        return fmt(f(t), d);
      } catch {
        return 'n/a';
      }
    });
    let r = '';
    if (ratioOf) {
      try {
        const x = ratio(ratioOf('gateway'), ratioOf('direct'));
        r = x === null ? 'n/a' : `${x.toFixed(2)}×`;
      } catch {
        r = 'n/a';
      }
    }
    let verdict = '';
    if (pass) {
      try {
        const p = pass();
        verdict = p === null ? 'n/a' : p ? 'PASS' : 'FAIL';
      } catch {
        verdict = 'FAIL';
      }
    }
    rows.push([label, ...vals, r, target ?? '', verdict]);
  };
  const A = (t) => g('A', t);
  const B = (t) => g('B', t);
  const C = (t) => g('C', t);
  const D = (t) => g('D', t);
  const addA = (t, q) => (t === 'direct' ? null : A(t).ttft_ms[q] - A('direct').ttft_ms[q]);

  row('A  TTFT p50 (ms)', (t) => A(t).ttft_ms.p50, { d: 3, ratioOf: (t) => A(t).ttft_ms.p50 });
  row('A  TTFT p99 (ms)', (t) => A(t).ttft_ms.p99, { d: 3, ratioOf: (t) => A(t).ttft_ms.p99 });
  row('A  added TTFT p50 vs direct (ms)', (t) => addA(t, 'p50'), { d: 3, target: '≤ 0.4', pass: () => addA('gateway', 'p50') <= 0.4 });
  row('A  added TTFT p99 vs direct (ms)', (t) => addA(t, 'p99'), { d: 3, target: '≤ 2', pass: () => addA('gateway', 'p99') <= 2 });
  row('A  (info) gateway-logged ttft p50/p99 (ms)', (t) => (t === 'gateway' ? `${A(t).gateway_log.ttft_ms.p50} / ${A(t).gateway_log.ttft_ms.p99}` : null));
  row('A  requests ok / errors', (t) => `${A(t).completed}/300, ${A(t).errors.count} err`);
  row('B  deltas/s at c=64', (t) => B(t).events_per_s, { d: 0, ratioOf: (t) => B(t).events_per_s, target: '≥ 0.6× direct', pass: () => B('gateway').events_per_s >= 0.6 * B('direct').events_per_s });
  row('B  relay CPU-seconds (8 s window)', (t) => B(t).relay_cpu_s);
  row('B  deltas per relay CPU-second', (t) => B(t).events_per_cpu_s, { d: 0 });
  row('B  peak RSS (MB)', (t) => B(t).relay_peak_rss_kb / 1024, { d: 1 });
  row('B  streams done / errors', (t) => `${B(t).requests_completed}, ${B(t).errors.count_in_window} err`);
  row('C  streams completed (of 2,000)', (t) => C(t).completed, { d: 0, target: '= 2,000', pass: () => C('gateway').completed === 2000 });
  row('C  TTFT p99 while opening (ms)', (t) => C(t).ttft_ms.p99, { d: 1, ratioOf: (t) => C(t).ttft_ms.p99, target: '≤ 100', pass: () => C('gateway').ttft_ms.p99 <= 100 });
  row('C  added inter-chunk p99 (gap−500, ms)', (t) => C(t).added_gap_ms.p99, { d: 2, target: '≤ 5', pass: () => C('gateway').added_gap_ms.p99 <= 5 });
  row('C  (info) gap − upstream gap p99 (ms)', (t) => C(t).added_gap_vs_upstream_ms.p99, { d: 2 });
  row('C  (info) upstream write→client p99 (ms)', (t) => C(t).chunk_latency_ms.p99, { d: 2 });
  row('C  (info) all open after (ms) / relay CPU-s', (t) => `${C(t).all_open_after_ms} / ${fmt(C(t).relay_cpu_s_while_opening)}`);
  row('C  (info) gateway-logged ttft p99 (ms)', (t) => (t === 'gateway' ? C(t).gateway_log.ttft_ms.p99 : null));
  row('C  RSS idle → all open (MB)', (t) => (C(t).rss_idle_kb == null ? null : `${(C(t).rss_idle_kb / 1024).toFixed(1)} → ${(C(t).rss_all_open_kb / 1024).toFixed(1)}`));
  row('C  KB per open stream', (t) => C(t).kb_per_stream, { d: 1, target: '≤ 40', pass: () => (C('gateway').kb_per_stream == null ? null : C('gateway').kb_per_stream <= 40) });
  row('D  upstream saw aborted (of 50)', (t) => D(t).upstream_saw_aborted, { d: 0, target: '= 50', pass: () => D('gateway').upstream_saw_aborted === 50 });
  row('D  destroy → upstream close p50 (ms)', (t) => D(t).propagation_ms.p50, { d: 3, target: '≤ 5', pass: () => D('gateway').propagation_ms.p50 <= 5 });
  row('D  destroy → upstream close p99 (ms)', (t) => D(t).propagation_ms.p99, { d: 3 });
  return rows;
}

// Flat once the store is full: the last half may add noise, not a share of every answer it served.
// And the whole rise within three times the store's default bound (STREAM_STORE_MAX_BYTES, 128 MiB):
// the bound itself, and as much again twice for the heap, garbage awaiting collection and the allocator.
const SUSTAINED_GROWTH_TARGET_MB = 32;
const SUSTAINED_RISE_TARGET_MB = 384;

/** E's table: the gateway beside the floor, RSS in MB. */
function buildSustainedRows(E) {
  const mb = (kb) => (kb == null ? 'n/a' : (kb / 1024).toFixed(1));
  const rows = [];
  const row = (label, f, { target = '', pass = null } = {}) => {
    const vals = ['gateway', 'floor'].map((t) => {
      if (!E[t]) return 'n/a';
      if (E[t].error) return 'ERROR';
      try {
        return f(E[t]);
      } catch {
        return 'n/a';
      }
    });
    let verdict = '';
    if (pass) {
      try {
        const p = pass(E.gateway);
        verdict = p === null ? 'n/a' : p ? 'PASS' : 'FAIL';
      } catch {
        verdict = 'FAIL';
      }
    }
    rows.push([label, ...vals, target, verdict]);
  };
  row('E  answers complete (of planned) / errors', (r) => `${fmt(r.completed)} (${fmt(r.answers)}), ${r.errors.count} err`, {
    target: 'no errors',
    pass: (r) => r.errors.count === 0 && r.completed === r.done,
  });
  row('E  (info) seconds for them', (r) => `${fmt(r.seconds, 1)}${r.done < r.answers ? ` (time limit ${r.time_limit_ms / 1000} s)` : ''}`);
  row('E  RSS start → peak (MB)', (r) => `${mb(r.rss_start_kb)} → ${mb(r.rss_peak_kb)}`);
  row('E  RSS rise, peak − start (MB)', (r) => mb(r.rss_peak_kb - r.rss_start_kb), {
    target: `≤ ${SUSTAINED_RISE_TARGET_MB}`,
    pass: (r) => r.rss_peak_kb - r.rss_start_kb <= SUSTAINED_RISE_TARGET_MB * 1024,
  });
  row('E  RSS at ¼ / ½ / ¾ / all answers done (MB)', (r) => r.rss_quarters_kb.map(mb).join(' / '));
  row(`E  RSS ${((E.gateway ?? E.floor)?.settle_ms ?? 2000) / 1000} s after the last (MB)`, (r) => mb(r.rss_idle_after_kb));
  row('E  RSS growth over the last half (MB)', (r) => mb(r.last_half_growth_kb), {
    target: `≤ ${SUSTAINED_GROWTH_TARGET_MB}`,
    pass: (r) => (r.last_half_growth_kb == null ? null : r.last_half_growth_kb <= SUSTAINED_GROWTH_TARGET_MB * 1024),
  });
  row('E  last-quarter slope (KB per answer)', (r) => fmt(r.last_quarter_kb_per_answer, 1));
  row('E  (info) answers/s, relay CPU-ms per answer', (r) => `${fmt(r.answers_per_s, 0)}, ${fmt(r.relay_cpu_ms_per_answer, 1)}`);
  return rows;
}

const API_LABELS = { chat: 'chat completions', responses: 'responses (stream)', messages: 'messages (stream)' };

/** One API's windows merged: sums over the windows, so that two chat windows weigh by their length. */
function mergeWindows(ws) {
  if (!ws.length) return null;
  const sum = (k) => ws.reduce((a, w) => a + (w[k] ?? 0), 0);
  const s = sum('window_s');
  const cpu = sum('relay_cpu_s');
  const deltas = sum('deltas');
  return {
    deltas_per_s: deltas / s,
    events_per_s: sum('events') / s,
    bytes_per_s: ws.reduce((a, w) => a + w.bytes_per_s * w.window_s, 0) / s,
    relay_cpu_s: cpu,
    cpu_us_per_delta: deltas ? (cpu * 1e6) / deltas : null,
    streams: sum('requests_completed'),
    errors: ws.reduce((a, w) => a + w.errors.count_in_window, 0),
  };
}

/** Responses' and Messages' upstream chunks/s against chat completions' (F, same gateway): why not measured, or the figures. */
function apiShares(F) {
  const chat = mergeWindows(F.windows.filter((w) => w.api === 'chat'));
  return ['responses', 'messages'].map((api) => {
    if (F.not_served[api]) return { api, why: `NOT SERVED (${F.not_served[api]})` };
    const m = mergeWindows(F.windows.filter((w) => w.api === api));
    if (!m || !chat) return { api, why: 'n/a' };
    return { api, why: null, deltas: m.deltas_per_s, chatDeltas: chat.deltas_per_s, share: m.deltas_per_s / chat.deltas_per_s };
  });
}

/** F's table (one row per API, ratios against chat completions' windows in the same run) and its notes. */
function buildApiRows(F) {
  const rows = [];
  const notes = [];
  if (F.error) return { rows, notes: [`F ERROR: ${F.error.slice(0, 400)}`] };
  const by = (api) => F.windows.filter((w) => w.api === api);
  const chat = mergeWindows(by('chat'));
  const x = (a, b) => (a == null || b == null || b === 0 ? 'n/a' : `${(a / b).toFixed(2)}×`);
  for (const api of ['chat', 'responses', 'messages']) {
    if (F.not_served[api]) {
      rows.push([API_LABELS[api], 'not served', '', '', '', '', '', '', '']);
      continue;
    }
    const m = mergeWindows(by(api));
    if (!m) continue;
    rows.push([
      API_LABELS[api],
      fmt(Math.round(m.deltas_per_s), 0),
      x(m.deltas_per_s, chat?.deltas_per_s),
      fmt(Math.round(m.events_per_s), 0),
      fmt(m.bytes_per_s / 1e6, 1),
      fmt(m.relay_cpu_s),
      fmt(m.cpu_us_per_delta, 2),
      x(m.cpu_us_per_delta, chat?.cpu_us_per_delta),
      `${fmt(m.streams)}, ${m.errors} err`,
    ]);
  }
  if (F.fill) {
    const st = F.fill.store ?? {};
    notes.push(
      `F: warm-up: chat completions for ${F.fill.seconds} s, until the store held ${fmt((st.bytes ?? 0) / 2 ** 20, 1)} MiB in ${fmt(st.streams)} streams ` +
        `(${st.full ? 'full: ≥ 90 % of' : 'NOT full: under 90 % of'} ${fmt(STORE_BOUNDS.bytes / 2 ** 20, 0)} MiB or ${fmt(STORE_BOUNDS.streams)} streams)`,
    );
  }
  const chatWs = by('chat');
  if (chatWs.length > 1) {
    notes.push(`F: chat completions ran first and last: ${chatWs.map((w) => fmt(w.deltas_per_s, 0)).join(' then ')} chunks/s, ${chatWs.map((w) => w.relay_cpu_us_per_delta?.toFixed(2) ?? 'n/a').join(' then ')} CPU µs/chunk; its row is both windows together`);
  }
  notes.push(
    `F, CPU per ${APIS_WINDOW_MS / 1000} s window (2 cores = ${(2 * APIS_WINDOW_MS) / 1000} CPU-s in all) — ` +
      F.windows.map((w) => `${w.api}: gateway ${w.relay_cpu_s}, load generator ${w.loadgen_cpu_s}, upstream ${w.upstream_cpu_s}`).join('; '),
  );
  const verdicts = apiShares(F).map(({ api, why, deltas, chatDeltas, share }) => {
    if (why) return `${API_PATHS[api]} ${why}`;
    return `${API_PATHS[api]} ${share >= APIS_TARGET_SHARE ? 'PASS' : 'FALLS SHORT'} (${fmt(Math.round(deltas), 0)} vs ${fmt(Math.round(chatDeltas), 0)} chunks/s, ${share.toFixed(2)}×)`;
  });
  notes.push(`F target (issue 16): /v1/responses and /v1/messages streams: chunks/s ≥ ${APIS_TARGET_SHARE}× chat completions' in the same run — ${verdicts.join('; ')}`);
  if (/--cpu-prof\b/.test(process.env.BENCH_GATEWAY_NODE_ARGS ?? '')) {
    notes.push(`F windows for bench/prof-summary.mjs: ${F.windows.map((w) => `${w.api} --window=${w.window_mono_us.join('-')}`).join('; ')}`);
  }
  if (Object.keys(F.not_served).length) notes.push(`F: re-run once every route is served: BENCH_ONLY=F node bench/run.js (after npm run build)`);
  return { rows, notes };
}

// ------------------------------------------------------------------ issue 16's verdicts
/**
 * One line per issue-16 target, each from this run only: the gateway's figure beside the bound the
 * floor's figure gives (or, for F, chat completions'; with Redis, the gateway's without it).
 * `redis` is { ran, why }: why the Redis pass did not run, when it did not.
 */
function buildVerdicts(R, redis) {
  const lines = [];
  const ms = (v, d) => `${v.toFixed(d)} ms`;
  const num = (v) => Math.round(v).toLocaleString('en-US');
  /** A part: the gateway's figure against its bound, and how the bound came about (1e-9: float noise, not a miss). */
  const le = (what, gw, bound, how, show) => ({ ok: gw <= bound + 1e-9, text: `${what} ${show(gw)} vs ≤ ${show(bound)} (${how})` });
  const ge = (what, gw, bound, how, show) => ({ ok: gw >= bound - 1e-9, text: `${what} ${show(gw)} vs ≥ ${show(bound)} (${how})` });
  const line = (label, status, text) => lines.push(`${label.padEnd(7)} ${status.padEnd(11)} ${text}`);
  /** Runs `parts` unless a scenario or relay it needs is missing; a part that throws is n/a. */
  const verdict = (label, needs, parts) => {
    for (const [key, names] of needs) {
      if (!R[key]) return line(label, 'n/a', `scenario ${key} not run (BENCH_ONLY)`);
      for (const n of names) {
        if (!R[key][n]) return line(label, 'n/a', `${key}/${n} not run`);
        if (R[key][n].error) return line(label, 'n/a', `${key}/${n} ERROR (above)`);
      }
    }
    const ps = parts.map(([what, f]) => {
      try {
        const p = f();
        if (p.text.includes('NaN') || p.text.includes('undefined')) throw new Error('missing figure');
        return p;
      } catch {
        return { ok: null, text: `${what} n/a` };
      }
    });
    const status = ps.some((p) => p.ok === null) ? 'n/a' : ps.every((p) => p.ok) ? 'PASS' : 'FALLS SHORT';
    line(label, status, ps.map((p) => (p.ok === false ? `${p.text} — short` : p.text)).join('; '));
  };
  const A = (t) => R.A[t];
  const B = (t) => R.B[t];
  const C = (t) => R.C[t];
  const D = (t) => R.D[t];
  const addA = (t, q) => A(t).ttft_ms[q] - A('direct').ttft_ms[q];
  const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;

  verdict('A', [['A', ['direct', 'gateway', 'floor']]], [
    ['added TTFT p50', () => le('added TTFT p50', addA('gateway', 'p50'), addA('floor', 'p50') + 0.1, `floor's ${addA('floor', 'p50').toFixed(3)} + 0.1`, (v) => ms(v, 3))],
    ['added TTFT p99', () => le('p99', addA('gateway', 'p99'), addA('floor', 'p99') + 1, `floor's ${addA('floor', 'p99').toFixed(3)} + 1`, (v) => ms(v, 3))],
  ]);
  verdict('B', [['B', ['gateway', 'floor']]], [
    ['chunks/s', () => ge('chunks/s', B('gateway').events_per_s, 0.85 * B('floor').events_per_s, `0.85 × floor's ${num(B('floor').events_per_s)}`, num)],
    ['peak RSS', () => le('peak RSS', B('gateway').relay_peak_rss_kb, 2 * B('floor').relay_peak_rss_kb, `2 × floor's ${mb(B('floor').relay_peak_rss_kb)}`, mb)],
  ]);
  verdict('C', [['C', ['gateway', 'floor']]], [
    ['complete', () => ({ ok: C('gateway').completed === 2000, text: `${num(C('gateway').completed)} of 2,000 complete (floor ${num(C('floor').completed)})` })],
    ['TTFT p99', () => le('TTFT p99', C('gateway').ttft_ms.p99, 1.5 * C('floor').ttft_ms.p99, `1.5 × floor's ${C('floor').ttft_ms.p99.toFixed(1)}`, (v) => ms(v, 1))],
    ['gap p99', () => le('gap p99 beyond 500 ms', C('gateway').added_gap_ms.p99, C('floor').added_gap_ms.p99 + 5, `floor's ${C('floor').added_gap_ms.p99.toFixed(2)} + 5`, (v) => ms(v, 2))],
    ['KB/stream', () => le('KB per stream', C('gateway').kb_per_stream, 1.2 * C('floor').kb_per_stream, `1.2 × floor's ${C('floor').kb_per_stream.toFixed(1)}`, (v) => v.toFixed(1))],
  ]);
  verdict('D', [['D', ['gateway', 'floor']]], [
    ['aborts', () => ({ ok: D('gateway').upstream_saw_aborted === 50, text: `${D('gateway').upstream_saw_aborted}/50 aborts propagated (floor ${D('floor').upstream_saw_aborted}/50)` })],
    ['p50', () => le('p50', D('gateway').propagation_ms.p50, D('floor').propagation_ms.p50 + 2, `floor's ${D('floor').propagation_ms.p50.toFixed(3)} + 2`, (v) => ms(v, 3))],
  ]);
  verdict(
    'F',
    [['F', ['gateway']]],
    R.F?.gateway && !R.F.gateway.error
      ? apiShares(R.F.gateway).map((s) => [
          API_PATHS[s.api],
          () => {
            if (s.why) return { ok: null, text: `${API_PATHS[s.api]} ${s.why}` };
            return ge(`${API_PATHS[s.api]} chunks/s`, s.deltas, APIS_TARGET_SHARE * s.chatDeltas, `${APIS_TARGET_SHARE} × chat completions' ${num(s.chatDeltas)}`, num);
          },
        ])
      : [],
  );
  for (const [label, key, parts] of [
    ['B+Redis', 'B', [['chunks/s', () => ge('chunks/s with Redis', B('gateway-redis').events_per_s, 0.8 * B('gateway').events_per_s, `0.8 × ${num(B('gateway').events_per_s)} without`, num)]]],
    ['C+Redis', 'C', [['TTFT p99', () => le('TTFT p99 with Redis', C('gateway-redis').ttft_ms.p99, 2 * C('gateway').ttft_ms.p99, `2 × ${C('gateway').ttft_ms.p99.toFixed(1)} without`, (v) => ms(v, 1))]]],
  ]) {
    if (!redis.ran) line(label, 'SKIPPED', redis.why);
    else verdict(label, [[key, ['gateway', 'gateway-redis']]], parts);
  }
  return lines;
}

function printTable(rows, head = ['metric', 'direct', 'gateway', 'floor', 'nginx', 'gateway/direct', 'target (gateway)', 'verdict']) {
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ');
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('-|-'));
  for (const r of rows) console.log(line(r));
}

// ------------------------------------------------------------------ main
async function main() {
  mkdirSync(WORK, { recursive: true });
  if (!existsSync(join(ROOT, 'dist/server.js'))) throw new Error('dist/server.js missing: run `npm run build` first (npm run bench does)');
  const cpu = os.cpus();
  const machine = {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    nofile_soft: execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim(),
    loadavg_before: os.loadavg().map((x) => +x.toFixed(2)),
  };
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.platform}`);
  console.log(`load average before: ${machine.loadavg_before.join(' ')} (other work on this machine skews every column alike)`);

  const nginxBin = process.env.BENCH_SKIP_NGINX ? null : findNginx();
  let nginxVersion = null;
  if (nginxBin) {
    try {
      // `nginx -v` prints on stderr
      nginxVersion = execFileSync('/bin/sh', ['-c', '"$0" -v 2>&1', nginxBin], { encoding: 'utf8' }).trim().replace(/^nginx version: /, '');
    } catch {
      nginxVersion = 'nginx (version unknown)';
    }
  } else if (process.env.BENCH_SKIP_NGINX) console.log('note: BENCH_SKIP_NGINX is set: the nginx column is skipped');
  else console.log('note: nginx is not installed: the nginx column is skipped (apt-get install -y nginx to include it)');
  const targets = ['direct', 'gateway', 'floor', ...(nginxBin ? ['nginx'] : [])];
  // The Redis pass: B and C against the gateway again, with REDIS_URL, in this same run.
  const redis = { ran: false, why: 'BENCH_REDIS is not set (BENCH_REDIS=1 runs B and C again with REDIS_URL; a Redis at 127.0.0.1:6379, or BENCH_REDIS_URL)' };
  if (REDIS_PASS) {
    const why = await redisUnreachable(REDIS_URL);
    if (why) redis.why = `Redis at ${REDIS_URL} unreachable: ${why}`;
    else Object.assign(redis, { ran: true, why: null });
  }
  console.log(redis.ran ? `Redis pass: B and C also run the gateway with REDIS_URL=${REDIS_URL}` : `note: Redis pass skipped: ${redis.why}`);

  const upstream = await startUpstream();
  log(`fake upstream on ${upstream.base}`);
  const results = {};
  const problems = {};
  for (const [key, sc] of Object.entries(SCENARIOS)) {
    if (!runs(key)) continue;
    results[key] = {};
    for (const name of [...(sc.targets ?? targets), ...(sc.redisPass && redis.ran ? ['gateway-redis'] : [])]) {
      let relay = null;
      const t0 = performance.now();
      try {
        if (name === 'gateway') relay = await startGateway(upstream, key);
        if (name === 'floor') relay = await startGateway(upstream, `${key}-floor`, 'bench/bare-relay.mjs');
        if (name === 'gateway-redis') relay = await startGateway(upstream, `${key}-redis`, null, { REDIS_URL });
        if (name === 'nginx') relay = await startNginx(nginxBin, upstream, key);
        const url = `${relay ? relay.base : upstream.base}/v1/chat/completions`;
        await sleep(300);
        results[key][name] = await sc.run({ name, url, relay, upstream });
        if (relay) results[key][name].relay_peak_rss_kb = peakRssKb(relay.rssPids());
      } catch (e) {
        results[key][name] = { error: e.message };
        log(`${key}/${name} failed: ${e.message}`);
      } finally {
        if (relay) await stop(relay.child);
        if ((name === 'gateway' || name === 'gateway-redis') && relay) {
          const p = readGatewayLog(relay.logFile, sc.streamChunks);
          problems[`${key}/${name}`] = p;
          if (results[key][name] && !results[key][name].error) results[key][name].gateway_log = { ttft_ms: p.ttft_ms, request_outcomes: p.request_outcomes };
        }
        if (name === 'nginx' && relay) {
          const errs = readFileSync(relay.logFile, 'utf8').trim();
          if (errs) problems[`${key}/nginx`] = errs.split('\n').slice(-5);
        }
      }
      const r = results[key][name];
      const errCount = r?.errors?.count ?? 0;
      log(`${key} ${sc.title} / ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s${errCount ? `, ${errCount} client-side errors: ${JSON.stringify(r.errors.kinds).slice(0, 300)}` : ''}`);
    }
  }
  await stop(upstream.child);

  machine.loadavg_after = os.loadavg().map((x) => +x.toFixed(2));
  const rows = buildRows(results, Boolean(nginxBin));
  console.log('');
  if (rows.length) {
    printTable(rows);
    console.log('');
  }
  const sustainedRows = results.E ? buildSustainedRows(results.E) : [];
  if (sustainedRows.length) {
    printTable(sustainedRows, ['metric', 'gateway', 'floor', 'target (gateway)', 'verdict']);
    console.log(
      `E: ${SUSTAINED.answers.toLocaleString('en-US')} answers of ${SUSTAINED.chunks.toLocaleString('en-US')} events at c=${SUSTAINED.concurrency}, no gap, at most ${SUSTAINED.timeLimitMs / 1000} s per relay (less when the run is late), fresh process, RSS (VmRSS) every 0.5 s; ` +
        'RSS is robust to other work on the machine, answers/s and CPU are not',
    );
    console.log('');
  }
  const apiTable = results.F?.gateway ? buildApiRows(results.F.gateway) : null;
  if (apiTable) {
    if (apiTable.rows.length) {
      printTable(apiTable.rows, ['API (F: c=64, 100-chunk streams)', 'upstream chunks/s', 'vs chat', 'API events/s', 'MB/s', 'gateway CPU-s', 'CPU µs/chunk', 'vs chat', 'streams, errors']);
    }
    console.log(
      `F: one fresh gateway, ${API_ORDER.join(' → ')}, each 1 s warm-up then a ${APIS_WINDOW_MS / 1000} s window; upstream chunks = the fake upstream's chunks that reached the client as text deltas ` +
        '(chat data chunks with text, response.output_text.delta, content_block_delta: 98 of each stream\'s 100); CPU = the gateway\'s utime+stime over the window',
    );
    for (const n of apiTable.notes) console.log(n);
    console.log('');
  }
  const B = results.B ?? {};
  const cpuNote = targets
    .filter((t) => B[t] && !B[t].error)
    .map((t) => `${t}: load generator ${B[t].loadgen_cpu_s} CPU-s, upstream ${B[t].upstream_cpu_s} CPU-s`)
    .join('; ');
  if (cpuNote) console.log(`B, CPU over the 8 s window (2 cores = 16 CPU-s in all) — ${cpuNote}`);
  console.log(`gateway: LOG_LEVEL=${GATEWAY_LOG_LEVEL}, default HEARTBEAT_MS, fresh process per scenario; ${nginxVersion ?? 'nginx absent'}: worker_processes auto, proxy_buffering off, upstream keepalive 256, access_log on`);
  for (const [k, p] of Object.entries(problems)) {
    if (Array.isArray(p)) console.log(`${k} error.log: ${p.join(' / ').slice(0, 400)}`);
    else if (p.warn || p.error || p.fatal || p.unparsed) console.log(`${k} log: ${p.warn} warn, ${p.error} error, ${p.fatal} fatal; ${JSON.stringify(p.messages).slice(0, 600)}`);
  }
  for (const [k, byT] of Object.entries(results)) {
    for (const [t, r] of Object.entries(byT)) {
      if (r.error) console.log(`${k}/${t} ERROR: ${r.error.slice(0, 600)}`);
      else if (r.errors?.count) console.log(`${k}/${t} client-side errors: ${JSON.stringify(r.errors.kinds).slice(0, 400)}`);
    }
  }
  const verdicts = buildVerdicts(results, redis);
  const elapsed = (performance.now() - tStart) / 1000;
  const out = { when: new Date().toISOString(), elapsed_s: +elapsed.toFixed(1), machine, nginx: nginxVersion, gateway_env: { LOG_LEVEL: GATEWAY_LOG_LEVEL }, results, logs: problems, table: rows, sustained_table: sustainedRows, api_table: apiTable, redis, verdicts };
  writeFileSync(RESULTS_FILE, JSON.stringify(out, null, 2));
  console.log(`results: ${RESULTS_FILE} (logs in ${WORK}); bench took ${elapsed.toFixed(1)} s`);
  console.log('');
  console.log(
    `Issue 16 targets, gateway against the floor (bench/bare-relay.mjs) from this run (${out.when.slice(0, 16).replace('T', ' ')} UTC, ` +
      `load average ${machine.loadavg_before.join(' ')} before, ${machine.loadavg_after.join(' ')} after):`,
  );
  for (const l of verdicts) console.log(l);
}

try {
  await main();
} catch (e) {
  log(`fatal: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  cleanup();
  clearTimeout(deadline);
  // Keep-alive sockets and child pipes would hold the process open: the bench is over.
  process.exit(process.exitCode ?? 0);
}
