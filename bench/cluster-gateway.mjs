// The gateway as several processes behind one port (node:cluster: the primary accepts
// and hands connections round-robin to BENCH_WORKERS workers, each a whole `dist/server.js`).
// What a second process buys on the machine at hand:
//   BENCH_GATEWAY_SCRIPT=bench/cluster-gateway.mjs \
//   BENCH_GATEWAY_ENV="BENCH_WORKERS=2 REDIS_URL=redis://127.0.0.1:6379/14" BENCH_ONLY=BC node bench/run.js
// Replicas share streams (resume, Idempotency-Key, limits) only through REDIS_URL, as two
// containers would; run.js counts the CPU and RSS of the primary and every worker.
import cluster from 'node:cluster';

const workers = Math.min(Math.max(Number(process.env.BENCH_WORKERS ?? 2) || 2, 1), 16);

if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let stopping = false;
  const stop = (signal) => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  cluster.on('exit', (w, code) => {
    if (!stopping) {
      process.stderr.write(`cluster-gateway: worker ${w.process.pid} exited (${code}); stopping\n`);
      stop('SIGTERM');
    }
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(stopping ? 0 : 1);
  });
} else {
  await import('../dist/server.js');
}
