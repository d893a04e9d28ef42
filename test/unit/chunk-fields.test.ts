import { deepStrictEqual } from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { NO_FIELDS, chunkFields, isErrorChunk } from '../../src/upstream/chunk-fields.js';
import { planCompletion, rng } from '../../src/upstream/mock/model.js';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { writeJsonString, type JsonStringStyle } from '../helpers/json-string-writer.js';
import { parsesDuring } from '../helpers/parse-count.js';

/**
 * chunkFields and isErrorChunk must conclude exactly what JSON.parse and
 * reading the fields concludes, for every valid JSON text. Chunks (recorded,
 * usage, errors, decoys with the same key names nested deeper) are written in
 * many styles, and both answers compared.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What reading the parsed fields says: the definition the module must match. */
function reference(text: string): { fields: { finishReason: string | null; usage: object | null; usageOnly: boolean }; error: boolean } {
  const v: unknown = JSON.parse(text);
  const chunk = isObj(v) ? v : {};
  const choices = chunk.choices;
  const first = Array.isArray(choices) ? choices.find((c) => isObj(c) && typeof c.finish_reason === 'string') : undefined;
  const usage = isObj(chunk.usage) ? chunk.usage : null;
  return {
    fields: {
      finishReason: first ? (first as Obj).finish_reason as string : null,
      usage,
      usageOnly: usage !== null && Array.isArray(choices) && choices.length === 0,
    },
    error: 'error' in chunk && chunk.error !== null,
  };
}

// --- how a chunk is written ---

interface Style extends JsonStringStyle {
  /** Between items of an object or array, and between a key and its value. */
  comma: string;
  colon: string;
  /** Whitespace around every token, drawn per position (newlines and tabs included). */
  randomSpace: boolean;
  shuffleKeys: boolean;
  /** A decoy duplicate of a key before the real one (JSON.parse keeps the last). */
  duplicates: boolean;
}

const SPACES = ['', ' ', '  ', '\n', '\t', '\r\n', ' \n  '];

function write(v: Json, style: Style, next: () => number): string {
  const sp = () => (style.randomSpace ? SPACES[Math.floor(next() * SPACES.length)]! : '');
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? writeJsonString(v, style, next, false) : JSON.stringify(v);
  if (Array.isArray(v)) return '[' + sp() + v.map((x) => write(x, style, next)).join(sp() + style.comma + sp()) + sp() + ']';
  const keys = Object.keys(v);
  if (style.shuffleKeys) {
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
  }
  const entries: string[] = [];
  for (const k of keys) {
    const entry = (value: Json) => writeJsonString(k, style, next, true) + sp() + style.colon + sp() + write(value, style, next);
    if (style.duplicates && next() < 0.3) entries.push(entry(DECOYS[Math.floor(next() * DECOYS.length)]!));
    entries.push(entry(v[k]!));
  }
  return '{' + sp() + entries.join(sp() + style.comma + sp()) + sp() + '}';
}

/** Values a duplicate key holds before the real one. */
const DECOYS: Json[] = ['stop', { prompt_tokens: 1, completion_tokens: 1 }, { message: 'x' }, [], null];

const styleArb: fc.Arbitrary<Style> = fc.record({
  comma: fc.constantFrom(',', ', '),
  colon: fc.constantFrom(':', ': '),
  randomSpace: fc.boolean(),
  shuffleKeys: fc.boolean(),
  escapeKeys: fc.constantFrom('none', 'none', 'some', 'all'),
  asciiOnly: fc.boolean(),
  oddEscapes: fc.boolean(),
  upperHex: fc.boolean(),
  duplicates: fc.boolean(),
});

/** The named styles the issue is about, plus the generated mix. */
const writers: [string, (x: Json, style: Style, next: () => number) => string][] = [
  ['compact', (x) => JSON.stringify(x)],
  ['JSON.stringify(x, null, 1)', (x) => JSON.stringify(x, null, 1)],
  ['Python json.dumps', (x, _s, next) => write(x, { ...PLAIN, comma: ', ', colon: ': ', asciiOnly: true }, next)],
  ['keys shuffled', (x, _s, next) => write(x, { ...PLAIN, shuffleKeys: true }, next)],
  ['keys \\u-escaped', (x, _s, next) => write(x, { ...PLAIN, escapeKeys: 'all' }, next)],
  ['non-ASCII as \\uXXXX', (x, _s, next) => write(x, { ...PLAIN, asciiOnly: true }, next)],
  ['any mix', write],
];

const PLAIN: Style = { comma: ',', colon: ':', randomSpace: false, shuffleKeys: false, escapeKeys: 'none', asciiOnly: false, oddEscapes: false, upperHex: false, duplicates: false };

// --- what is written ---

const NAMES = ['finish_reason', 'usage', 'error', 'choices', 'native_finish_reason', 'finish_reasons', 'xusage', 'error_', 'delta', 'metadata'];
/** Text that looks like the fields from inside a string. */
const DECOY_TEXT = [
  'usage', 'error', 'finish_reason', 'an error occurred', 'the usage of', '"usage": {"prompt_tokens": 1}', 'usage":{"a":1}', '{"error": "x"}',
  'finish_reason":"stop', '"finish_reason": "stop"', 'usage":null', '\\u0075sage', 'error": null', 'usage\\"',
];

const textArb = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\u2028', 'é', '日', '🌍', 'u', ':', '{'), maxLength: 8 }) },
  { weight: 3, arbitrary: fc.constantFrom(...DECOY_TEXT) },
);
const keyArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...NAMES) }, { weight: 1, arbitrary: textArb });

const { value: jsonArb } = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    textArb,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(keyArb, tie('value'), { maxKeys: 4 }),
  ),
}));

/** An object holding the same key names, at some depth. */
const decoyObjArb = fc.dictionary(fc.constantFrom(...NAMES), jsonArb, { minKeys: 1, maxKeys: 3 });

const finishArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: fc.constantFrom('stop', 'length', 'tool_calls', 'content_filter', 'function_call') },
  { weight: 2, arbitrary: jsonArb },
);
const usageObjArb = fc.record(
  { prompt_tokens: fc.nat(), completion_tokens: fc.nat(), total_tokens: fc.nat(), prompt_tokens_details: fc.record({ cached_tokens: fc.nat() }) },
  { requiredKeys: ['prompt_tokens', 'completion_tokens'] },
);
const toolCallArb = fc.record(
  {
    index: fc.nat(3),
    id: fc.string({ maxLength: 10 }),
    type: fc.constant('function'),
    function: fc.record(
      {
        name: fc.constantFrom('get_weather', 'usage', 'error'),
        // Arguments as streamed (JSON text in a string), or an object some servers send.
        arguments: fc.oneof(textArb, decoyObjArb.map((o) => JSON.stringify(o)), decoyObjArb, usageObjArb.map((u) => JSON.stringify({ usage: u }))),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['index'] },
);
const deltaArb = fc.record(
  {
    role: fc.constant('assistant'),
    content: fc.oneof(textArb, fc.constant(null)),
    refusal: fc.constant(null),
    tool_calls: fc.array(toolCallArb, { maxLength: 2 }),
    metadata: decoyObjArb,
    finish_reason: finishArb,
  },
  { requiredKeys: [] },
);
const choiceArb = fc.oneof(
  { weight: 8, arbitrary: fc.record({ index: fc.nat(3), delta: deltaArb, logprobs: fc.constant(null), finish_reason: finishArb, native_finish_reason: finishArb }, { requiredKeys: ['index', 'delta'] }) },
  { weight: 1, arbitrary: jsonArb },
);
const errorArb = fc.oneof(
  fc.constant(null),
  fc.record({ message: textArb, type: fc.constantFrom('server_error', 'invalid_request_error'), code: fc.oneof(fc.constant(null), textArb) }),
  textArb,
  jsonArb,
);

const chunkArb: fc.Arbitrary<Json> = fc.record(
  {
    id: fc.string({ maxLength: 12 }),
    object: fc.constant('chat.completion.chunk'),
    created: fc.nat(),
    model: fc.constantFrom('gpt-4o', 'mock-1'),
    system_fingerprint: fc.oneof(fc.constant(null), fc.string({ maxLength: 8 })),
    choices: fc.oneof({ weight: 6, arbitrary: fc.array(choiceArb, { minLength: 1, maxLength: 3 }) }, { weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: jsonArb }),
    usage: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 3, arbitrary: usageObjArb }, { weight: 1, arbitrary: jsonArb }),
    error: errorArb,
    extra: decoyObjArb,
  },
  { requiredKeys: ['choices'] },
) as fc.Arbitrary<Json>;

/** Chunks as the mock model streams them (a recorded OpenAI style): text, tool calls, usage. */
function recorded(): Json[] {
  const req = (content: string, extra: Partial<ChatRequest> = {}) => ({ model: 'mock-1', messages: [{ role: 'user', content }], ...extra }) as ChatRequest;
  const plans = [
    planCompletion(req('hello [mock:tokens=8]'), { tokensPerSecond: 0, firstTokenDelayMs: 0 }),
    planCompletion(req('héllo 🌍 "usage" error \\ [mock:echo]'), { tokensPerSecond: 0, firstTokenDelayMs: 0 }),
    planCompletion(req('weather', { tools: [{ type: 'function', function: { name: 'get_weather' } }] } as Partial<ChatRequest>), { tokensPerSecond: 0, firstTokenDelayMs: 0 }),
  ];
  return plans.flatMap((p) => [...p.chunks, p.usageChunk]).map((c) => JSON.parse(c) as Json);
}

const anyChunkArb = fc.oneof(
  { weight: 6, arbitrary: chunkArb },
  { weight: 2, arbitrary: fc.constantFrom(...recorded()) },
  { weight: 1, arbitrary: errorArb.map((error) => ({ error })) },
  { weight: 1, arbitrary: jsonArb },
);

// --- the properties ---

for (const [name, writeChunk] of writers) {
  t.test(`${name}: the same conclusions as JSON.parse`, async (t) => {
    const seen = { finish: 0, usage: 0, usageOnly: 0, error: 0 };
    fc.assert(
      fc.property(anyChunkArb, styleArb, fc.integer(), (x, style, seed) => {
        const text = writeChunk(x, style, rng(seed));
        const want = reference(text);
        deepStrictEqual(chunkFields(text), want.fields, text);
        deepStrictEqual(isErrorChunk(text), want.error, text);
        if (want.fields.finishReason !== null) seen.finish++;
        if (want.fields.usage !== null) seen.usage++;
        if (want.fields.usageOnly) seen.usageOnly++;
        if (want.error) seen.error++;
      }),
      { numRuns: 600 },
    );
    // A property over inputs that never hold the fields would prove nothing.
    t.ok(seen.finish > 20 && seen.usage > 20 && seen.usageOnly > 5 && seen.error > 20, `the inputs exercised every field: ${JSON.stringify(seen)}`);
  });
}

t.test('multi-line data (joined data: lines) and in-band errors in any style', async (t) => {
  const error = { error: { message: 'boom', type: 'server_error', code: null } };
  const texts = [
    '{"error":{"message":"boom"}}',
    '{"error": {"message": "boom"}}',
    '{\n  "error": {\n    "message": "boom"\n  }\n}',
    '{ "\\u0065rror" : "boom" }',
    '{"error" :"boom"}',
    '{"error"\n:\n{"message": "boom"}}',
    '{"id": "x", "choices": [], "error":\r\n"boom"}',
    JSON.stringify(error, null, 1),
  ];
  for (const text of texts) t.ok(isErrorChunk(text), JSON.stringify(text));
  const notErrors = [
    '{"id":"x","choices":[{"index":0,"delta":{"content":"error"},"finish_reason":null}]}',
    '{"id": "x", "choices": [{"index": 0, "delta": {"content": "{\\"error\\": \\"no\\"}"}, "finish_reason": null}]}',
    '{"id":"x","choices":[{"index":0,"delta":{"error":{"message":"nested"}},"finish_reason":null}]}',
    '{"id":"x","error":null,"choices":[]}',
    '["error"]',
    '"error"',
    'not json {"error"',
  ];
  for (const text of notErrors) t.notOk(isErrorChunk(text), JSON.stringify(text));
});

t.test('the chunk from the issue, and text that is not JSON', async (t) => {
  t.same(chunkFields('{"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}'), { finishReason: 'stop', usage: null, usageOnly: false });
  t.same(chunkFields('{"id": "x", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}'), {
    finishReason: null,
    usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 },
    usageOnly: true,
  });
  t.same(chunkFields('{"choices" : [{"finish_reason"\t: "length"}], "usage"\n:\n{"total_tokens": 1}}'), {
    finishReason: 'length',
    usage: { total_tokens: 1 },
    usageOnly: false,
  }, 'whitespace before the colon');
  t.equal(chunkFields('{"finish_reason":"stop"'), NO_FIELDS, 'cut JSON holds nothing');
  t.equal(chunkFields(''), NO_FIELDS);
  t.notOk(isErrorChunk('{"error":'));
});

t.test('the fast path: chunks that hold no finish reason, usage or error are not parsed', async (t) => {
  const plan = planCompletion({ model: 'mock-1', messages: [{ role: 'user', content: 'hello [mock:tokens=20]' }] } as ChatRequest, { tokensPerSecond: 0, firstTokenDelayMs: 0 });
  // What OpenAI streams when usage is asked for: "usage":null on every chunk.
  const compact = plan.chunks.slice(0, -1).map((c) => c.slice(0, -1) + ',"usage":null}');
  t.ok(compact.length >= 20 && compact.every((c) => c.includes('"finish_reason":null')));
  const spaced = compact.map((c) => write(JSON.parse(c) as Json, { ...PLAIN, comma: ', ', colon: ': ' }, rng(1)));
  const escapedText = ['{"id":"x","choices":[{"index":0,"delta":{"content":"\\u65e5\\u672c \\u00e9"},"finish_reason":null}],"usage":null}'];
  const wordsInContent = ['{"id":"x","choices":[{"index":0,"delta":{"content":"the usage of error codes"},"finish_reason":null}]}'];
  for (const [name, chunks] of [['compact', compact], ['spaced', spaced], ['non-ASCII escaped', escapedText], ['the words in content', wordsInContent]] as const) {
    let nothing = 0;
    const calls = parsesDuring(() => {
      for (const c of chunks) if (chunkFields(c) === NO_FIELDS && !isErrorChunk(c)) nothing++;
    });
    t.equal(nothing, chunks.length, `${name}: nothing found`);
    t.equal(calls, 0, `${name}: no JSON.parse`);
  }
  t.equal(parsesDuring(() => chunkFields(plan.chunks.at(-1)!)), 1, 'the finish chunk is parsed, once');
  t.equal(parsesDuring(() => chunkFields(plan.usageChunk)), 1, 'the usage chunk is parsed, once');
});
