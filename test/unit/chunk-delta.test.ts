import { deepStrictEqual, equal, ok } from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { TextChunkReader, isTextOnly, shapeOf } from '../../src/dialects/chunk-delta.js';
import { MessagesEncoder } from '../../src/dialects/messages/stream-encoder.js';
import { ResponsesEncoder } from '../../src/dialects/responses/stream-encoder.js';
import type { StreamEnd } from '../../src/streams/stream-log.js';
import { rng } from '../../src/upstream/mock/model.js';
import { clock, meta } from '../helpers/responses-fixtures.js';
import { writeJsonString, type JsonStringStyle } from '../helpers/json-string-writer.js';
import { parsesDuring } from '../helpers/parse-count.js';

/**
 * The encoders' fast path for text-only chunks must change nothing: for
 * streams of random chunks (text, role, tool calls, usage, finish reasons,
 * refusals, duplicate keys, decoys, cut or padded text) written in several
 * styles, each encoder's frames and final object are byte-identical with the
 * fast path on and off, and every chunk the reader takes is one JSON.parse
 * reads as text only, with the same text.
 */

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The definition: the content of a chunk both encoders read as nothing but text; null for any other chunk. */
function textOnlyContent(chunk: unknown): string | null {
  if (!isObj(chunk) || (chunk.usage !== undefined && chunk.usage !== null)) return null;
  const choices = chunk.choices;
  if (!Array.isArray(choices) || choices.length !== 1 || !isObj(choices[0])) return null;
  const choice = choices[0];
  if (![undefined, null, 0].includes(choice.index as never) || (choice.finish_reason !== undefined && choice.finish_reason !== null)) return null;
  const delta = choice.delta;
  if (!isObj(delta) || typeof delta.content !== 'string') return null;
  return [delta.tool_calls, delta.refusal].every((v) => v === undefined || v === null) ? delta.content : null;
}

// --- how a stream's chunks are written: one style per stream, as one server writes them ---

interface Style extends JsonStringStyle {
  comma: string;
  colon: string;
  /** Inside braces and brackets. */
  pad: string;
  shuffleKeys: boolean;
}

/** A key written before the real one of the same name (JSON.parse keeps the last): `content` + DUP is written `content`. */
const DUP = '\u0000dup';

function write(v: Json, style: Style, next: () => number): string {
  if (v === null || typeof v !== 'object') return typeof v === 'string' ? writeJsonString(v, style, next, false) : JSON.stringify(v);
  const { comma, pad } = style;
  if (Array.isArray(v)) return v.length === 0 ? '[]' : '[' + pad + v.map((x) => write(x, style, next)).join(comma) + pad + ']';
  const keys = Object.keys(v);
  if (style.shuffleKeys) {
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [keys[i], keys[j]] = [keys[j]!, keys[i]!];
    }
    // A duplicate stays before its real key.
    keys.sort((a, b) => Number(b.endsWith(DUP)) - Number(a.endsWith(DUP)));
  }
  if (keys.length === 0) return '{}';
  const entries = keys.map((k) => writeJsonString(k.endsWith(DUP) ? k.slice(0, -DUP.length) : k, style, next, true) + style.colon + write(v[k]!, style, next));
  return '{' + pad + entries.join(comma) + pad + '}';
}

const styleArb: fc.Arbitrary<Style> = fc.record({
  comma: fc.constantFrom(',', ', ', ',\n  '),
  colon: fc.constantFrom(':', ': ', ' : '),
  pad: fc.constantFrom('', '', ' ', '\n'),
  shuffleKeys: fc.boolean(),
  escapeKeys: fc.constantFrom('none', 'none', 'some', 'all'),
  asciiOnly: fc.boolean(),
  oddEscapes: fc.boolean(),
  upperHex: fc.boolean(),
});

const PLAIN: Style = { comma: ',', colon: ':', pad: '', shuffleKeys: false, escapeKeys: 'none', asciiOnly: false, oddEscapes: false, upperHex: false };

/** The named styles, then the generated mix. Every chunk of a stream is written with the same seed. */
const writers: [string, (x: Json, style: Style, seed: number) => string][] = [
  ['compact', (x) => JSON.stringify(x)],
  ['JSON.stringify(x, null, 1)', (x) => JSON.stringify(x, null, 1)],
  ['Python json.dumps', (x, _s, seed) => write(x, { ...PLAIN, comma: ', ', colon: ': ', asciiOnly: true }, rng(seed))],
  ['keys shuffled', (x, _s, seed) => write(x, { ...PLAIN, shuffleKeys: true }, rng(seed))],
  ['keys \\u-escaped', (x, _s, seed) => write(x, { ...PLAIN, escapeKeys: 'all' }, rng(seed))],
  ['any mix', (x, style, seed) => write(x, style, rng(seed))],
];

// --- what a stream holds ---

/** Text that looks like chunk structure from inside a string. */
const DECOY_TEXT = ['usage', '"usage": {"prompt_tokens": 1}', '","finish_reason":"stop', '"}}],"usage":{"total_tokens":1}}', '\\u0063ontent', 'content":"x', '{"delta":{"content":"y"}}'];

const contentArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 10 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom('"', '\\', '\n', '\t', '\u0001', '\u007f', '\u2028', '/', 'é', '日', '🌍', '\ud800', '\udc00'), maxLength: 8 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 13, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(...DECOY_TEXT) },
);

/** Fields a server adds that no encoder reads, holding the names the encoders do read. */
const extraArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.record({ content: contentArb, delta: fc.record({ content: contentArb }), usage: fc.record({ total_tokens: fc.nat() }) }),
  fc.constant<Json>({ choices: [{ index: 0, finish_reason: 'stop' }], finish_reason: 'length' }),
);

interface Plan {
  style: Style;
  seed: number;
  id: string;
  usageNull: boolean;
  obfuscation: boolean;
  fingerprint: Json | undefined;
  extra: Json | undefined;
  choiceExtra: Record<string, Json>;
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  style: styleArb,
  seed: fc.integer(),
  id: fc.string({ maxLength: 12 }),
  usageNull: fc.boolean(),
  obfuscation: fc.boolean(),
  fingerprint: fc.option(fc.oneof(fc.constant(null), fc.string({ maxLength: 8 })), { nil: undefined }),
  extra: fc.option(extraArb, { nil: undefined }),
  choiceExtra: fc.constantFrom<Record<string, Json>>({}, { native_finish_reason: null }, { stop_reason: null, matched_stop: null }),
});

/** How one chunk differs from a plain text chunk. */
interface Variation {
  content?: Json;
  role?: boolean;
  dup?: Json;
  reasoning?: Json;
  refusal?: Json;
  toolCalls?: Json;
  index?: Json;
  finish?: Json;
  stopReason?: Json;
  usage?: Json;
  choices?: 'one' | 'two' | 'twoAtZero' | 'none';
  created: number;
  obfuscation: string;
  /** Changes made to the written text. */
  text?: 'cut' | 'trailing' | 'escapedKey' | 'space';
}

const usageArb = fc.record({ prompt_tokens: fc.nat(99), completion_tokens: fc.nat(99), total_tokens: fc.nat(199) });
const toolCallsArb = fc.oneof(
  fc.constant<Json>([{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '' } }]),
  fc.string({ maxLength: 6 }).map((a): Json => [{ index: 0, function: { arguments: a } }]),
  fc.constant<Json>([]),
);

const variationArb: fc.Arbitrary<Variation> = fc
  .record({ created: fc.constantFrom(1_700_000_000, 1_700_000_001, 7), obfuscation: fc.string({ maxLength: 6 }), content: contentArb })
  .chain(({ created, obfuscation, content }) => {
    const base = { created, obfuscation, content };
    return fc.oneof(
      { weight: 24, arbitrary: fc.constant<Variation>(base) },
      { weight: 2, arbitrary: fc.constant<Variation>({ ...base, role: true, content: '', refusal: null }) },
      { weight: 1, arbitrary: fc.constant<Variation>({ ...base, content: '' }) },
      { weight: 2, arbitrary: toolCallsArb.map((toolCalls): Variation => ({ ...base, content: undefined, toolCalls })) },
      { weight: 1, arbitrary: toolCallsArb.map((toolCalls): Variation => ({ ...base, toolCalls })) },
      { weight: 2, arbitrary: fc.constantFrom('stop', 'length', 'content_filter').map((finish): Variation => ({ ...base, finish, stopReason: '###' })) },
      { weight: 1, arbitrary: fc.constant<Variation>({ ...base, content: undefined, finish: 'stop' }) },
      { weight: 2, arbitrary: usageArb.map((usage): Variation => ({ ...base, usage })) },
      { weight: 1, arbitrary: usageArb.map((usage): Variation => ({ ...base, usage, choices: 'none' })) },
      { weight: 1, arbitrary: fc.constantFrom<Json>(1, 2, null, '0').map((index): Variation => ({ ...base, index })) },
      { weight: 1, arbitrary: fc.constantFrom<Variation['choices']>('two', 'twoAtZero').map((choices): Variation => ({ ...base, choices })) },
      { weight: 1, arbitrary: fc.constantFrom<Json>('I cannot', '', 5).map((refusal): Variation => ({ ...base, refusal })) },
      { weight: 1, arbitrary: fc.constantFrom<Json>(null, 5, ['x'], { text: 'x' }).map((c): Variation => ({ ...base, content: c })) },
      { weight: 1, arbitrary: contentArb.map((dup): Variation => ({ ...base, dup })) },
      { weight: 1, arbitrary: contentArb.map((reasoning): Variation => ({ ...base, reasoning, content: null })) },
      { weight: 2, arbitrary: fc.constantFrom<Variation['text']>('cut', 'trailing', 'escapedKey', 'space').map((text): Variation => ({ ...base, text })) },
    );
  });

function chunkOf(plan: Plan, v: Variation): Json {
  const delta: Record<string, Json> = {};
  if (v.role) delta.role = 'assistant';
  if (v.dup !== undefined) delta['content' + DUP] = v.dup;
  if (v.content !== undefined) delta.content = v.content;
  if (v.reasoning !== undefined) delta.reasoning_content = v.reasoning;
  if (v.refusal !== undefined) delta.refusal = v.refusal;
  if (v.toolCalls !== undefined) delta.tool_calls = v.toolCalls;
  const choice: Record<string, Json> = { index: v.index === undefined ? 0 : v.index, delta, logprobs: null, finish_reason: v.finish ?? null, ...plan.choiceExtra };
  if (v.stopReason !== undefined) choice.stop_reason = v.stopReason;
  const choices: Json[] =
    v.choices === 'none' ? [] : v.choices === 'two' ? [choice, { ...choice, index: 1 }] : v.choices === 'twoAtZero' ? [choice, { ...choice, delta: { content: 'second' } }] : [choice];
  const chunk: Record<string, Json> = { id: plan.id, object: 'chat.completion.chunk', created: v.created, model: 'gpt-x' };
  if (plan.fingerprint !== undefined) chunk.system_fingerprint = plan.fingerprint;
  chunk.choices = choices;
  if (v.usage !== undefined) chunk.usage = v.usage;
  else if (plan.usageNull) chunk.usage = null;
  if (plan.extra !== undefined) chunk.x_extra = plan.extra;
  if (plan.obfuscation) chunk.obfuscation = v.obfuscation;
  return chunk;
}

function textOf(plan: Plan, v: Variation, writeChunk: (x: Json, style: Style, seed: number) => string): string {
  const text = writeChunk(chunkOf(plan, v), plan.style, plan.seed);
  switch (v.text) {
    case 'cut':
      return text.slice(0, -1);
    case 'trailing':
      return text + (v.created === 7 ? ' x' : ',');
    case 'escapedKey':
      return text.replace('"content"', '"\\u0063ontent"');
    case 'space':
      return text.replace('"content"', ' "content" ');
    default:
      return text;
  }
}

const endArb = fc.constantFrom<StreamEnd>(
  { kind: 'done', finish_reason: null, usage: null },
  { kind: 'done', finish_reason: 'stop', usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } },
  { kind: 'error', type: 'upstream_error', code: 'upstream_error', message: 'boom' },
);

const streamArb = fc.record({
  plan: planArb,
  variations: fc.array(variationArb, { minLength: 1, maxLength: 24 }),
  /** Batch sizes: the stream is read in these slices, over and over. */
  cuts: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
  end: endArb,
  stopSequences: fc.constantFrom([], ['###']),
});

function batches(chunks: string[], cuts: number[]): string[][] {
  const out: string[][] = [];
  for (let at = 0, i = 0; at < chunks.length; i++) {
    const n = cuts[i % cuts.length]!;
    out.push(chunks.slice(at, at + n));
    at += n;
  }
  return out;
}

interface Encoder {
  open(id: number): { text: string; count: number };
  batch(chunks: readonly string[], id: number): { text: string; count: number };
  close(end: StreamEnd, id: number): { text: string; count: number };
  snapshot(): unknown;
}

/** All the stream's frames, and the encoder's object at the end. */
function run(enc: Encoder, reads: string[][], end: StreamEnd): string {
  let text = '';
  let id = 1;
  const add = (f: { text: string; count: number }) => {
    text += f.text;
    id += f.count;
  };
  add(enc.open(id));
  for (const b of reads) add(enc.batch(b, id));
  add(enc.close(end, id));
  return text + '\n' + JSON.stringify(enc.snapshot());
}

/** Counts the chunks the fast path took while `fn` runs. */
function fastReads(fn: () => void): number {
  const read = TextChunkReader.prototype.read;
  let n = 0;
  TextChunkReader.prototype.read = function (this: TextChunkReader, json: string) {
    const took = read.call(this, json);
    if (took) n++;
    return took;
  };
  try {
    fn();
  } finally {
    TextChunkReader.prototype.read = read;
  }
  return n;
}

// --- the properties ---

for (const [name, writeChunk] of writers) {
  t.test(`${name}: the encoders write the same bytes with the fast path as without`, async (t) => {
    let chunks = 0;
    const fast = fastReads(() =>
      fc.assert(
        fc.property(streamArb, ({ plan, variations, cuts, end, stopSequences }) => {
          const texts = variations.map((v) => textOf(plan, v, writeChunk));
          chunks += texts.length;
          const reads = batches(texts, cuts);
          const responses = (fastPath: boolean) => run(new ResponsesEncoder(meta(), clock, fastPath), reads, end);
          equal(responses(true), responses(false), 'Responses');
          const messages = (fastPath: boolean) => run(new MessagesEncoder({ id: 'msg_0123', model: 'm', inputTokens: 5, stopSequences, fastPath }), reads, end);
          equal(messages(true), messages(false), 'Messages');
        }),
        { numRuns: 150 },
      ),
    );
    // Two encoders per stream, each reading about half the chunks by the fast path: a property that never took it would prove nothing.
    t.ok(fast > chunks * 0.4, `the fast path took ${fast} of ${2 * chunks} chunk reads`);
  });
}

t.test('every chunk the reader takes is one JSON.parse reads as text only, with the same text', async (t) => {
  const seen = { textOnly: 0, taken: 0, notJson: 0 };
  fc.assert(
    fc.property(streamArb, fc.integer({ min: 0, max: writers.length - 1 }), ({ plan, variations }, w) => {
      const reader = new TextChunkReader();
      for (const v of variations) {
        const json = textOf(plan, v, writers[w]![1]);
        let parsed: unknown;
        try {
          parsed = JSON.parse(json);
        } catch {
          seen.notJson++;
        }
        const content = textOnlyContent(parsed);
        if (content !== null) seen.textOnly++;
        if (reader.read(json)) {
          seen.taken++;
          ok(content !== null, json);
          equal(reader.text, content, json);
          equal(reader.literal, JSON.stringify(content), json);
        } else if (parsed !== undefined) {
          // As the encoders do: learn from what they parsed.
          reader.learn(json, parsed);
        }
      }
    }),
    { numRuns: 1500 },
  );
  t.ok(seen.taken > seen.textOnly / 2 && seen.notJson > 20, JSON.stringify(seen));
});

// --- examples ---

const OPENAI = (content: string) =>
  `{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1727,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"${'x'.repeat(content.length % 7)}"}`;
const VLLM = (content: string) =>
  `{"id":"chatcmpl-7f","object":"chat.completion.chunk","created":${1727 + content.length},"model":"meta-llama/Llama-3.1-8B","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"logprobs":null,"finish_reason":null,"stop_reason":null}]}`;
const PYTHON = (content: string) =>
  `{"id": "cmpl-1", "object": "chat.completion.chunk", "created": 1727, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ${JSON.stringify(content).replace(/[^\x00-\x7e]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))}}, "finish_reason": null}]}`;

t.test('OpenAI, vLLM and Python-style chunks: the first is parsed, the rest are read from their shape', async (t) => {
  const words = ['Hello', ' world', ' and', ' more', ' words', ' still'];
  for (const [name, make] of [['OpenAI', OPENAI], ['vLLM', VLLM], ['Python json.dumps', PYTHON]] as const) {
    const reader = new TextChunkReader();
    const first = make('Hi');
    if (!reader.read(first)) reader.learn(first, JSON.parse(first));
    const texts: string[] = [];
    const literals: string[] = [];
    const calls = parsesDuring(() => {
      for (const w of words) {
        t.ok(reader.read(make(w)), `${name}: ${w}`);
        texts.push(reader.text);
        literals.push(reader.literal);
      }
    });
    t.equal(calls, 0, `${name}: no JSON.parse for plain text`);
    t.same(texts, words);
    t.same(literals, words.map((w) => JSON.stringify(w)), `${name}: the literal as JSON.stringify writes it`);
  }
});

t.test('the shape keeps whatever an encoder reads; other values vary', async (t) => {
  const reader = new TextChunkReader();
  const first = OPENAI('a');
  reader.learn(first, JSON.parse(first));
  const base = OPENAI('xyz');
  t.ok(reader.read(base));
  const rejects: [string, string][] = [
    ['a finish reason', base.replace('"finish_reason":null', '"finish_reason":"stop"')],
    ['usage', base.replace('"usage":null', '"usage":{"total_tokens":1}')],
    ['index 1', base.replace('"index":0', '"index":1')],
    ['tool calls', base.replace('{"content":"xyz"}', '{"content":"xyz","tool_calls":[]}')],
    ['content not a string', base.replace('"content":"xyz"', '"content":null')],
    ['a key spelled another way', base.replace('"content"', '"\\u0063ontent"')],
    ['cut', base.slice(0, -1)],
    ['trailing text', base + ' x'],
    ['trailing space (valid, but not the shape: parsed)', base + ' '],
    ['a raw control character', base.replace('xyz', 'x\u0001z')],
    ['a bad escape', base.replace('xyz', 'x\\qz')],
    ['a string closed early', base.replace('"xyz"', '"x","y"')],
    ['a number where a string was', base.replace('"model":"gpt-4o-2024-08-06"', '"model":4')],
  ];
  for (const [what, text] of rejects) t.notOk(reader.read(text), what);
  const accepts: [string, string][] = [
    ['another id, created and obfuscation', base.replace('chatcmpl-B9', 'chatcmpl-C0').replace('1727', '1728.5e3').replace('"obfuscation":"', '"obfuscation":"\\u00e9')],
    ['escapes in content', base.replace('"xyz"', '"a\\"b\\\\c\\nd\\u00e9\\/\\ud83d\\ude00"')],
  ];
  for (const [what, text] of accepts) {
    t.ok(reader.read(text), what);
    t.equal(reader.text, (JSON.parse(text) as { choices: [{ delta: { content: string } }] }).choices[0].delta.content);
    t.equal(reader.literal, JSON.stringify(reader.text));
  }
});

t.test('isTextOnly and shapeOf', async (t) => {
  t.ok(isTextOnly(JSON.parse(OPENAI('x'))));
  t.notOk(isTextOnly(JSON.parse(OPENAI(''))), 'empty text: nothing to gain');
  t.notOk(isTextOnly({ choices: [{ delta: { content: 'x' } }, { delta: {} }] }));
  t.notOk(isTextOnly({ choices: [{ delta: { content: 'x', refusal: 'no' } }] }));
  t.ok(isTextOnly({ choices: [{ delta: { content: 'x', refusal: null, reasoning_content: 'r' } }] }));
  t.equal(shapeOf('{"choices":[{"delta":{"content":"a","content":"b"}}]}'), null, 'a duplicate key the encoders read: no shape');
  t.equal(
    shapeOf('{ "id" : "x", "n": -1.5e3, "choices": [{"index": 0, "delta": {"content": "a"}}]}'),
    String.raw`^\{ "id" : "(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*", "n": -?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?, "choices": \[\{"index": 0, "delta": \{"content": (?:("(?:[^"\\\x00-\x1f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff]|\\["\\bfnrt])*")|("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"))\}\}\]\}$`,
  );
});

t.test('Messages: text while a tool call is open is held, and written whole at the end, the same either way', async (t) => {
  const tool = '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}';
  const reads = [[OPENAI('before')], [OPENAI(' more')], [tool], [OPENAI('held'), OPENAI(' "text"\n')]];
  const end: StreamEnd = { kind: 'done', finish_reason: 'tool_calls', usage: null };
  const messages = (fastPath: boolean) => run(new MessagesEncoder({ id: 'msg_0123', model: 'm', inputTokens: 5, stopSequences: [], fastPath }), reads, end);
  const fast = fastReads(() => equal(messages(true), messages(false)));
  t.ok(fast >= 2, `the fast path took ${fast} chunks`);
  t.match(messages(true), /"text_delta","text":"held \\"text\\"\\n"/);
});

t.test('a stream whose text chunks keep changing shape stops learning', async (t) => {
  const reader = new TextChunkReader();
  let learnt = 0;
  for (let i = 0; i < 20; i++) {
    // A new key each time: no two chunks share a shape.
    const json = `{"k${i}":1,"choices":[{"delta":{"content":"w"}}]}`;
    if (reader.read(json)) t.fail('no shape fits');
    const before = (reader as unknown as { shape: RegExp | null }).shape;
    reader.learn(json, JSON.parse(json));
    if ((reader as unknown as { shape: RegExp | null }).shape !== before) learnt++;
  }
  t.ok(learnt <= 3, `learnt ${learnt} shapes`);
  deepStrictEqual((reader as unknown as { shape: RegExp | null }).shape, null, 'and then stopped trying');
});
