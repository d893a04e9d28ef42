// The multi-replica topology of docker-compose.yml on one machine, without containers:
// the mock upstream, Redis, two gateway replicas sharing REDIS_URL, nginx in front.
// Used by `npm run cluster` (scripts/cluster.mjs) and by test/cluster/. Plain JS on
// purpose: it runs the built dist/ files as child processes and imports nothing from src/.
//
// Every child runs in its own process group (so Ctrl-C in a terminal reaches only the
// CLI, which then stops them in order) and is killed with its group by stop(), and with
// SIGKILL if this process exits first.
import { spawn } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { findBinary, findNginx, freePort, httpGet, killGroup } from './proc-util.mjs';

export { findNginx, freePort };

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER = join(ROOT, 'dist/server.js');
const MOCK = join(ROOT, 'dist/upstream/mock/server-main.js');
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Environment variables the CLI hands to both replicas when set. */
export const PASSTHROUGH_ENV = [
  'GATEWAY_API_KEYS',
  'RATE_LIMIT_MAX',
  'RATE_LIMIT_WINDOW_MS',
  'TOKENS_PER_MINUTE',
  'MAX_CONCURRENT_STREAMS',
  'DRAIN_TIMEOUT_MS',
  'LOG_LEVEL',
  'CONFIG_FILE',
  'CORS_ORIGINS',
  'HEARTBEAT_MS',
  'STREAM_RESUME_GRACE_MS',
  'CHAT_RESUME_GRACE_MS',
  'UPSTREAM_TIMEOUT_MS',
  'UPSTREAM_BASE_URL',
  'UPSTREAM_API_KEY',
  'UPSTREAM_CONTINUATION',
  'STREAM_LEASE_MS',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** A deadline for Promise.race: unref'd, so a race already won does not hold the process open. */
const deadline = (ms) => new Promise((r) => setTimeout(() => r(null), ms).unref());

// ------------------------------------------------------------------ process groups
/** The process groups started here and not yet seen to exit (by their leader's pid). */
const live = new Set();


// Reaper: a small detached process that holds the list of our process groups and SIGKILLs
// them when its stdin reaches EOF, i.e. when this process is gone, however it went (even
// SIGKILL or a test runner's timeout, where no 'exit' handler runs). Normal stops tell it first.
const REAPER = `
const live = new Set();
let buf = '';
const reap = () => {
  for (const pid of live) { try { process.kill(-pid, 'SIGKILL'); } catch {} }
  process.exit(0);
};
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => {
  buf += c;
  for (let i; (i = buf.indexOf('\\n')) !== -1; buf = buf.slice(i + 1)) {
    const line = buf.slice(0, i);
    if (line[0] === '+') live.add(Number(line.slice(1)));
    else live.delete(Number(line.slice(1)));
  }
});
process.stdin.on('end', reap);
process.stdin.on('error', reap);
`;
let reaper = null;

function track(pid, alive) {
  if (alive) live.add(pid);
  else live.delete(pid);
  if (!reaper) {
    reaper = spawn(process.execPath, ['-e', REAPER], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    reaper.on('error', () => {}); // without a reaper, the 'exit' hook below still covers normal exits
    reaper.stdin.on('error', () => {});
    reaper.unref();
    reaper.stdin.unref?.();
    // Last resort for a normal exit (or an uncaught error): every group still listed goes.
    process.on('exit', () => {
      for (const p of live) killGroup(p, 'SIGKILL');
    });
  }
  reaper.stdin.write(`${alive ? '+' : '-'}${pid}\n`);
}

/**
 * One child process in its own group; stdout and stderr go to `logFile`, and
 * stdout lines also to `onLine` (for readiness lines).
 */
function startProcess(name, cmd, args, { env, logFile, onLine }) {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(cmd, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => {
    child.once('exit', (code, signal) => r({ code, signal }));
    child.once('error', (err) => {
      log.write(`[cluster] cannot start ${name}: ${err.message}\n`);
      r({ code: null, signal: null, error: err });
    });
  });
  if (child.pid) track(child.pid, true);
  exited.then(() => child.pid && track(child.pid, false));
  child.stderr.pipe(log, { end: false });
  child.stdout.pipe(log, { end: false });
  let tail = '';
  const keep = (c) => (tail = (tail + c).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  if (onLine) createInterface({ input: child.stdout }).on('line', onLine);
  // Both pipes closed: the log file can close too.
  let open = 2;
  const closed = () => --open === 0 && log.end();
  child.stdout.once('close', closed);
  child.stderr.once('close', closed);
  return { name, child, pid: child.pid, exited, tail: () => tail, logFile };
}

/** SIGTERM to the group, SIGKILL after `graceMs`; whatever is left in the group goes too. */
async function stopProcess(proc, graceMs) {
  if (!proc?.pid) return;
  const running = proc.child.exitCode === null && proc.child.signalCode === null;
  if (!running) return; // its pid (and group id) may belong to someone else by now
  killGroup(proc.pid, 'SIGTERM');
  const r = await Promise.race([proc.exited, deadline(graceMs)]);
  if (r === null) {
    killGroup(proc.pid, 'SIGKILL');
    await Promise.race([proc.exited, deadline(2000)]);
  }
  // Whatever else is in the group (e.g. nginx workers, should the master have gone first).
  killGroup(proc.pid, 'SIGKILL');
  track(proc.pid, false);
}

/** Resolves with the first stdout line `match` accepts; rejects if the process exits or time runs out. */
function waitForLine(proc, lines, match, timeoutMs, what) {
  return new Promise((resolveLine, reject) => {
    let done = false;
    const finish = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      lines.delete(onLine);
      fn(v);
    };
    const onLine = (line) => {
      const v = match(line);
      if (v !== undefined && v !== null) finish(resolveLine, v);
    };
    lines.add(onLine);
    const timer = setTimeout(() => finish(reject, new Error(`${what} not ready after ${timeoutMs} ms; last output:\n${proc.tail().slice(-1500)}`)), timeoutMs);
    proc.exited.then(({ code, signal, error }) =>
      finish(reject, new Error(`${what} exited (${error ? error.message : code ?? signal}) before it was ready; last output:\n${proc.tail().slice(-1500)}`)),
    );
  });
}

// ------------------------------------------------------------------ small network helpers

/** PING over a raw socket: true when a Redis answers +PONG (or asks for auth, which is still a Redis). */
export function redisPing(url = DEFAULT_REDIS_URL, timeoutMs = 1000) {
  const u = new URL(url);
  return new Promise((res) => {
    const s = net.connect(Number(u.port || 6379), u.hostname);
    let buf = '';
    const done = (ok) => {
      s.destroy();
      res(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (c) => {
      buf += c.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
    });
  });
}



export function findRedisServer() {
  return findBinary('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin']);
}

/** Whether startCluster can get a Redis: one answering at `url`, or a redis-server binary to start. */
export async function redisAvailable(url = DEFAULT_REDIS_URL) {
  return (await redisPing(url)) || findRedisServer() !== null;
}


// ------------------------------------------------------------------ nginx config
/**
 * deploy/nginx.conf for one machine: the same proxy settings, plain HTTP only, paths in `dir`.
 * Differences, all for restarts: one round-robin state for all workers (zone), no
 * passive "server is down" marking (max_fails=0), and a retry on the other replica
 * when one refuses the connection or answers 503.
 */
export function nginxConfig({ dir, port, replicaPorts }) {
  return `# Generated by scripts/cluster-lib.mjs from deploy/nginx.conf (HTTP only, local ports).
worker_processes 2;
events { worker_connections 4096; }

http {
  log_format cluster '$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status time=$request_time';
  access_log ${dir}/nginx-access.log cluster;
  client_body_temp_path ${dir}/nginx-tmp/client_body;
  proxy_temp_path ${dir}/nginx-tmp/proxy;
  fastcgi_temp_path ${dir}/nginx-tmp/fastcgi;
  uwsgi_temp_path ${dir}/nginx-tmp/uwsgi;
  scgi_temp_path ${dir}/nginx-tmp/scgi;

  upstream gateways {
    # One round-robin state shared by the workers, so consecutive requests alternate replicas.
    zone gateways 64k;
    # max_fails=0: a replica that refused a connection (restarting) or answered 503 (draining) is
    # not benched for fail_timeout (10 s); each request tries it again, and on failure moves on
    # (proxy_next_upstream below). Without it, a replica back from a restart would sit out 10 s,
    # and while the other one drains nginx would find no live upstream and answer 502.
${replicaPorts.map((p) => `    server 127.0.0.1:${p} max_fails=0;`).join('\n')}
    keepalive 64;
  }

  server {
    listen 127.0.0.1:${port};

    location / {
      proxy_pass http://gateways;
      proxy_http_version 1.1;            # keep-alive to the replicas
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;               # SSE: every event goes out as it comes
      proxy_cache off;
      proxy_read_timeout 60s;            # above HEARTBEAT_MS (15 s): idle streams stay open
      proxy_send_timeout 60s;
      proxy_connect_timeout 2s;
      client_max_body_size 1m;           # the gateway's own limit answers 413 past it
      # Rolling restarts: a replica that is down (connection refused), closes a kept-alive
      # connection as it exits, or is draining (503 "draining") has not started the request,
      # so the request goes to the other replica. non_idempotent lets nginx do that for POST
      # too (by default it never retries a POST). That is safe here: the gateway answers 503
      # only for "draining" and "overloaded", both refused before any work (no upstream call,
      # no rate-limit count), and nginx never retries once a response has begun, so a stream
      # is never started twice. The one case that could repeat work: a replica that dies
      # after reading a POST but before its response headers (a crash, not a drain); the
      # client still sees one answer, the upstream may have generated twice.
      proxy_next_upstream error timeout http_503 non_idempotent;
      proxy_next_upstream_tries 2;
    }
  }
}
`;
}

// ------------------------------------------------------------------ the cluster
/**
 * Starts mock upstream, Redis (the one at redisUrl, or a fresh redis-server), two gateway
 * replicas and nginx (when installed and not disabled). Throws with a clear message when a
 * part cannot start, after stopping what had started.
 *
 * @param {import('./cluster-lib.mjs').ClusterOptions} [opts]
 * @returns {Promise<import('./cluster-lib.mjs').Cluster>}
 */
export async function startCluster(opts = {}) {
  const {
    port = 8080,
    env: extraEnv = {},
    mockEnv = {},
    nginx: wantNginx = true,
    redisUrl = DEFAULT_REDIS_URL,
    replicas: replicaCount = 2,
    readyTimeoutMs = 15_000,
    stopGraceMs = 3000,
    keepDir = false,
  } = opts;
  for (const f of [SERVER, MOCK]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const dir = mkdtempSync(join(os.tmpdir(), 'sse-cluster-'));
  // nginx workers run as an unprivileged user when started by root: they must reach the temp dirs.
  chmodSync(dir, 0o755);
  const procs = []; // in start order; stopped in reverse
  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? os.tmpdir() };
  let stopped = false;

  const cluster = {
    dir,
    entry: '',
    mock: null,
    redis: null,
    replicas: [],
    nginx: null,
    async stop() {
      if (stopped) return;
      stopped = true;
      // In reverse start order: nginx first (no new requests), the replicas together, then mock and Redis.
      const gateways = procs.filter((p) => p.name.startsWith('gateway'));
      const others = procs.filter((p) => !gateways.includes(p)).reverse();
      if (others[0]?.name === 'nginx') await stopProcess(others.shift(), stopGraceMs);
      await Promise.all(gateways.map((p) => stopProcess(p, stopGraceMs)));
      for (const p of others) await stopProcess(p, stopGraceMs);
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    // ---- mock upstream
    const mockPort = await freePort();
    const mockLines = new Set();
    const mockProc = startProcess('mock-upstream', process.execPath, [MOCK], {
      env: { ...baseEnv, MOCK_HOST: '127.0.0.1', MOCK_PORT: String(mockPort), ...mockEnv },
      logFile: join(dir, 'mock-upstream.log'),
      onLine: (l) => mockLines.forEach((f) => f(l)),
    });
    procs.push(mockProc);
    const mockUrl = await waitForLine(mockProc, mockLines, (l) => /listening on (\S+)/.exec(l)?.[1], readyTimeoutMs, 'mock upstream');
    cluster.mock = {
      url: mockUrl,
      pid: mockProc.pid,
      logFile: mockProc.logFile,
      proc: mockProc,
      async stats() {
        const r = await httpGet(`${new URL(mockUrl).origin}/_mock/stats`, 2000);
        return JSON.parse(r.body);
      },
    };

    // ---- Redis
    if (await redisPing(redisUrl)) {
      cluster.redis = { url: redisUrl, pid: null, external: true };
    } else {
      const bin = findRedisServer();
      if (!bin) {
        throw new Error(
          `no Redis answers at ${redisUrl} and redis-server is not installed: start one (redis-server --port 6379) or install it (apt-get install redis-server)`,
        );
      }
      const redisPort = await freePort();
      const redisProc = startProcess('redis', bin, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
        env: baseEnv,
        logFile: join(dir, 'redis.log'),
      });
      procs.push(redisProc);
      const url = `redis://127.0.0.1:${redisPort}`;
      const until = Date.now() + readyTimeoutMs;
      while (!(await redisPing(url, 500))) {
        if (redisProc.child.exitCode !== null || Date.now() > until) {
          throw new Error(`redis-server did not start on ${url}; last output:\n${redisProc.tail().slice(-1500)}`);
        }
        await sleep(50);
      }
      cluster.redis = { url, pid: redisProc.pid, external: false, proc: redisProc };
    }

    // ---- gateway replicas
    const ports = [];
    for (let i = 0; i < replicaCount; i++) ports.push(await freePort());
    const gatewayEnv = {
      ...baseEnv,
      HOST: '127.0.0.1',
      UPSTREAM_BASE_URL: mockUrl, // what the mock prints is its OpenAI base URL (…/v1)
      // The mock continues a partial answer, so a replica can finish a dead one's streams; a real provider may not.
      UPSTREAM_CONTINUATION: extraEnv.UPSTREAM_BASE_URL ? 'none' : 'assistant_prefix',
      REDIS_URL: cluster.redis.url,
      LOG_LEVEL: 'info',
      ...extraEnv,
    };
    cluster.replicas = ports.map((p, i) => makeReplica(`gateway-${i + 1}`, p, { ...gatewayEnv, PORT: String(p) }, dir, readyTimeoutMs, stopGraceMs, procs));
    await Promise.all(cluster.replicas.map((r) => r.start()));

    // ---- nginx
    const nginxBin = wantNginx ? findNginx() : null;
    if (nginxBin) {
      const nginxPort = port === 0 ? await freePort() : port;
      const conf = join(dir, 'nginx.conf');
      mkdirSync(join(dir, 'nginx-tmp'), { mode: 0o755 });
      writeFileSync(conf, nginxConfig({ dir, port: nginxPort, replicaPorts: ports }));
      const nginxProc = startProcess('nginx', nginxBin, ['-p', dir, '-e', 'stderr', '-c', conf, '-g', `daemon off; pid ${dir}/nginx.pid; error_log stderr;`], {
        env: baseEnv,
        logFile: join(dir, 'nginx-error.log'),
      });
      procs.push(nginxProc);
      const url = `http://127.0.0.1:${nginxPort}`;
      const until = Date.now() + readyTimeoutMs;
      for (;;) {
        if (nginxProc.child.exitCode !== null || nginxProc.child.signalCode !== null) {
          throw new Error(`nginx exited before it was ready${port === 8080 ? ' (port 8080 taken? set CLUSTER_PORT)' : ''}:\n${nginxProc.tail().slice(-1500)}`);
        }
        const ok = await httpGet(`${url}/healthz`, 500).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) break;
        if (Date.now() > until) throw new Error(`nginx not ready at ${url} after ${readyTimeoutMs} ms:\n${nginxProc.tail().slice(-1500)}`);
        await sleep(50);
      }
      cluster.nginx = { url, pid: nginxProc.pid, config: conf, accessLog: join(dir, 'nginx-access.log'), errorLog: nginxProc.logFile, proc: nginxProc };
      cluster.entry = url;
    } else {
      cluster.entry = cluster.replicas[0].url;
    }
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

function makeReplica(name, port, env, dir, readyTimeoutMs, stopGraceMs, procs) {
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, `${name}.log`);
  const lines = new Set();
  let generation = 0;
  const replica = {
    name,
    port,
    url,
    logFile,
    proc: null,
    get pid() {
      return replica.proc?.pid;
    },
    get running() {
      const c = replica.proc?.child;
      return Boolean(c && c.exitCode === null && c.signalCode === null);
    },
    /** Spawns the process (again, on the same port) and resolves once it logged its address. */
    async start() {
      if (replica.running) throw new Error(`${name} is already running (pid ${replica.pid})`);
      generation++;
      const proc = startProcess(name, process.execPath, [SERVER], {
        env,
        logFile,
        onLine: (l) => lines.forEach((f) => f(l)),
      });
      if (generation > 1) {
        const i = procs.indexOf(replica.proc);
        if (i !== -1) procs.splice(i, 1);
      }
      replica.proc = proc;
      procs.push(proc);
      const match = (line) => {
        try {
          return JSON.parse(line).address ?? undefined;
        } catch {
          return undefined;
        }
      };
      await waitForLine(proc, lines, match, readyTimeoutMs, name);
    },
    /** Sends `signal` to the replica's process group. */
    kill(signal = 'SIGTERM') {
      if (replica.proc) killGroup(replica.proc.pid, signal);
    },
    /** The exit of the current process: { code, signal }; rejects after timeoutMs. */
    async waitExit(timeoutMs = 30_000) {
      const r = await Promise.race([replica.proc.exited, deadline(timeoutMs)]);
      if (r === null) throw new Error(`${name} (pid ${replica.pid}) still running after ${timeoutMs} ms`);
      return r;
    },
    /** SIGTERM (drain) if running, wait for the exit, start again on the same port. */
    async restart(timeoutMs = 30_000) {
      if (replica.running) {
        replica.kill('SIGTERM');
        await replica.waitExit(timeoutMs);
      }
      await replica.start();
    },
    async stop() {
      await stopProcess(replica.proc, stopGraceMs);
    },
  };
  return replica;
}

/** Reads a log file the cluster wrote ('' when missing). */
export function readLog(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
