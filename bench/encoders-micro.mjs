// Micro-benchmark of what each client API costs per upstream chunk in the gateway's
// relay loop (Generation.accept), without sockets: the chat completions path frames
// the upstream's JSON as it came; the Responses and Messages encoders parse every
// chunk and write their own events.
//
//   npm run build --silent && node bench/encoders-micro.mjs [streams]
//
// Each stream is the fake upstream's (bench/fake-upstream.mjs): 100 chunks, of which
// 98 carry text, then the usage chunk the gateway asks for, in 16 KB upstream writes
// (one batch per write, as the relay reads them). Per chunk, every case runs
// chunkFields (the relay's scan for finish_reason and usage) and ends in the
// Buffer the stream log keeps. Cases:
//   chat        dataFrames() over each batch (the chat completions path)
//   responses   a ResponsesEncoder per stream: open, batch per write, close
//   messages    a MessagesEncoder per stream: open, batch per write, close
//   JSON.parse  JSON.parse of every chunk, and nothing else
// Each case repeats until ~1.5 s (max 15 rounds) after one warm-up round; bounded (~8 s).
// Prints ns per text chunk (the unit of scenario F) and µs per stream.
import { performance } from 'node:perf_hooks';
import { chunkFields } from '../dist/upstream/chunk-fields.js';
import { dataFrames } from '../dist/sse/frame.js';
import { ResponsesEncoder } from '../dist/dialects/responses/stream-encoder.js';
import { echoOf } from '../dist/dialects/responses/response-object.js';
import { MessagesEncoder } from '../dist/dialects/messages/stream-encoder.js';

const STREAMS = Math.min(Math.max(Number(process.argv[2] ?? 1000) || 1000, 100), 20_000);
const CHUNKS = 100;
const TEXT_CHUNKS = CHUNKS - 2;
const WRITE = 16_384;
const CASE_BUDGET_MS = 1500;
const MAX_ROUNDS = 15;
const tBegin = performance.now();

// The fake upstream's chunks, byte for byte (bench/fake-upstream.mjs, gap 0, no stamp).
const ID = 'chatcmpl-bench0123456789abcdef';
const WORDS = [' the', ' gateway', ' streams', ' each', ' token', ' as', ' an', ' event', ' while', ' model', ' thinks'];
function chunk(i, n) {
  const delta = i === 0 ? '{"role":"assistant","content":""}' : i === n - 1 ? '{}' : `{"content":${JSON.stringify(WORDS[i % WORDS.length])}}`;
  const finish = i === n - 1 ? '"stop"' : 'null';
  return `{"id":"${ID}","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]}`;
}
const usage = `{"id":"${ID}","object":"chat.completion.chunk","created":1700000000,"model":"bench-model","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":${CHUNKS},"total_tokens":${CHUNKS + 5}}}`;

/** One stream's chunks, grouped as the upstream writes them (up to 16 KB of frames per write). */
const batches = [];
{
  let batch = [];
  let size = 0;
  for (let i = 0; i < CHUNKS; i++) {
    const c = chunk(i, CHUNKS);
    batch.push(c);
    size += c.length + 8;
    if (size >= WRITE) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
  }
  batch.push(usage);
  batches.push(batch);
}
const END = { kind: 'done', finish_reason: 'stop', usage: { prompt_tokens: 5, completion_tokens: CHUNKS, total_tokens: CHUNKS + 5 } };
const ECHO = echoOf({ model: 'bench-model', input: 'benchmark', stream: true });

function scan(batch) {
  for (let i = 0; i < batch.length; i++) chunkFields(batch[i]);
}

/** Runs one stream through an encoder the way Generation does; returns the bytes it framed. */
function encode(encoder) {
  let id = 1;
  let out = encoder.open(id);
  let bytes = Buffer.from(out.text).length;
  id += out.count;
  for (const batch of batches) {
    scan(batch);
    out = encoder.batch(batch, id);
    if (out.count > 0) bytes += Buffer.from(out.text).length;
    id += out.count;
  }
  out = encoder.close(END, id);
  return bytes + Buffer.from(out.text).length;
}

const cases = [
  [
    'chat',
    () => {
      let bytes = 0;
      for (let s = 0; s < STREAMS; s++) {
        let id = 1;
        for (const batch of batches) {
          scan(batch);
          // The usage-only chunk is hidden from a client that did not ask for it.
          const kept = batch[batch.length - 1] === usage ? batch.slice(0, -1) : batch;
          bytes += Buffer.from(dataFrames(id, kept)).length;
          id += kept.length;
        }
      }
      return bytes;
    },
  ],
  [
    'responses',
    () => {
      let bytes = 0;
      for (let s = 0; s < STREAMS; s++) bytes += encode(new ResponsesEncoder({ id: 'resp_bench0123456789abcdefgh', model: 'bench-model', createdAt: 1700000000, echo: ECHO }));
      return bytes;
    },
  ],
  [
    'messages',
    () => {
      let bytes = 0;
      for (let s = 0; s < STREAMS; s++) bytes += encode(new MessagesEncoder({ id: 'msg_bench0123456789abcdefgh', model: 'bench-model', inputTokens: 3, stopSequences: [] }));
      return bytes;
    },
  ],
  [
    'JSON.parse',
    () => {
      let n = 0;
      for (let s = 0; s < STREAMS; s++) for (const batch of batches) for (let i = 0; i < batch.length; i++) n += JSON.parse(batch[i]).choices.length;
      return n;
    },
  ],
];

console.log(`node ${process.version}; ${STREAMS.toLocaleString('en-US')} streams of ${CHUNKS} chunks (${TEXT_CHUNKS} with text) + usage, ${batches.length} writes each`);
console.log(['case'.padEnd(10), 'ns/text chunk (best)', 'ns/text chunk (median)', 'µs/stream (median)', 'bytes/stream', 'rounds'].join(' | '));
for (const [name, fn] of cases) {
  const bytes = fn(); // warm-up round
  const times = [];
  const t0 = performance.now();
  while (times.length < MAX_ROUNDS && performance.now() - t0 < CASE_BUDGET_MS) {
    const s = performance.now();
    fn();
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const ns = (ms) => ((ms * 1e6) / (STREAMS * TEXT_CHUNKS)).toFixed(0);
  const perStream = name === 'JSON.parse' ? 'n/a' : String(Math.round(bytes / STREAMS));
  console.log(
    [name.padEnd(10), ns(times[0]).padStart(20), ns(median).padStart(22), ((median * 1000) / STREAMS).toFixed(1).padStart(18), perStream.padStart(12), String(times.length).padStart(6)].join(' | '),
  );
}
console.log(`took ${((performance.now() - tBegin) / 1000).toFixed(1)} s`);
