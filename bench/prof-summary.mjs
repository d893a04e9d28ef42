// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive
// time per function, as shares of all samples. Usage:
//   node bench/prof-summary.mjs [--window=FROM-TO] FILE.cpuprofile [top=40] [filter-regex]
// The filter keeps rows whose "function file:line" matches (e.g. "dist/").
// --window keeps the samples taken between FROM and TO, microseconds on the
// profile's own clock (CLOCK_MONOTONIC, as process.hrtime): load.mjs reports
// each throughput window's as window_mono_us, and run.js prints F's.
import { readFileSync } from 'node:fs';

const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const [file, topArg, filterArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const windowArg = flags.find((f) => f.startsWith('--window='));
const win = windowArg ? windowArg.slice(9).split('-').map(Number) : null;
if (!file || (win && (win.length !== 2 || !win.every(Number.isFinite)))) {
  process.stderr.write('usage: node bench/prof-summary.mjs [--window=FROM_US-TO_US] FILE.cpuprofile [top] [filter-regex]\n');
  process.exit(1);
}
const top = Number(topArg ?? 40);
const filter = filterArg ? new RegExp(filterArg) : null;
const prof = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const hits = new Map();
let total = 0;
let t = prof.startTime;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas?.[i] ?? 0;
  if (win && (t < win[0] || t > win[1])) continue;
  hits.set(prof.samples[i], (hits.get(prof.samples[i]) ?? 0) + 1);
  total++;
}
if (total === 0) {
  process.stderr.write(`no samples${win ? ' in the window' : ''}\n`);
  process.exit(1);
}

const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/') + ':' + (f.lineNumber + 1) : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

const self = new Map();
const incl = new Map();
for (const [id, count] of hits) {
  const n = byId.get(id);
  const l = label(n);
  self.set(l, (self.get(l) ?? 0) + count);
  // Inclusive: once per distinct label on the stack (recursion counted once).
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cl = label(byId.get(cur));
    if (seen.has(cl)) continue;
    seen.add(cl);
    incl.set(cl, (incl.get(cl) ?? 0) + count);
  }
}

const pct = (c) => ((100 * c) / total).toFixed(1).padStart(5) + ' %';
const show = (title, m) => {
  console.log(`\n${title} (of ${total} samples)`);
  const rows = [...m].filter(([l]) => !filter || filter.test(l)).sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [l, c] of rows) console.log(`${pct(c)}  ${l}`);
};
show('self', self);
show('inclusive', incl);
