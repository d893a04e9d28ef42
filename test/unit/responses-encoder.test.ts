import t from 'tap';
import type { Response as OpenAIResponse } from 'openai/resources/responses/responses';
import { ResponsesEncoder } from '../../src/dialects/responses/stream-encoder.js';
import type { ResponseObject } from '../../src/dialects/responses/response-object.js';
import { chunk, clock, encode, meta, parseFrames, recordings, usageChunk, type Recording } from '../helpers/responses-fixtures.js';

/** Every way to cut `items` into consecutive non-empty batches (2^(n-1) of them). */
function* splits<T>(items: readonly T[]): Generator<T[][]> {
  const n = items.length;
  for (let mask = 0; mask < 1 << Math.max(0, n - 1); mask++) {
    const out: T[][] = [[]];
    for (let i = 0; i < n; i++) {
      out[out.length - 1]!.push(items[i]!);
      if (i < n - 1 && mask & (1 << i)) out.push([]);
    }
    yield out;
  }
}

const types = (rec: Recording) => parseFrames(encode(rec).text).map((e) => e.event);
const finalOf = (rec: Recording) => encode(rec).encoder.snapshot();

t.test('the same chunks cut into batches in every way give byte-identical frames', async (t) => {
  for (const [name, rec] of Object.entries(recordings)) {
    const whole = encode(rec).text;
    let cuts = 0;
    for (const batches of splits(rec.chunks)) {
      // Empty reads happen too (a read of only comments): they must change nothing.
      const withEmpty = [[], ...batches.flatMap((b) => [b, []])];
      if (encode(rec, withEmpty).text !== whole) t.fail(`${name}: batches ${JSON.stringify(batches.map((b) => b.length))} differ`);
      cuts++;
    }
    t.equal(cuts, 2 ** (rec.chunks.length - 1), `${name}: all ${cuts} cuts compared`);
  }
});

t.test('ids run consecutively from firstId and equal sequence_number; type matches event', async (t) => {
  for (const [name, rec] of Object.entries(recordings)) {
    const { text, count } = encode(rec, [rec.chunks], 41);
    const events = parseFrames(text);
    t.equal(events.length, count, `${name}: count is the number of frames`);
    events.forEach((e, i) => {
      if (e.id !== 41 + i || e.data.sequence_number !== e.id || e.data.type !== e.event) t.fail(`${name}: event ${i} ${JSON.stringify(e)}`);
    });
    t.equal(events[0]!.id, 41);
  }
});

t.test('text only: the message item opens, streams and closes, then response.completed', async (t) => {
  const rec = recordings.textOnly;
  t.same(types(rec), [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.delta',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const events = parseFrames(encode(rec).text);
  const created = events[0]!.data.response as ResponseObject;
  t.match(created, { id: 'resp_0123456789abcdef0123456789abcdef', object: 'response', status: 'in_progress', output: [], usage: null, model: 'mock-1' });
  const text = 'Hello world — "quoted"\nline\u2028é😀';
  t.same(
    events.filter((e) => e.event === 'response.output_text.delta').map((e) => e.data.delta),
    ['Hello', ' wor', 'ld — "quoted"\nline\u2028é😀'],
  );
  t.same(events[4]!.data, {
    type: 'response.output_text.delta',
    item_id: 'msg_0123456789abcdef0123456789abcdef_0',
    output_index: 0,
    content_index: 0,
    delta: 'Hello',
    logprobs: [],
    sequence_number: 5,
  });
  t.match(events[7]!.data, { type: 'response.output_text.done', text, output_index: 0, content_index: 0 });
  t.match(events[9]!.data, { item: { type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [] }] } });
  const final = finalOf(rec);
  t.same(events.at(-1)!.data.response, final, 'the final event carries snapshot()');
  t.match(final, { status: 'completed', completed_at: 1_700_000_200, error: null, incomplete_details: null });
  t.same(final.usage, { input_tokens: 12, input_tokens_details: { cached_tokens: 3, cache_write_tokens: 0 }, output_tokens: 4, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 16 });
});

t.test('text then a tool call: the message closes before the function_call item opens', async (t) => {
  const rec = recordings.textThenTool;
  t.same(types(rec), [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.output_item.added',
    'response.function_call_arguments.delta',
    'response.function_call_arguments.delta',
    'response.function_call_arguments.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const events = parseFrames(encode(rec).text);
  t.same(events[9]!.data.item, {
    id: 'fc_0123456789abcdef0123456789abcdef_1',
    type: 'function_call',
    status: 'in_progress',
    arguments: '',
    call_id: 'call_A1',
    name: 'get_weather',
  });
  t.match(events[12]!.data, { item_id: 'fc_0123456789abcdef0123456789abcdef_1', output_index: 1, name: 'get_weather', arguments: '{"city":"Paris"}' });
  const final = finalOf(rec);
  t.match(final.output, [
    { type: 'message', status: 'completed', content: [{ text: 'Let me check.' }] },
    { type: 'function_call', status: 'completed', call_id: 'call_A1', name: 'get_weather', arguments: '{"city":"Paris"}' },
  ]);
  t.equal(final.status, 'completed');
});

t.test('parallel tool calls with interleaved arguments: each item gets its own deltas', async (t) => {
  const events = parseFrames(encode(recordings.parallelTools).text);
  const deltas = events.filter((e) => e.event === 'response.function_call_arguments.delta').map((e) => [e.data.output_index, e.data.delta]);
  t.same(deltas, [
    [0, '{"city":'],
    [1, '{"tz":'],
    [0, '"Paris"}'],
    [1, '"CET"'],
    [1, '}'],
  ]);
  t.same(
    events.filter((e) => e.event === 'response.output_item.added').map((e) => (e.data.item as { call_id: string }).call_id),
    ['call_P1', 'call_P2'],
  );
  t.same(
    events.filter((e) => e.event === 'response.function_call_arguments.done').map((e) => [e.data.output_index, e.data.arguments]),
    [
      [0, '{"city":"Paris"}'],
      [1, '{"tz":"CET"}'],
    ],
  );
  t.notOk(events.some((e) => e.event.startsWith('response.content_part')), 'no message item for a null content');
  t.match(finalOf(recordings.parallelTools).output, [
    { type: 'function_call', name: 'get_weather', arguments: '{"city":"Paris"}' },
    { type: 'function_call', name: 'get_time', arguments: '{"tz":"CET"}' },
  ]);
});

t.test('finish length → response.incomplete (max_output_tokens), items incomplete', async (t) => {
  const events = parseFrames(encode(recordings.lengthFinish).text);
  t.equal(events.at(-1)!.event, 'response.incomplete');
  const final = finalOf(recordings.lengthFinish);
  t.match(final, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, completed_at: null, usage: { output_tokens: 3 } });
  t.equal(final.output[0]!.status, 'incomplete');
  t.match(events.find((e) => e.event === 'response.output_item.done')!.data, { item: { status: 'incomplete' } });
});

t.test('content_filter → incomplete; a clean end with no finish_reason → completed', async (t) => {
  const filtered = finalOf({ chunks: [chunk({ content: 'x' }), chunk({}, 'content_filter')], end: { kind: 'done', finish_reason: null, usage: null } });
  t.match(filtered, { status: 'incomplete', incomplete_details: { reason: 'content_filter' }, usage: null });
  const unmarked = finalOf({ chunks: [chunk({ content: 'x' })], end: { kind: 'done', finish_reason: null, usage: null } });
  t.match(unmarked, { status: 'completed', output: [{ status: 'completed' }] });
});

t.test('an error end → response.failed with the error; open items left unfinished, no done events', async (t) => {
  const rec = recordings.errorEnd;
  t.same(types(rec).slice(-3), ['response.output_text.delta', 'response.output_text.delta', 'response.failed']);
  const final = finalOf(rec);
  t.match(final, {
    status: 'failed',
    error: { code: 'upstream_error', message: 'upstream main failed (500): boom' },
    completed_at: null,
    output: [{ type: 'message', status: 'incomplete', content: [{ text: 'Partial answ' }] }],
    usage: null,
  });
  const cancelled = finalOf({ chunks: rec.chunks, end: { kind: 'error', type: 'cancelled', message: 'cancelled' } });
  t.match(cancelled, { status: 'cancelled', error: null });
});

t.test('usage: from the usage chunk (choices: []) when the end carries none', async (t) => {
  const final = finalOf({ chunks: [chunk({ content: 'hi' }), chunk({}, 'stop'), usageChunk(7, 1, 2)], end: { kind: 'done', finish_reason: 'stop', usage: null } });
  t.same(final.usage, { input_tokens: 7, input_tokens_details: { cached_tokens: 2, cache_write_tokens: 0 }, output_tokens: 1, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 8 });
  const events = parseFrames(encode({ chunks: [usageChunk(7, 1)], end: { kind: 'done', finish_reason: 'stop', usage: null } }).text);
  t.same(
    events.map((e) => e.event),
    ['response.created', 'response.in_progress', 'response.completed'],
    'a usage-only chunk makes no events',
  );
});

t.test('snapshot(): the response as it stands, not changed by later chunks; the final object after close', async (t) => {
  const enc = new ResponsesEncoder(meta({ instructions: 'Be brief.', metadata: { k: 'v' } }), clock);
  enc.open(1);
  enc.batch(recordings.textThenTool.chunks.slice(0, 2), 3);
  const mid = enc.snapshot();
  t.match(mid, { status: 'in_progress', instructions: 'Be brief.', metadata: { k: 'v' }, output: [{ type: 'message', status: 'in_progress', content: [{ text: 'Let me ' }] }] });
  enc.batch(recordings.textThenTool.chunks.slice(2), 10);
  t.equal(mid.output[0]!.type === 'message' && mid.output[0]!.content[0]!.text, 'Let me ', 'an earlier snapshot is a copy');
  t.equal(enc.snapshot().output.length, 2);
  const closing = enc.close(recordings.textThenTool.end, 20);
  t.ok(closing.count > 0);
  t.equal(enc.snapshot().status, 'completed');
  t.same(enc.close(recordings.textThenTool.end, 30), { text: '', count: 0 }, 'a second close writes nothing');
  t.same(enc.batch([chunk({ content: 'late' })], 30), { text: '', count: 0 }, 'chunks after the end are ignored');
});

t.test('a tool call without an id or with its name late still makes a well-formed item', async (t) => {
  const final = finalOf({
    chunks: [chunk({ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }), chunk({ tool_calls: [{ index: 0, function: { name: 'late' } }] }), chunk({}, 'tool_calls')],
    end: { kind: 'done', finish_reason: 'tool_calls', usage: null },
  });
  t.match(final.output, [{ type: 'function_call', call_id: 'call_0123456789abcdef0123456789abcdef_0', name: 'late', arguments: '{}' }]);
});

t.test('text after tool calls closes them and opens a new message item', async (t) => {
  const rec = {
    chunks: [chunk({ tool_calls: [{ index: 0, id: 'c1', function: { name: 'f', arguments: '{}' } }] }), chunk({ content: 'after' }), chunk({}, 'stop')],
    end: { kind: 'done', finish_reason: 'stop', usage: null },
  } satisfies Recording;
  const events = parseFrames(encode(rec).text);
  const first = events.findIndex((e) => e.event === 'response.function_call_arguments.done');
  const added = events.findIndex((e, i) => i > 2 && e.event === 'response.output_item.added' && (e.data.item as { type: string }).type === 'message');
  t.ok(first > 0 && first < added, 'the call closed before the message opened');
  t.match(finalOf(rec).output, [{ type: 'function_call' }, { type: 'message', content: [{ text: 'after' }] }]);
});

t.test('the response object has every field the openai SDK type requires', async (t) => {
  const final = finalOf(recordings.textThenTool);
  // Compile-time: the object (with the SDK-computed output_text) is an openai `Response`.
  const typed: OpenAIResponse = { ...final, output_text: '', error: null, usage: final.usage ?? undefined };
  t.ok(typed);
  // Run-time: required keys present (the type check cannot see JSON).
  for (const k of ['id', 'created_at', 'error', 'incomplete_details', 'instructions', 'metadata', 'model', 'object', 'output', 'parallel_tool_calls', 'temperature', 'tool_choice', 'tools', 'top_p']) {
    t.ok(k in final, k);
  }
});

t.test('each event carries exactly the fields its openai SDK type declares (all required there)', async (t) => {
  const lifecycle = ['response', 'sequence_number', 'type'];
  const fields: Record<string, string[]> = {
    'response.created': lifecycle,
    'response.in_progress': lifecycle,
    'response.completed': lifecycle,
    'response.incomplete': lifecycle,
    'response.failed': lifecycle,
    'response.output_item.added': ['item', 'output_index', 'sequence_number', 'type'],
    'response.output_item.done': ['item', 'output_index', 'sequence_number', 'type'],
    'response.content_part.added': ['content_index', 'item_id', 'output_index', 'part', 'sequence_number', 'type'],
    'response.content_part.done': ['content_index', 'item_id', 'output_index', 'part', 'sequence_number', 'type'],
    'response.output_text.delta': ['content_index', 'delta', 'item_id', 'logprobs', 'output_index', 'sequence_number', 'type'],
    'response.output_text.done': ['content_index', 'item_id', 'logprobs', 'output_index', 'sequence_number', 'text', 'type'],
    'response.function_call_arguments.delta': ['delta', 'item_id', 'output_index', 'sequence_number', 'type'],
    'response.function_call_arguments.done': ['arguments', 'item_id', 'name', 'output_index', 'sequence_number', 'type'],
  };
  const seen = new Set<string>();
  for (const rec of Object.values(recordings)) {
    for (const e of parseFrames(encode(rec).text)) {
      seen.add(e.event);
      t.same(Object.keys(e.data).sort(), fields[e.event], e.event);
    }
  }
  t.same([...seen].sort(), Object.keys(fields).sort(), 'the recordings produce every event type');
});
