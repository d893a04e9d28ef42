// Two builds of a relay, measured the way a cut is judged here: bench/cost-per-stream.mjs
// on each in turn, alternating, PAIRS times, and the means with how often the second was
// cheaper. On a shared VM one run says little (±5 % between runs of one build, ±15 % at
// 5 chunks); a difference that holds in most pairs does.
//
//   node bench/compare-builds.mjs BEFORE_SCRIPT AFTER_SCRIPT [pairs=5] [seconds=5]
//   e.g. git worktree add /tmp/before HEAD~1 && ln -s "$PWD/node_modules" /tmp/before/ \
//        && (cd /tmp/before && npx tsc -p tsconfig.build.json --incremental false) \
//        && rm -rf dist && npm run build --silent \
//        && CHUNKS=5 node bench/compare-builds.mjs /tmp/before/dist/server.js dist/server.js 5
//
// CHUNKS, CONC and RELAY_ENV pass through to cost-per-stream.mjs (the same for both builds).
// Build both clean: the build is incremental, and a dist/ file whose source did not change
// is not written again. Bounded: each run is `seconds` + ~12 s.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const [before, after, pairsArg, secondsArg] = process.argv.slice(2);
if (!before || !after) {
  process.stderr.write('usage: node bench/compare-builds.mjs BEFORE_SCRIPT AFTER_SCRIPT [pairs=5] [seconds=5]\n');
  process.exit(1);
}
const pairs = Math.min(Math.max(Number(pairsArg ?? 5) || 5, 1), 20);
const seconds = Math.min(Math.max(Number(secondsArg ?? 5) || 5, 1), 30);

function run(script) {
  const out = execFileSync(process.execPath, [join(HERE, 'cost-per-stream.mjs'), script, String(seconds)], {
    cwd: join(HERE, '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: (seconds + 45) * 1000,
  });
  return JSON.parse(out.trim().split('\n').pop());
}

const fields = ['cpu_us_per_stream', 'main_thread_us', 'events_per_s'];
const rows = { before: [], after: [] };
for (let i = 0; i < pairs; i++) {
  rows.before.push(run(before));
  rows.after.push(run(after));
  process.stderr.write(`pair ${i + 1}/${pairs}: ${rows.before[i].cpu_us_per_stream} → ${rows.after[i].cpu_us_per_stream} µs per stream\n`);
}
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const summary = {};
for (const f of fields) {
  const b = rows.before.map((r) => r[f]);
  const a = rows.after.map((r) => r[f]);
  // Cheaper is lower CPU, but higher events/s.
  const better = a.filter((x, i) => (f === 'events_per_s' ? x > b[i] : x < b[i])).length;
  summary[f] = { before: b, after: a, change_pct: Math.round((mean(a) / mean(b) - 1) * 1000) / 10, after_better_in: `${better} of ${pairs}` };
}
console.log(JSON.stringify({ before, after, chunks: rows.before[0].chunks, pairs, seconds, ...summary }, null, 1));
