// Fake OpenAI-compatible upstream for the benchmark (its own process).
//
//   POST /v1/chat/completions  {"stream":true, "bench":{"chunks":N,"gap_ms":G,"id":"...","stamp":true}}
//       (without "bench": the last message's text after "bench:", e.g. "benchmark bench:{"chunks":100}",
//       the one field the gateway's translations from the Responses and Messages APIs carry through)
//       -> N `data: {chat.completion.chunk}\n\n` events, then `data: [DONE]\n\n`.
//          gap_ms 0: written as fast as the socket takes them (write()'s return
//          value and 'drain' honoured); gap_ms > 0: one event, then wait G ms.
//          stamp: each chunk carries "bench_t" = the wall-clock ms of its write
//          (performance.timeOrigin + performance.now()), for latency measurements.
//          stream_options.include_usage: a usage chunk before [DONE], as OpenAI does.
//   GET  /v1/models             -> bench-model
//   GET  /stats                 -> {requests, completed, aborted, aborts: {benchId: closeTimeMs}}
//   POST /stats/reset
//
// Prints one JSON line {"port": N} on stdout once listening on 127.0.0.1.
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

const MAX_CHUNKS = 100_000;
const MAX_GAP_MS = 10_000;
const now = () => performance.timeOrigin + performance.now();

let stats = { requests: 0, completed: 0, aborted: 0 };
let aborts = new Map(); // bench id -> time the upstream saw the client close

const CREATED = 1_700_000_000;
const ID = 'chatcmpl-bench0123456789abcdef';
const WORDS = [' the', ' gateway', ' streams', ' each', ' token', ' as', ' an', ' event', ' while', ' model', ' thinks'];

/** One chat.completion.chunk, ~200 bytes, like a real provider's. */
function chunk(i, n, stamp) {
  const delta = i === 0 ? '{"role":"assistant","content":""}' : i === n - 1 ? '{}' : `{"content":${JSON.stringify(WORDS[i % WORDS.length])}}`;
  const finish = i === n - 1 ? '"stop"' : 'null';
  const t = stamp ? `,"bench_t":${now().toFixed(3)}` : '';
  return `{"id":"${ID}","object":"chat.completion.chunk","created":${CREATED},"model":"bench-model","system_fingerprint":"fp_bench"${t},"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]}`;
}

function usageChunk(n) {
  return `{"id":"${ID}","object":"chat.completion.chunk","created":${CREATED},"model":"bench-model","system_fingerprint":"fp_bench","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":${n},"total_tokens":${n + 5}}}`;
}

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function clampInt(v, def, max) {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.min(Math.trunc(n), max) : def;
}

/** The bench options: `body.bench`, else the JSON after `bench:` in the last message's text. */
function benchOf(body) {
  if (body.bench) return body.bench;
  const last = Array.isArray(body.messages) ? body.messages[body.messages.length - 1] : null;
  const c = last?.content;
  const text = typeof c === 'string' ? c : Array.isArray(c) ? c.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('') : '';
  const at = text.indexOf('bench:');
  if (at === -1) return {};
  try {
    const b = JSON.parse(text.slice(at + 6));
    return b !== null && typeof b === 'object' ? b : {};
  } catch {
    return {};
  }
}

function stream(req, res, body) {
  const b = benchOf(body);
  const n = Math.max(1, clampInt(b.chunks, 10, MAX_CHUNKS));
  const gap = clampInt(b.gap_ms, 0, MAX_GAP_MS);
  const stamp = b.stamp === true;
  const usage = body.stream_options?.include_usage === true;
  const benchId = typeof b.id === 'string' ? b.id : null;
  let timer = null;

  res.on('close', () => {
    if (timer) clearTimeout(timer);
    if (res.writableFinished) stats.completed++;
    else {
      stats.aborted++;
      if (benchId !== null) aborts.set(benchId, now());
    }
  });

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();

  let i = 0;
  const finish = (pending = '') => {
    res.end(pending + (usage ? 'data: ' + usageChunk(n) + '\n\n' : '') + 'data: [DONE]\n\n');
  };

  if (gap > 0) {
    const step = () => {
      timer = null;
      if (res.destroyed) return;
      const ev = 'data: ' + chunk(i, n, stamp) + '\n\n';
      i++;
      if (i >= n) finish(ev);
      else {
        res.write(ev);
        timer = setTimeout(step, gap);
      }
    };
    step();
    return;
  }

  // gap 0: as fast as the socket takes it. Events are batched into writes of
  // up to ~16 KB; keep writing while write() returns true, else wait for 'drain'.
  const pump = () => {
    while (!res.destroyed) {
      let out = '';
      while (i < n && out.length < 16_384) out += 'data: ' + chunk(i++, n, stamp) + '\n\n';
      if (i >= n) return finish(out);
      if (!res.write(out)) return void res.once('drain', pump);
    }
  };
  pump();
}

const server = createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0];
  if (req.method === 'GET' && path === '/v1/models') {
    req.resume();
    return json(res, 200, { object: 'list', data: [{ id: 'bench-model', object: 'model', created: CREATED, owned_by: 'bench' }] });
  }
  if (req.method === 'GET' && path === '/stats') {
    req.resume();
    return json(res, 200, { ...stats, aborts: Object.fromEntries(aborts) });
  }
  if (req.method === 'POST' && path === '/stats/reset') {
    req.resume();
    stats = { requests: 0, completed: 0, aborted: 0 };
    aborts = new Map();
    return json(res, 200, { ok: true });
  }
  if (req.method !== 'POST' || path !== '/v1/chat/completions') {
    req.resume();
    return json(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } });
  }
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      return json(res, 400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
    }
    stats.requests++;
    if (body.stream !== true) {
      return json(res, 400, { error: { message: 'the bench upstream only streams', type: 'invalid_request_error' } });
    }
    stream(req, res, body);
  });
});
// Relays keep pooled connections to us; do not close them under their feet.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0), backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(0));
// Never outlive the orchestrator by much.
if (process.env.BENCH_MAX_LIFETIME_MS) setTimeout(() => process.exit(0), Number(process.env.BENCH_MAX_LIFETIME_MS)).unref();
