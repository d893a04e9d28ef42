import t from 'tap';
import Anthropic, { APIError, NotFoundError, RateLimitError } from '@anthropic-ai/sdk';
import { GatewayError } from '../../src/errors.js';
import { messageBody, errorBody } from '../../src/dialects/messages/response-body.js';
import { messagesRequestSchema } from '../../src/dialects/messages/request.js';
import type { Message } from '../../src/dialects/messages/message.js';
import { validateBody } from '../../src/schema/validate.js';
import { MESSAGE_ID, MODEL, encode, fakeFetch, recordings, type Recording } from '../helpers/messages-fixtures.js';

/**
 * The encoder's events and the Message bodies, read by the official
 * @anthropic-ai/sdk as a client of the gateway would: its SSE parser, its
 * message accumulator, its error classes. Traffic never leaves the process
 * (a custom fetch answers), and baseURL names 127.0.0.1.
 */

// Compile-time: what the gateway answers is a Message in the SDK's own type.
const _typed: (m: Message) => Anthropic.Message = (m) => m;
void _typed;

const params = { model: MODEL, max_tokens: 256, messages: [{ role: 'user' as const, content: 'Weather in Paris?' }] };

function client(body: string, init: ResponseInit) {
  const fake = fakeFetch(body, init);
  return { anthropic: new Anthropic({ apiKey: 'x', baseURL: 'http://127.0.0.1:1', maxRetries: 0, fetch: fake.fetch }), sent: fake.sent };
}

const sse = { headers: { 'content-type': 'text/event-stream; charset=utf-8' } };

t.test('streams: the SDK accumulates exactly the encoder snapshot', async (t) => {
  const streamed: Recording[] = [
    recordings.textOnly,
    recordings.textThenTool,
    recordings.parallelInterleaved,
    recordings.parallelSequential,
    recordings.length,
    recordings.toolStopNoUsage,
    recordings.vllmStopSequence,
  ];
  for (const rec of streamed) {
    const { text, encoder } = encode(rec);
    const { anthropic, sent } = client(text, sse);
    const stream = anthropic.messages.stream({ ...params, stop_sequences: rec.stopSequences ?? [] });
    const texts: string[] = [];
    stream.on('text', (delta) => texts.push(delta));
    // parsed_output is the SDK's own (for output_config parsing), not on the wire.
    const { parsed_output: _parsed, ...final } = await stream.finalMessage();
    const snapshot = encoder.snapshot();
    t.same(final, snapshot, `${snapshot.stop_reason}: the SDK's message is the snapshot`);
    const wanted = snapshot.content.flatMap((b) => (b.type === 'text' ? [b.text] : [])).join('');
    t.equal(texts.join(''), wanted, 'text events spell the text');
    // And what the SDK sent is a request the gateway accepts.
    t.doesNotThrow(() => validateBody(messagesRequestSchema({ maxMessages: 10, maxPromptChars: 10_000, maxTokens: 4096 }), sent[0]));
  }
});

t.test('streams: tool inputs arrive parsed, several tool calls each with its own', async (t) => {
  const { text } = encode(recordings.parallelInterleaved);
  const { anthropic } = client(text, sse);
  const final = await anthropic.messages.stream(params).finalMessage();
  t.equal(final.stop_reason, 'tool_use');
  t.same(
    final.content.map((b) => (b.type === 'tool_use' ? [b.id, b.name, b.input] : [b.type])),
    [
      ['call_P1', 'get_weather', { city: 'Paris' }],
      ['call_P2', 'get_time', { tz: 'CET' }],
      ['text'],
    ],
  );
  // The usage the upstream reported replaces message_start's estimate.
  t.match(final.usage, { input_tokens: 55, output_tokens: 30 });
});

t.test('streams: an error event throws an APIError of the right type', async (t) => {
  const { text } = encode(recordings.errorEnd);
  const { anthropic } = client(text, sse);
  const stream = anthropic.messages.stream(params);
  const texts: string[] = [];
  stream.on('text', (d) => texts.push(d));
  const err = await stream.finalMessage().then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, APIError);
  t.equal((err as APIError).type, 'api_error');
  t.equal((err as APIError).errorCode, 'upstream_error');
  t.match((err as APIError).message, /mock failure mid-stream/);
  t.equal(texts.join(''), 'Partial answer', 'the text before the failure was delivered');

  const rateLimited = encode({ ...recordings.errorEnd, end: { kind: 'error', type: 'upstream_error', code: 'upstream_rate_limited', message: 'slow' } });
  const e2 = await client(rateLimited.text, sse)
    .anthropic.messages.stream(params)
    .finalMessage()
    .catch((e: unknown) => e);
  t.equal((e2 as APIError).type, 'rate_limit_error');
});

t.test('streams: raw events through messages.create({stream: true})', async (t) => {
  const { text } = encode(recordings.textThenTool);
  const { anthropic } = client(text, sse);
  const stream = await anthropic.messages.create({ ...params, stream: true });
  const types: string[] = [];
  for await (const ev of stream) types.push(ev.type);
  t.same(types, [
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
});

const completion = (message: Record<string, unknown>, finish: string, usage: Record<string, unknown> | null = { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27 }) => ({
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', refusal: null, ...message }, logprobs: null, finish_reason: finish }],
  usage,
});

const meta = { id: MESSAGE_ID, model: MODEL, stopSequences: [] as string[], inputTokens: 11 };

t.test('non-stream: messages.create reads the Message body', async (t) => {
  const bodies: [string, Record<string, unknown>][] = [
    ['text', completion({ content: 'Hello there.' }, 'stop')],
    [
      'tool calls',
      completion(
        {
          content: null,
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        'tool_calls',
      ),
    ],
    ['length', completion({ content: 'Cut o' }, 'length', null)],
  ];
  for (const [name, body] of bodies) {
    const message = messageBody(body, meta);
    const { anthropic } = client(JSON.stringify(message), { headers: { 'content-type': 'application/json' } });
    const got = await anthropic.messages.create(params);
    t.same(got, message, `${name}: the SDK returns the body`);
  }
});

t.test('non-stream: the body in Anthropic terms', async (t) => {
  const cached = completion({ content: 'Hi.' }, 'stop', { prompt_tokens: 20, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 16 } });
  t.match(messageBody(cached, meta), {
    id: MESSAGE_ID,
    model: MODEL,
    stop_reason: 'end_turn',
    usage: { input_tokens: 4, cache_read_input_tokens: 16, output_tokens: 2 },
  });
  // vLLM names the matched stop string in the choice.
  const stopped = completion({ content: 'one' }, 'stop');
  (stopped.choices[0] as Record<string, unknown>).stop_reason = 'END';
  t.match(messageBody(stopped, { ...meta, stopSequences: ['END'] }), { stop_reason: 'stop_sequence', stop_sequence: 'END' });
  t.match(messageBody(stopped, meta), { stop_reason: 'end_turn', stop_sequence: null });
  // Arguments that are not a JSON object still give an object; a tool call ended with "stop" is tool_use.
  const bad = completion({ content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{"a":' } }, { id: 'c2', type: 'function', function: { name: 'g', arguments: '[1]' } }] }, 'stop', null);
  t.match(messageBody(bad, meta), {
    stop_reason: 'tool_use',
    content: [
      { type: 'tool_use', id: 'c1', name: 'f', input: {} },
      { type: 'tool_use', id: 'c2', name: 'g', input: {} },
    ],
    usage: { input_tokens: 11, output_tokens: 2 },
  });
  // A refusal is text; content_filter is Anthropic's refusal.
  t.match(messageBody(completion({ content: null, refusal: 'I cannot help with that.' }, 'content_filter'), meta), {
    content: [{ type: 'text', text: 'I cannot help with that.' }],
    stop_reason: 'refusal',
  });
  t.same(messageBody(completion({ content: '' }, 'stop'), meta).content, [], 'no text, no block');
});

t.test('non-stream: errors before the stream come out as the SDK error classes', async (t) => {
  const cases: [GatewayError, Function, string][] = [
    [new GatewayError('model_not_found', 'model "x" not found', { param: 'model' }), NotFoundError, 'not_found_error'],
    [new GatewayError('rate_limit_exceeded', 'slow down'), RateLimitError, 'rate_limit_error'],
    [new GatewayError('invalid_body', 'messages[0].content[0].type: "document" blocks are not supported', { param: 'messages[0].content[0].type' }), Anthropic.BadRequestError, 'invalid_request_error'],
    [new GatewayError('unauthorized', 'missing key'), Anthropic.AuthenticationError, 'authentication_error'],
    [new GatewayError('forbidden', 'not yours'), Anthropic.PermissionDeniedError, 'permission_error'],
    [new GatewayError('body_too_large', 'too big'), Anthropic.ContentTooLargeError, 'request_too_large'],
    [new GatewayError('overloaded', 'busy'), Anthropic.ServiceUnavailableError, 'overloaded_error'],
    [new GatewayError('upstream_error', 'upstream u1 failed (500): boom'), Anthropic.InternalServerError, 'api_error'],
    [new GatewayError('upstream_timeout', 'the upstream did not start its response in time'), Anthropic.GatewayTimeoutError, 'timeout_error'],
    [new GatewayError('upstream_rejected', 'context too long', { status: 422 }), Anthropic.UnprocessableEntityError, 'invalid_request_error'],
  ];
  for (const [err, cls, type] of cases) {
    const { anthropic } = client(JSON.stringify(errorBody(err)), { status: err.status, headers: { 'content-type': 'application/json' } });
    const got = await anthropic.messages.create(params).catch((e: unknown) => e);
    t.type(got, cls, `${err.code} → ${cls.name}`);
    t.equal((got as APIError).type, type);
    t.equal((got as APIError).errorCode, err.code);
    t.equal((got as APIError).apiMessage, err.message);
  }
});
