// `npm run cluster`: docker-compose.yml's topology on 127.0.0.1 without containers —
// the mock upstream, Redis, two gateway replicas sharing REDIS_URL, nginx in front.
//
//   CLUSTER_PORT            nginx's port (default 8080)
//   CLUSTER_KEEP_LOGS=1     keep the temp dir with the logs after exit
//   GATEWAY_API_KEYS, RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_MS, TOKENS_PER_MINUTE, … (PASSTHROUGH_ENV)
//                           handed to both replicas when set
//
// Ctrl-C (or SIGTERM) stops every process it started.
import { PASSTHROUGH_ENV, startCluster } from './cluster-lib.mjs';

const port = Number(process.env.CLUSTER_PORT ?? 8080);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`cluster: CLUSTER_PORT must be a port number (got ${JSON.stringify(process.env.CLUSTER_PORT)})`);
  process.exit(1);
}
const env = {};
for (const k of PASSTHROUGH_ENV) if (process.env[k]) env[k] = process.env[k];

let cluster;
let stopping = false;
async function shutdown(signal, code) {
  if (stopping) return;
  stopping = true;
  if (signal) console.log(`\n${signal}: stopping the cluster…`);
  try {
    await cluster?.stop();
  } finally {
    process.exit(code);
  }
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void shutdown(sig, 0));

try {
  cluster = await startCluster({ port, env, keepDir: Boolean(process.env.CLUSTER_KEEP_LOGS) });
} catch (e) {
  console.error(`cluster: ${e.message}`);
  process.exit(1);
}

const row = (name, url, pid, note = '') => console.log(`${name.padEnd(14)} ${url.padEnd(28)} pid ${String(pid ?? '-').padEnd(8)}${note}`);
row('mock-upstream', cluster.mock.url, cluster.mock.pid, `log ${cluster.mock.logFile}`);
row('redis', cluster.redis.url, cluster.redis.pid, cluster.redis.external ? 'already running, reused' : 'started for this cluster');
for (const r of cluster.replicas) row(r.name, r.url, r.pid, `log ${r.logFile}`);
if (cluster.nginx) row('nginx', cluster.nginx.url, cluster.nginx.pid, `access log ${cluster.nginx.accessLog}`);
else console.log('nginx          not installed (apt-get install nginx): the entry point is gateway-1, no load balancing');
console.log(`\nentry: ${cluster.entry}   (Ctrl-C stops everything; ${process.env.CLUSTER_KEEP_LOGS ? `the logs stay in ${cluster.dir}` : 'the logs go too unless CLUSTER_KEEP_LOGS=1'})`);
if (Object.keys(env).length) console.log(`replicas got: ${Object.keys(env).join(', ')}`);

// A process that dies on its own is reported (not restarted): the point is to see it.
for (const proc of [cluster.mock.proc, cluster.redis.proc, cluster.nginx?.proc, ...cluster.replicas.map((r) => r.proc)]) {
  proc?.exited.then(({ code, signal }) => {
    if (!stopping) console.log(`${proc.name} (pid ${proc.pid}) exited (${code ?? signal}); see ${proc.logFile}`);
  });
}
