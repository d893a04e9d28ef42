// Micro-benchmark of the gateway's SSE parser and framer alone (no sockets).
//
//   npm run build --silent && node bench/sse-micro.mjs [events]
//
// Records an upstream stream of N chat.completion.chunk events (default 200k,
// ~210 bytes each, some multi-byte UTF-8), cuts it into 16 KB reads like a
// socket would deliver, and times:
//   parse          SseParser.push() over the reads (sink only counts)
//   parse+frame    + toSingleLineJson() + dataFrame() per event: the gateway's hot path
//   parse+frame CRLF  the same stream with \r\n line endings
//   frame only     toSingleLineJson() + dataFrame() over the pre-split payloads
// Each case repeats until ~1.5 s (max 15 rounds) after one warm-up round;
// the whole run is bounded (~15 s). Prints ns per event and MB/s of input.
import { performance } from 'node:perf_hooks';
import { SseParser } from '../dist/sse/parser.js';
import { dataFrame, toSingleLineJson } from '../dist/sse/frame.js';

const EVENTS = Math.min(Math.max(Number(process.argv[2] ?? 200_000) || 200_000, 1000), 2_000_000);
const READ = 16 * 1024;
const CASE_BUDGET_MS = 1500;
const MAX_ROUNDS = 15;
const TOTAL_BUDGET_MS = 15_000;
const tBegin = performance.now();

const WORDS = [' the', ' gateway', ' streams', ' each', ' token', ' café', ' naïve', ' —', ' 日本', ' 🙂', ' model', '\n'];
function payload(i) {
  const delta = i === 0 ? '{"role":"assistant","content":""}' : `{"content":${JSON.stringify(WORDS[i % WORDS.length])}}`;
  return `{"id":"chatcmpl-9x8y7z6w5v4u3t2s1r0q","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0123456789","choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":null}]}`;
}

const payloads = Array.from({ length: EVENTS }, (_, i) => payload(i));
function record(eol) {
  const text = payloads.map((p) => `data: ${p}${eol}${eol}`).join('') + `data: [DONE]${eol}${eol}`;
  const bytes = Buffer.from(text, 'utf8');
  const reads = [];
  for (let o = 0; o < bytes.length; o += READ) reads.push(bytes.subarray(o, Math.min(o + READ, bytes.length)));
  return { bytes: bytes.length, reads };
}
const lf = record('\n');
const crlf = record('\r\n');

function parseOnly({ reads }) {
  let n = 0;
  const p = new SseParser({ onEvent: () => void n++ });
  for (const r of reads) p.push(r);
  p.end();
  return n;
}

function parseAndFrame({ reads }) {
  let n = 0;
  let bytes = 0;
  const p = new SseParser({
    onEvent: (data) => {
      if (data === '[DONE]') return;
      const f = dataFrame(++n, toSingleLineJson(data));
      bytes += f.length;
    },
  });
  for (const r of reads) p.push(r);
  p.end();
  if (bytes === 0) throw new Error('nothing framed');
  return n + 1; // + [DONE]
}

function frameOnly() {
  let bytes = 0;
  for (let i = 0; i < payloads.length; i++) bytes += dataFrame(i + 1, toSingleLineJson(payloads[i])).length;
  if (bytes === 0) throw new Error('nothing framed');
  return payloads.length + 1;
}

const cases = [
  ['parse', () => parseOnly(lf), lf.bytes],
  ['parse+frame', () => parseAndFrame(lf), lf.bytes],
  ['parse+frame CRLF', () => parseAndFrame(crlf), crlf.bytes],
  ['frame only', frameOnly, lf.bytes],
];

console.log(`node ${process.version}; ${EVENTS.toLocaleString('en-US')} events, ${(lf.bytes / 1e6).toFixed(1)} MB in ${lf.reads.length} reads of 16 KB`);
console.log(['case'.padEnd(18), 'ns/event (best)', 'ns/event (median)', 'MB/s (best)', 'rounds'].join(' | '));
for (const [name, fn, bytes] of cases) {
  if (performance.now() - tBegin > TOTAL_BUDGET_MS) {
    console.log(`${name.padEnd(18)} | skipped: time budget spent`);
    continue;
  }
  const expect = EVENTS + 1;
  const got = fn(); // warm-up round, and a correctness check
  if (got !== expect) throw new Error(`${name}: parsed ${got} events, expected ${expect}`);
  const times = [];
  const t0 = performance.now();
  while (times.length < MAX_ROUNDS && performance.now() - t0 < CASE_BUDGET_MS) {
    const s = performance.now();
    fn();
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  const best = times[0];
  const median = times[Math.floor(times.length / 2)];
  const ns = (ms) => ((ms * 1e6) / expect).toFixed(1);
  console.log(
    [name.padEnd(18), ns(best).padStart(15), ns(median).padStart(17), ((bytes / 1e6) / (best / 1000)).toFixed(0).padStart(11), String(times.length).padStart(6)].join(' | '),
  );
}
console.log(`took ${((performance.now() - tBegin) / 1000).toFixed(1)} s`);
