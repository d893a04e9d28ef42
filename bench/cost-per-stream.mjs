// CPU per stream of one relay under B's load shape, split into the main thread and the
// others (V8's GC and compiler helpers), beside its peak RSS: the figure to compare when
// cutting per-request or per-event work. A fake upstream, one relay, bench/load.mjs at
// concurrency CONC (64) with CHUNKS (100) chunks per stream, a 3 s warm-up, then a
// SECONDS-long window. All on 127.0.0.1; every child is killed at the end (bounded: ~SECONDS + 15 s).
//
//   npm run build --silent && node bench/cost-per-stream.mjs [relay script=dist/server.js] [seconds=6] [node flags…]
//   RELAY_ENV="STREAM_STORE_MAX_BYTES=0 LOG_LEVEL=silent" …   variables for the relay
//   … dist/server.js 6 --cpu-prof --cpu-prof-dir=DIR   a profile of the relay (it is stopped with SIGTERM, so it writes it)
//   CHUNKS=5 …   fewer chunks per stream: the fixed per-request share (two sizes give per-chunk and per-request costs)
//
// One line of JSON: cpu_us_per_stream (the relay's utime+stime over the window, all threads,
// per stream completed in it), main_thread_us / other_threads_us per stream, events/s, the load
// generator's and upstream's CPU-s, peak RSS. The relay's stdout is /tmp/cost-per-stream-relay.log. On a shared 2-core VM, runs of the same build
// differ by about ±7 %: compare builds in alternating runs, two or more each.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = process.argv[2] ?? 'dist/server.js';
const seconds = Math.min(Math.max(Number(process.argv[3] ?? 6) || 6, 1), 60);
const nodeArgs = process.argv.slice(4);
const chunks = Number(process.env.CHUNKS ?? 100);
const concurrency = Number(process.env.CONC ?? 64);
const CLK_TCK = 100;

const children = [];
const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'));
process.on('exit', killAll);
setTimeout(() => {
  process.stderr.write('cost-per-stream: time limit reached\n');
  process.exit(3);
}, (seconds + 30) * 1000).unref();

function start(args, env, stdout = 'pipe') {
  const c = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', stdout, 'inherit'] });
  children.push(c);
  return c;
}

const upstream = start([join('bench', 'fake-upstream.mjs')], { BENCH_MAX_LIFETIME_MS: String((seconds + 40) * 1000) });
const upPort = await new Promise((resolve) => upstream.stdout.once('data', (d) => resolve(JSON.parse(String(d).split('\n')[0]).port)));
upstream.stdout.resume();
const port = 18_000 + Math.floor(Math.random() * 2000);
const relayEnv = Object.fromEntries((process.env.RELAY_ENV ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
// The relay's log goes to a file, as in run.js: a pipe to this process would bill its writes to the relay.
const logFile = '/tmp/cost-per-stream-relay.log';
const logFd = openSync(logFile, 'w');
const relay = start([...nodeArgs, script], {
  NODE_ENV: 'production',
  HOST: '127.0.0.1',
  PORT: String(port),
  UPSTREAM_BASE_URL: `http://127.0.0.1:${upPort}/v1`,
  RATE_LIMIT_MAX: '1000000000',
  MAX_CONCURRENT_STREAMS: '1000000',
  LOG_LEVEL: 'info',
  ...relayEnv,
}, logFd);
closeSync(logFd);
for (let i = 0; i < 100; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
  } catch {
    // not listening yet
  }
  await new Promise((r) => setTimeout(r, 100));
}

/** CPU-seconds per thread of the relay. */
function threads() {
  const out = new Map();
  for (const t of readdirSync(`/proc/${relay.pid}/task`)) {
    const s = readFileSync(`/proc/${relay.pid}/task/${t}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    out.set(t, (Number(f[11]) + Number(f[12])) / CLK_TCK);
  }
  return out;
}

function load(durationMs) {
  return new Promise((resolve, reject) => {
    const opts = { mode: 'throughput', url: `http://127.0.0.1:${port}/v1/chat/completions`, concurrency, chunks, warmup_ms: 1000, duration_ms: durationMs, cpu_pids: [relay.pid], upstream_pids: [upstream.pid], clk_tck: CLK_TCK, hard_limit_ms: durationMs + 20_000 };
    const l = spawn(process.execPath, [join('bench', 'load.mjs'), JSON.stringify(opts)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(l);
    let out = '';
    l.stdout.on('data', (d) => (out += d));
    l.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load.mjs exited ${code}`))));
  });
}

await load(3000);
const t0 = threads();
const r = await load(seconds * 1000);
const t1 = threads();
let main = 0;
let others = 0;
for (const [t, v] of t1) {
  const d = v - (t0.get(t) ?? 0);
  if (t === String(relay.pid)) main += d;
  else others += d;
}
// Thread times run from just before to just after the window; the relay's own figure is the window's.
const streams = (r.events_per_s * seconds) / chunks;
const perStream = (cpu) => Math.round((cpu * 1e6) / streams);
const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${relay.pid}/status`, 'utf8'))?.[1] ?? 0);
console.log(JSON.stringify({
  relay: script,
  chunks,
  concurrency,
  cpu_us_per_stream: perStream(r.relay_cpu_s),
  main_thread_us: perStream((r.relay_cpu_s * main) / (main + others)),
  other_threads_us: perStream((r.relay_cpu_s * others) / (main + others)),
  events_per_s: r.events_per_s,
  loadgen_cpu_s: r.loadgen_cpu_s,
  upstream_cpu_s: r.upstream_cpu_s,
  peak_rss_mb: Math.round(hwm / 1024),
}));
// A profiled relay (--cpu-prof) writes its profile on a clean exit.
if (nodeArgs.some((a) => a.startsWith('--cpu-prof'))) {
  relay.kill('SIGTERM');
  await new Promise((resolve) => relay.once('exit', resolve));
}
killAll();
process.exit(0);
