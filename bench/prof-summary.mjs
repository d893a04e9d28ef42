// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive
// time per function, as shares of all samples. Usage:
//   node bench/prof-summary.mjs FILE.cpuprofile [top=40] [filter-regex]
// The filter keeps rows whose "function file:line" matches (e.g. "dist/").
import { readFileSync } from 'node:fs';

const [file, topArg, filterArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node bench/prof-summary.mjs FILE.cpuprofile [top] [filter-regex]\n');
  process.exit(1);
}
const top = Number(topArg ?? 40);
const filter = filterArg ? new RegExp(filterArg) : null;
const prof = JSON.parse(readFileSync(file, 'utf8'));

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const hits = new Map();
for (const s of prof.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
const total = prof.samples.length;

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
