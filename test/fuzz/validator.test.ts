import fc from 'fast-check';
import t from 'tap';
import { ErrorCodes, type ErrorCode } from '../../src/errors.js';
import { FAST_MOCK, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { STACK_TRACE } from '../helpers/http.js';

/**
 * Property-based fuzzing of POST /v1/chat/completions through the production
 * app (app.inject, no sockets): whatever the body, the gateway answers with a
 * status from the contract, never a 5xx, every error in OpenAI's shape with
 * no stack trace, and every 200 a `chat.completion` (or, for `stream: true`,
 * a well-framed event stream). Seeds are fixed: a failure replays exactly.
 */

const SEED = 20_240_611;
const RUNS = { json: 1000, mutated: 3000, raw: 1500, deep: 60 };
const ALLOWED = new Set([200, 400, 404, 413, 415, 429]);
const SSE_LINE = /^(id: \d+|data: (\{.*\}|\[DONE\]))$/;

/** A JSON fragment written verbatim: number literals JSON.stringify cannot produce, deep nesting. */
class Raw {
  constructor(readonly text: string) {}
}

/** JSON text of a value that may hold Raw fragments and own `__proto__` keys (Object.keys sees them). */
function toJson(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return '[' + v.map(toJson).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return '{' + Object.keys(o).map((k) => JSON.stringify(k) + ':' + toJson(o[k])).join(',') + '}';
  }
  return JSON.stringify(v) ?? 'null';
}

/** Sets an own property, even `__proto__` (plain assignment would replace the prototype). */
function define(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A deep copy that keeps own `__proto__` keys as data, so mutations never touch fast-check's values. */
function copy(v: unknown): unknown {
  if (v instanceof Raw) return v;
  if (Array.isArray(v)) return v.map(copy);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) define(out, k, copy((v as Record<string, unknown>)[k]));
    return out;
  }
  return v;
}

const nestedArrays = (depth: number) => new Raw('['.repeat(depth) + ']'.repeat(depth));
const nestedObjects = (depth: number) => new Raw('{"a":'.repeat(depth) + '1' + '}'.repeat(depth));

// ---------------------------------------------------------------------------
// Arbitraries

/** Text that has bitten parsers, framers and loggers before. */
const DANGEROUS = [
  '', ' ', '\n', '\r\n', '\u0000', '\u2028\u2029', '\ud800', '\udfff', '\ufeff', '🌍', 'e\u0301', '"', '\\', '</script>',
  '__proto__', 'constructor', 'prototype', 'NaN', 'Infinity', '-1', '1e309', '0x10', 'null', 'true', '{}', '[]',
  'data: [DONE]\n\n', 'event: error\n', 'id: 9\n', '%s%d%o', '${x}', 'SELECT 1;', 'sk-test-not-a-key-0000000000',
];

const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
  { weight: 2, arbitrary: fc.constantFrom(...DANGEROUS) },
);
const nonEmpty = fc.string({ minLength: 1, maxLength: 16 });
const fnName = fc.stringMatching(/^[a-zA-Z0-9_-]{1,64}$/);

const textPart = fc.record({ type: fc.constant('text'), text });
const userPart = fc.oneof(
  textPart,
  fc.record(
    { type: fc.constant('image_url'), image_url: fc.record({ url: fc.webUrl(), detail: fc.constantFrom('auto', 'low', 'high') }, { requiredKeys: ['url'] }) },
  ),
  fc.record({ type: fc.constant('input_audio'), input_audio: fc.record({ data: fc.base64String({ maxLength: 24 }), format: fc.constantFrom('wav', 'mp3') }) }),
  fc.record({ type: fc.constant('file'), file: fc.record({ file_id: nonEmpty, filename: nonEmpty }, { requiredKeys: [] }) }),
);
const toolCall = fc.record({
  id: nonEmpty,
  type: fc.constant('function'),
  function: fc.record({ name: nonEmpty, arguments: fc.json({ maxDepth: 2 }) }),
});

const message = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'developer'), content: fc.oneof(text, fc.array(textPart, { minLength: 1, maxLength: 3 })) }),
  fc.record(
    { role: fc.constant('user'), content: fc.oneof(text, fc.array(userPart, { minLength: 1, maxLength: 3 })), name: nonEmpty },
    { requiredKeys: ['role', 'content'] },
  ),
  fc.record(
    { role: fc.constant('assistant'), content: fc.option(text), refusal: fc.option(text), tool_calls: fc.array(toolCall, { maxLength: 2 }) },
    { requiredKeys: ['role'] },
  ),
  fc.record({ role: fc.constant('tool'), content: text, tool_call_id: nonEmpty }),
);

const tool = fc.record({
  type: fc.constant('function'),
  function: fc.record(
    { name: fnName, description: text, parameters: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) },
    { requiredKeys: ['name'] },
  ),
});

/** Bodies a real client could send: valid as generated; mutations make most of them invalid. */
const chatBody = fc.record(
  {
    model: fc.oneof({ weight: 8, arbitrary: fc.constantFrom('mock-1', 'mock-1-mini') }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) }),
    messages: fc.array(message, { minLength: 1, maxLength: 4 }),
    stream: fc.constantFrom(false, null),
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    top_p: fc.double({ min: 0, max: 1, noNaN: true }),
    max_tokens: fc.integer({ min: 1, max: 64 }),
    max_completion_tokens: fc.option(fc.integer({ min: 1, max: 64 })),
    stop: fc.oneof(text, fc.array(text, { maxLength: 4 })),
    n: fc.constant(1),
    seed: fc.integer(),
    user: fc.string({ maxLength: 30 }),
    presence_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    frequency_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    logit_bias: fc.dictionary(fc.string({ maxLength: 6 }), fc.integer({ min: -100, max: 100 }), { maxKeys: 3 }),
    logprobs: fc.boolean(),
    top_logprobs: fc.integer({ min: 0, max: 20 }),
    tools: fc.array(tool, { maxLength: 3 }),
    tool_choice: fc.oneof(fc.constantFrom('none', 'auto', 'required'), fc.record({ type: fc.constant('function'), function: fc.record({ name: fnName }) })),
    parallel_tool_calls: fc.boolean(),
    response_format: fc.oneof(
      fc.record({ type: fc.constantFrom('text', 'json_object') }),
      fc.record({ type: fc.constant('json_schema'), json_schema: fc.record({ name: nonEmpty, strict: fc.boolean() }) }),
    ),
    metadata: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
    top_k: fc.integer(), // a provider extension: passes through
  },
  { requiredKeys: ['model', 'messages'] },
);

/** Values a mutation puts where they do not belong. */
const weird: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, '', [], {}, [[]], [{}]),
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e309', '-0', '0x1F', ' 1 ', '1_000', '9007199254740993', 'true', 'null'),
  fc.constantFrom('1e309', '-1e309', '1E+400', '-0', '0.0000000000000000000001e-400', '123456789012345678901234567890').map((s) => new Raw(s)),
  fc.bigInt().map((n) => new Raw(n.toString())),
  fc.double(),
  fc.integer(),
  text,
  fc.jsonValue({ maxDepth: 3 }),
  fc.object({ maxDepth: 2, values: [fc.string(), fc.integer(), fc.constant(null)] }),
  fc.integer({ min: 1, max: 1000 }).map(nestedArrays),
  fc.integer({ min: 1, max: 1000 }).map(nestedObjects),
);

const keyName = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'),
  fc.constantFrom('model', 'messages', 'role', 'content', 'stream', 'type', 'function', 'name', 'text', 'tool_calls'),
  fc.string({ maxLength: 10 }),
);

type Mutation =
  | { op: 'delete'; at: number }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'add'; at: number; key: string; value: unknown }
  | { op: 'wrap'; at: number; inArray: boolean }
  | { op: 'huge'; at: number; size: number; char: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: weird }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('add' as const), at: fc.nat(), key: keyName, value: weird }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('wrap' as const), at: fc.nat(), inArray: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('huge' as const), at: fc.nat(), size: fc.constantFrom(5_000, 200_000, 1_100_000), char: fc.constantFrom('x', 'é', '€', '🌍', '"', '\n') }),
  },
);

/** Every node's path; [] is the root. */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (v instanceof Raw || v === null || typeof v !== 'object') return out;
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out);
  return out;
}

function get(root: unknown, path: (string | number)[]): unknown {
  let v = root;
  for (const p of path) v = (v as Record<string | number, unknown>)[p];
  return v;
}

/** Applies the mutations in order to a copy of `body`. */
function mutate(body: unknown, mutations: Mutation[]): unknown {
  let root = copy(body);
  for (const m of mutations) {
    const all = paths(root);
    const path = all[m.at % all.length]!;
    const target = get(root, path);
    if (m.op === 'add') {
      if (target !== null && typeof target === 'object' && !Array.isArray(target) && !(target instanceof Raw)) {
        define(target as Record<string, unknown>, m.key, m.value);
      }
      continue;
    }
    let next: unknown;
    if (m.op === 'replace') next = m.value;
    else if (m.op === 'wrap') next = m.inArray ? [target] : { value: target };
    else if (m.op === 'huge') next = m.char.repeat(m.size);
    else next = undefined;
    if (path.length === 0) {
      root = next === undefined ? {} : next;
      continue;
    }
    const parent = get(root, path.slice(0, -1)) as Record<string | number, unknown> | unknown[];
    const key = path[path.length - 1]!;
    if (next === undefined) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete (parent as Record<string, unknown>)[key];
    } else if (Array.isArray(parent)) parent[key as number] = next;
    else define(parent as Record<string, unknown>, String(key), next);
  }
  return root;
}

/** A duplicated key spliced in after the root's `{`: JSON.parse keeps the last one. */
const duplicate = fc.option(fc.record({ key: keyName, value: weird, first: fc.boolean() }), { freq: 4 });

function withDuplicate(json: string, dup: { key: string; value: unknown; first: boolean } | null): string {
  if (!dup || !json.startsWith('{') || json === '{}') return json;
  const pair = JSON.stringify(dup.key) + ':' + toJson(dup.value);
  return dup.first ? '{' + pair + ',' + json.slice(1) : json.slice(0, -1) + ',' + pair + '}';
}

/** Text edits that break JSON syntax, on an otherwise valid body. */
const textEdit = fc.record({
  kind: fc.constantFrom('truncate', 'delete', 'insert', 'replace', 'prefix', 'suffix'),
  at: fc.nat(),
  piece: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), fc.constantFrom('{', '}', '[', ']', ',', ':', '"', '\\', '\u0000', '\ufeff', 'NaN', '//', '/*')),
});

function edit(json: string, e: { kind: string; at: number; piece: string }): string {
  const i = e.at % (json.length + 1);
  switch (e.kind) {
    case 'truncate':
      return json.slice(0, i);
    case 'delete':
      return json.slice(0, i) + json.slice(i + 1);
    case 'insert':
      return json.slice(0, i) + e.piece + json.slice(i);
    case 'replace':
      return json.slice(0, i) + e.piece + json.slice(i + e.piece.length);
    case 'prefix':
      return e.piece + json;
    default:
      return json + e.piece;
  }
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/JSON',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'text/plain',
  'text/plain; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/vnd.api+json',
  ';;',
  null,
] as const;

/** Known bodies that are not JSON objects, or not JSON at all. */
const RAW_TEXTS = [
  '', ' ', '\n', 'null', 'true', '0', '-0', 'NaN', '1e309', '"s"', '[]', '{', '}', '{}', '{"a":}', "{'model':'mock-1'}",
  '\ufeff{"model":"mock-1","messages":[{"role":"user","content":"hi"}]}',
  '{"model":"mock-1","messages":[{"role":"user","content":"hi"}]}garbage',
  '{"model":"mock-1","messages":[{"role":"user","content":"hi"}]}{"model":"mock-1"}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"model":"mock-1","messages":[{"role":"user","content":"\\ud800"}]}',
  '{"model":"mock-1","messages":[{"role":"user","content":"\\u0000"}]}',
  '{"model":"mock-1","messages":[{"role":"user","content":"hi"}],"max_tokens":1e309}',
  '{"model":"mock-1","messages":[{"role":"user","content":"hi"}],"max_tokens":-1e309}',
  '{"model":"mock-1","messages":[{"role":"user","content":"hi"}],"temperature":-0}',
];

// ---------------------------------------------------------------------------
// The checks

interface Sent {
  payload: string | Buffer;
  contentType: string | null;
}

/** What is wrong with the answer to `sent`, or null. */
function problem(sent: Sent, status: number, headers: Record<string, unknown>, body: string): string | null {
  if (!ALLOWED.has(status)) return `status ${status} is not one of ${[...ALLOWED].join(', ')}`;
  const type = String(headers['content-type'] ?? '');
  if (status === 200 && type.startsWith('text/event-stream')) {
    // Only a body asking for stream: true may get a stream.
    if (!body.endsWith('data: [DONE]\n\n')) return 'a 200 event stream that does not end with data: [DONE]';
    const bad = body.split('\n').find((l) => l !== '' && !SSE_LINE.test(l));
    return bad === undefined ? null : `event stream line ${JSON.stringify(bad.slice(0, 120))}`;
  }
  if (!type.startsWith('application/json')) return `content-type ${JSON.stringify(type)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return 'the body is not JSON';
  }
  if (status === 200) {
    const c = parsed as { object?: unknown; choices?: { message?: { role?: unknown } }[] };
    if (c.object !== 'chat.completion') return `200 body object is ${JSON.stringify(c.object)}`;
    if (!Array.isArray(c.choices) || c.choices[0]?.message?.role !== 'assistant') return '200 body has no assistant message';
    return null;
  }
  const e = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (!e || typeof e !== 'object') return 'error body has no error object';
  if (typeof e.message !== 'string' || typeof e.type !== 'string' || typeof e.code !== 'string') {
    return 'error.message, error.type and error.code must be strings';
  }
  const known = (ErrorCodes as Record<string, { status: number; type: string } | undefined>)[e.code];
  if (!known) return `error.code ${JSON.stringify(e.code)} is not in the catalogue`;
  if (known.type !== e.type) return `error.type ${e.type} does not match code ${e.code}`;
  if (known.status !== status && (e.code as ErrorCode) !== 'invalid_body') return `status ${status} does not match code ${e.code}`;
  // The gateway may echo the client's own text (a field name): only text the client did not send counts.
  const echo = typeof sent.payload === 'string' ? sent.payload : sent.payload.toString('latin1');
  if (STACK_TRACE.test(body) && !STACK_TRACE.test(echo)) return `stack-trace-like text in ${body.slice(0, 300)}`;
  return null;
}

/** Statuses seen, so the run can show its generators reached every branch. */
const seen = new Map<number, number>();

async function sendRaw(gw: RunningGateway, sent: Sent): Promise<number> {
  const res = await gw.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: sent.contentType === null ? {} : { 'content-type': sent.contentType },
    payload: sent.payload,
  });
  const p = problem(sent, res.statusCode, res.headers, res.body);
  if (p) throw new Error(`${p}\n  status ${res.statusCode}, body ${res.body.slice(0, 300)}`);
  seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
  return res.statusCode;
}

/** Mock directives in the prompt pick faults (5xx on purpose): random text must not spell one. */
const noDirective = (s: string | Buffer) => !(typeof s === 'string' ? s : s.toString('latin1')).includes('[mock:');

// ---------------------------------------------------------------------------

t.test('fuzz: POST /v1/chat/completions never answers 5xx, and always in the contract’s shape', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, rateLimit: { max: 1e9, windowMs: 60_000 }, logLevel: 'warn' });
  t.teardown(() => gw.close());
  const json = (payload: string): Sent => ({ payload, contentType: 'application/json' });
  const started = performance.now();

  await t.test('(a) any JSON value as the body', async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }), fc.boolean(), async (a, b, pickA) => {
        const payload = toJson(pickA ? a : b);
        fc.pre(noDirective(payload));
        await sendRaw(gw, json(payload));
      }),
      { numRuns: RUNS.json, seed: SEED },
    );
    t.pass(`${RUNS.json} random JSON values`);
  });

  await t.test('(b) plausible chat bodies, mutated', async (t) => {
    let ok = 0;
    await fc.assert(
      fc.asyncProperty(chatBody, fc.array(mutation, { maxLength: 4 }), duplicate, async (body, mutations, dup) => {
        const payload = withDuplicate(toJson(mutate(body, mutations)), dup);
        fc.pre(noDirective(payload));
        if ((await sendRaw(gw, json(payload))) === 200) ok++;
      }),
      { numRuns: RUNS.mutated, seed: SEED },
    );
    // A generator that never produced a valid body would test only the error path.
    t.ok(ok > RUNS.mutated / 10, `${ok} of ${RUNS.mutated} mutated bodies were valid and answered 200`);
  });

  await t.test('(c) raw bytes, broken JSON and odd content types', async (t) => {
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.constantFrom(...RAW_TEXTS),
      fc.tuple(chatBody, fc.array(textEdit, { minLength: 1, maxLength: 3 })).map(([body, edits]) => edits.reduce(edit, toJson(body))),
    );
    const contentType = fc.oneof({ weight: 4, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) });
    await fc.assert(
      fc.asyncProperty(payload, contentType, async (payload, contentType) => {
        fc.pre(noDirective(payload));
        await sendRaw(gw, { payload, contentType });
      }),
      { numRuns: RUNS.raw, seed: SEED },
    );
    t.pass(`${RUNS.raw} raw payloads`);
  });

  await t.test('deeply nested values anywhere in a valid body', async (t) => {
    const where = fc.constantFrom('message', 'tool-parameters', 'top-level', 'metadata');
    const depth = fc.integer({ min: 1, max: 100_000 });
    const body = (place: string, depth: number, arrays: boolean): string => {
      const v = arrays ? nestedArrays(depth) : nestedObjects(depth);
      const msg: Record<string, unknown> = { role: 'user', content: 'hi' };
      const b: Record<string, unknown> = { model: 'mock-1', messages: [msg] };
      if (place === 'message') msg.extra = v;
      else if (place === 'tool-parameters') b.tools = [{ type: 'function', function: { name: 'f', parameters: { p: v } } }];
      else if (place === 'metadata') b.metadata = { k: v };
      else b.extra = v;
      return toJson(b);
    };
    const result = await fc.check(
      fc.asyncProperty(where, depth, fc.boolean(), async (place, depth, arrays) => {
        await sendRaw(gw, json(body(place, depth, arrays)));
      }),
      { numRuns: RUNS.deep, seed: SEED },
    );
    const detail = result.failed
      ? `seed ${result.seed}, path ${result.counterexamplePath}: ${JSON.stringify(result.counterexample)} (place, depth, arrays) — ${String(result.errorInstance).split('\n').slice(0, 2).join(' ')}`
      : '';
    t.notOk(result.failed, `a body with deep nesting is answered without a 5xx ${detail}`);
  });

  t.comment(`statuses seen: ${[...seen].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(', ')}`);
  for (const status of [200, 400, 404, 413, 415]) t.ok(seen.has(status), `the generators reached a ${status}`);
  t.ok(performance.now() - started < 60_000, 'the fuzz run stays bounded');
  const errors = gw.logs.lines.filter((l) => typeof l.level === 'number' && l.level >= 50);
  t.same(errors, [], 'no error was logged: nothing reached the unhandled-error path');
});
