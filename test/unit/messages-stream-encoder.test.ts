import t from 'tap';
import { MessagesEncoder } from '../../src/dialects/messages/stream-encoder.js';
import { newMessageId } from '../../src/dialects/messages/message.js';
import type { StreamEnd } from '../../src/streams/stream-log.js';
import { MESSAGE_ID, MODEL, chunk, encode, encoder, frames, recordings, type Recording } from '../helpers/messages-fixtures.js';

const events = (text: string) => frames(text).map((f) => f.event);

/** Every way to cut `items` into consecutive non-empty batches (2^(n-1) of them). */
function* partitions<T>(items: readonly T[]): Generator<T[][]> {
  const n = items.length;
  if (n === 0) {
    yield [];
    return;
  }
  for (let mask = 0; mask < 1 << (n - 1); mask++) {
    const out: T[][] = [[items[0]!]];
    for (let i = 1; i < n; i++) {
      if (mask & (1 << (i - 1))) out.push([items[i]!]);
      else out[out.length - 1]!.push(items[i]!);
    }
    yield out;
  }
}

t.test('text only: the exact events, one line of JSON each, "type" naming the event', async (t) => {
  const { text, count, encoder: enc } = encode(recordings.textOnly, undefined, 7);
  const fs = frames(text);
  t.same(
    fs.map((f) => [f.id, f.event]),
    [
      [7, 'message_start'],
      [8, 'content_block_start'],
      [9, 'content_block_delta'],
      [10, 'content_block_delta'],
      [11, 'content_block_delta'],
      [12, 'content_block_stop'],
      [13, 'message_delta'],
      [14, 'message_stop'],
    ],
  );
  t.equal(count, 8);
  for (const f of fs) t.equal(f.data.type, f.event, `${f.event} carries its type`);
  t.same(fs[0]!.data, {
    type: 'message_start',
    message: {
      id: MESSAGE_ID,
      type: 'message',
      role: 'assistant',
      model: MODEL,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      stop_details: null,
      container: null,
      diagnostics: null,
      usage: {
        input_tokens: 10,
        output_tokens: 0,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: null,
        inference_geo: null,
        output_tokens_details: null,
        server_tool_use: null,
        service_tier: null,
        speed: null,
      },
    },
  });
  t.same(fs[1]!.data, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: null } });
  t.same(fs[2]!.data, { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } });
  t.same(fs[5]!.data, { type: 'content_block_stop', index: 0 });
  // The upstream's usage: 3 of the 12 prompt tokens were read from its cache.
  t.same(fs[6]!.data, {
    type: 'message_delta',
    delta: { stop_reason: 'end_turn', stop_sequence: null, stop_details: null, container: null },
    usage: { input_tokens: 9, output_tokens: 4, cache_creation_input_tokens: 0, cache_read_input_tokens: 3, output_tokens_details: null, server_tool_use: null },
  });
  t.same(fs[7]!.data, { type: 'message_stop' });
  const snap = enc.snapshot();
  t.same(snap.content, [{ type: 'text', text: 'Hello world — "quoted"\nline\u2028é😀\n\ndata: x\n\n', citations: null }]);
  t.equal(snap.stop_reason, 'end_turn');
});

t.test('text then a tool call: the text block closes, the tool block streams its arguments live', async (t) => {
  const { text, encoder: enc } = encode(recordings.textThenTool);
  const fs = frames(text);
  t.same(events(text), [
    'message_start',
    'content_block_start',
    'content_block_delta',
    'content_block_delta',
    'content_block_stop',
    'content_block_start',
    'content_block_delta',
    'content_block_delta',
    'content_block_stop',
    'message_delta',
    'message_stop',
  ]);
  t.same(fs[5]!.data, {
    type: 'content_block_start',
    index: 1,
    content_block: { type: 'tool_use', id: 'call_A1', name: 'get_weather', input: {}, caller: { type: 'direct' } },
  });
  t.same(
    fs.slice(6, 8).map((f) => f.data),
    [
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city"' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ':"Paris"}' } },
    ],
  );
  t.equal((fs[9]!.data.delta as { stop_reason: string }).stop_reason, 'tool_use');
  t.same(enc.snapshot().content, [
    { type: 'text', text: 'Let me check.', citations: null },
    { type: 'tool_use', id: 'call_A1', name: 'get_weather', input: { city: 'Paris' }, caller: { type: 'direct' } },
  ]);
});

t.test('interleaved tool calls: the first streams live, what comes while it is open is held and written whole at the end', async (t) => {
  // Before the end: only the first call's block, with only its own arguments.
  const enc = encoder(recordings.parallelInterleaved);
  const live = frames(enc.open(1).text + enc.batch(recordings.parallelInterleaved.chunks.slice(0, 8), 2).text);
  t.same(
    live.filter((f) => f.event !== 'message_start').map((f) => f.data),
    [
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'call_P1', name: 'get_weather', input: {}, caller: { type: 'direct' } } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"city":' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } },
    ],
  );

  const { text, encoder: whole } = encode(recordings.parallelInterleaved);
  const tail = frames(text).slice(4);
  t.same(
    tail.map((f) => f.data),
    [
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_P2', name: 'get_time', input: {}, caller: { type: 'direct' } } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"tz":"CET"}' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'text', text: '', citations: null } },
      { type: 'content_block_delta', index: 2, delta: { type: 'text_delta', text: 'Checking both.' } },
      { type: 'content_block_stop', index: 2 },
      tail[7]!.data,
      { type: 'message_stop' },
    ],
  );
  t.same(whole.snapshot().content, [
    { type: 'tool_use', id: 'call_P1', name: 'get_weather', input: { city: 'Paris' }, caller: { type: 'direct' } },
    { type: 'tool_use', id: 'call_P2', name: 'get_time', input: { tz: 'CET' }, caller: { type: 'direct' } },
    { type: 'text', text: 'Checking both.', citations: null },
  ]);
});

t.test('stop reasons: length, tool calls ended with "stop", a stop sequence vLLM names', async (t) => {
  const stopOf = (rec: Recording) => {
    const fs = frames(encode(rec).text);
    return fs[fs.length - 2]!.data.delta;
  };
  t.same(stopOf(recordings.length), { stop_reason: 'max_tokens', stop_sequence: null, stop_details: null, container: null });
  t.same(stopOf(recordings.toolStopNoUsage), { stop_reason: 'tool_use', stop_sequence: null, stop_details: null, container: null });
  t.same(stopOf(recordings.vllmStopSequence), { stop_reason: 'stop_sequence', stop_sequence: '###', stop_details: null, container: null });
  // A stop string the request did not ask for is not a stop sequence of this request.
  t.same(stopOf({ ...recordings.vllmStopSequence, stopSequences: ['END'] }), { stop_reason: 'end_turn', stop_sequence: null, stop_details: null, container: null });

  const snap = encode(recordings.vllmStopSequence).encoder.snapshot();
  t.equal(snap.stop_sequence, '###');
  // No usage from the upstream: the estimates stand (input as given, one output token per chunk that carried output).
  const noUsage = frames(encode(recordings.toolStopNoUsage).text).at(-2)!.data.usage as Record<string, number>;
  t.equal(noUsage.input_tokens, 10);
  t.equal(noUsage.output_tokens, 2);
});

t.test('an error end: the error event alone, typed for Anthropic clients, the gateway reason in details', async (t) => {
  const { text, encoder: enc } = encode(recordings.errorEnd);
  const fs = frames(text);
  t.same(events(text), ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'error']);
  t.same(fs.at(-1)!.data, {
    type: 'error',
    error: { type: 'api_error', message: 'upstream mock failed (502): mock failure mid-stream', details: { error_code: 'upstream_error' } },
  });
  t.equal(enc.snapshot().stop_reason, null);
  t.same(enc.snapshot().content, [{ type: 'text', text: 'Partial answer', citations: null }]);

  const typeOf = (end: StreamEnd) => {
    const e = encoder(recordings.errorEnd);
    return frames(e.close(end, 1).text)[0]!.data.error;
  };
  const cases: [StreamEnd, string, string][] = [
    [{ kind: 'error', type: 'upstream_error', code: 'upstream_rate_limited', message: 'slow down' }, 'rate_limit_error', 'upstream_rate_limited'],
    [{ kind: 'error', type: 'upstream_error', code: 'upstream_timeout', message: 't' }, 'timeout_error', 'upstream_timeout'],
    [{ kind: 'error', type: 'upstream_error', code: 'upstream_rejected', message: 'bad' }, 'invalid_request_error', 'upstream_rejected'],
    [{ kind: 'error', type: 'upstream_idle', message: 'silent' }, 'timeout_error', 'upstream_idle'],
    [{ kind: 'error', type: 'shutdown', message: 'bye' }, 'overloaded_error', 'shutdown'],
    [{ kind: 'error', type: 'client_disconnected', message: 'gone' }, 'api_error', 'client_disconnected'],
    [{ kind: 'error', type: 'generation_lost', message: 'lost' }, 'api_error', 'generation_lost'],
  ];
  for (const [end, type, code] of cases) {
    t.match(typeOf(end), { type, details: { error_code: code } }, `${end.kind === 'error' ? (end.code ?? end.type) : ''} → ${type}`);
  }
});

t.test('frames are byte-identical however the chunks are batched, ids consecutive from firstId', async (t) => {
  for (const [name, rec] of Object.entries(recordings) as [string, Recording][]) {
    const whole = encode(rec, [rec.chunks], 41);
    const ids = frames(whole.text).map((f) => f.id);
    t.same(ids, Array.from({ length: whole.count }, (_, i) => 41 + i), `${name}: ids 41…`);
    let checked = 0;
    let differing = 0;
    for (const batches of partitions(rec.chunks)) {
      // Empty batches too: a read that carried nothing writes nothing.
      const split = encode(rec, [[], ...batches, []], 41);
      if (split.text !== whole.text || split.count !== whole.count) differing++;
      checked++;
    }
    t.equal(differing, 0, `${name}: all ${checked} batchings give the same bytes`);
    t.equal(checked, 2 ** (rec.chunks.length - 1));
  }
});

t.test('each call returns only its own events, counted', async (t) => {
  const rec = recordings.textThenTool;
  const enc = encoder(rec);
  const open = enc.open(100);
  t.equal(open.count, 1);
  const empty = enc.batch([], 101);
  t.same(empty, { text: '', count: 0 });
  const one = enc.batch([rec.chunks[1]!], 101);
  t.same(frames(one.text).map((f) => [f.id, f.event]), [
    [101, 'content_block_start'],
    [102, 'content_block_delta'],
  ]);
  t.equal(one.count, 2);
  const rest = enc.batch(rec.chunks.slice(2), 103);
  const end = enc.close(rec.end, 103 + rest.count);
  t.equal(frames(end.text)[0]!.id, 103 + rest.count);
  t.equal(frames(end.text).length, end.count);
});

t.test('chunks that are not chat deltas write nothing', async (t) => {
  const enc = new MessagesEncoder({ id: MESSAGE_ID, model: MODEL, inputTokens: 5, stopSequences: [] });
  enc.open(1);
  const junk = ['not json', '[]', 'null', '{"choices":"x"}', '{"choices":[null]}', '{"choices":[{"delta":null}]}', chunk({ content: '' }), chunk({ role: 'assistant' })];
  t.same(enc.batch(junk, 2), { text: '', count: 0 });
  t.same(enc.snapshot().content, []);
  t.equal(enc.snapshot().usage.output_tokens, 0);
});

t.test('a tool call without an id gets one; later name pieces do not rename it', async (t) => {
  const enc = encoder(recordings.textOnly);
  enc.open(1);
  const out = enc.batch(
    [chunk({ tool_calls: [{ index: 3, function: { name: 'f', arguments: '{}' } }] }), chunk({ tool_calls: [{ index: 3, function: { name: 'f', arguments: '' } }] })],
    2,
  );
  t.same(frames(out.text)[0]!.data.content_block, { type: 'tool_use', id: 'toolu_01TestMessageId0000000000_3', name: 'f', input: {}, caller: { type: 'direct' } });
  t.same(enc.snapshot().content, [{ type: 'tool_use', id: 'toolu_01TestMessageId0000000000_3', name: 'f', input: {}, caller: { type: 'direct' } }]);
});

t.test('message ids: msg_ and 128 random bits', async (t) => {
  const a = newMessageId();
  t.match(a, /^msg_[A-Za-z0-9_-]{22}$/);
  t.not(a, newMessageId());
});
