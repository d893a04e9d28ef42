import t from 'tap';
import { OpenAI } from 'openai';
import { accumulateResponse } from 'openai/lib/responses/ResponseAccumulator';
import type { ResponseStreamEvent, Response as OpenAIResponse } from 'openai/resources/responses/responses';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, streamText, tool } from 'ai';
import { GatewayError } from '../../src/errors.js';
import { responsesRequestSchema } from '../../src/dialects/responses/request.js';
import { conversationAfter, toChatRequest, type ChatMessage } from '../../src/dialects/responses/to-chat.js';
import { echoOf, itemAddress, type ResponseMeta, type ResponseObject } from '../../src/dialects/responses/response-object.js';
import { errorBody, responseFromCompletion } from '../../src/dialects/responses/response-body.js';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { validateBody } from '../../src/schema/validate.js';
import { completionObject, planCompletion, type MockPlan } from '../../src/upstream/mock/model.js';
import { clock, encode, parseFrames, recordings, type Recording } from '../helpers/responses-fixtures.js';

/**
 * The real clients against the pure pieces: each SDK's own request goes
 * through the request schema and toChatRequest, the mock model answers it
 * (or a recorded chunk sequence does), and the encoder's SSE text (or the
 * non-stream body) is what the SDK reads. No socket: a custom `fetch`.
 */

const schema = responsesRequestSchema({ maxMessages: 100, maxPromptChars: 100_000, maxTokens: 4096 });

interface Turn {
  raw: Record<string, unknown>;
  chat: ChatRequest;
  plan: MockPlan;
  sse?: string;
  response: ResponseObject;
}

/** A stand-in for the route: validation, previous_response_id and item_reference from what it kept, the mock model, the encoder. */
function fakeGateway(recording?: Recording) {
  const turns: Turn[] = [];
  const kept = new Map<string, { response: ResponseObject; conversation: ChatMessage[] }>();
  const lookup = (id: string) => {
    const at = itemAddress(id);
    return at ? kept.get(at.responseId)?.response.output[at.outputIndex] : undefined;
  };
  const fetch = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (!String(url).endsWith('/v1/responses')) return new Response('{}', { status: 404 });
    const raw = JSON.parse(String(init?.body)) as Record<string, unknown>;
    try {
      const body = validateBody(schema, raw);
      const previous = body.previous_response_id ? kept.get(body.previous_response_id)?.conversation : [];
      if (!previous) throw new GatewayError('invalid_body', 'previous_response_not_found', { param: 'previous_response_id' });
      const chat = toChatRequest(body, previous, lookup);
      const plan = planCompletion(chat, { tokensPerSecond: 0, firstTokenDelayMs: 0 });
      const meta: ResponseMeta = { id: `resp_${String(turns.length + 1).padStart(32, '0')}`, model: body.model, createdAt: 1_700_000_123, echo: echoOf(body) };
      let turn: Turn;
      if (body.stream) {
        const rec = recording ?? { chunks: [...plan.chunks, plan.usageChunk], end: { kind: 'done', finish_reason: plan.finishReason, usage: plan.usage } };
        const { text, encoder } = encode(rec, [rec.chunks], 1, meta);
        turn = { raw, chat, plan, sse: text, response: encoder.snapshot() };
      } else {
        turn = { raw, chat, plan, response: responseFromCompletion(completionObject(plan), meta, clock) };
      }
      turns.push(turn);
      if (body.store !== false) kept.set(meta.id, { response: turn.response, conversation: conversationAfter(body, chat, turn.response) });
      return turn.sse !== undefined
        ? new Response(turn.sse, { headers: { 'content-type': 'text/event-stream; charset=utf-8' } })
        : Response.json(turn.response);
    } catch (e) {
      if (!(e instanceof GatewayError)) throw e;
      return Response.json(errorBody(e), { status: e.status });
    }
  };
  return { fetch, turns };
}

const openaiClient = (fetch: ReturnType<typeof fakeGateway>['fetch']) => new OpenAI({ apiKey: 'x', baseURL: 'http://127.0.0.1:1/v1', fetch, maxRetries: 0 });
const aiProvider = (fetch: ReturnType<typeof fakeGateway>['fetch']) => createOpenAI({ baseURL: 'http://127.0.0.1:1/v1', apiKey: 'x', fetch });

/** What the openai SDK adds to a response it hands back: computed, never on the wire. */
function withoutSdkFields(r: OpenAIResponse): unknown {
  const { output_text: _t, output_parsed: _p, ...rest } = r as OpenAIResponse & { output_parsed?: unknown };
  return {
    ...rest,
    output: rest.output.map((item) => {
      if (item.type === 'function_call') {
        const { parsed_arguments: _a, ...i } = item as typeof item & { parsed_arguments?: unknown };
        return i;
      }
      if (item.type === 'message') return { ...item, content: item.content.map(({ parsed: _x, ...c }: typeof item.content[number] & { parsed?: unknown }) => c) };
      return item;
    }),
  };
}

const json = (v: unknown) => JSON.parse(JSON.stringify(v)) as unknown;

const lookupTool = { type: 'function' as const, name: 'lookup', description: 'Look it up', parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }, strict: false };

t.test('openai SDK responses.stream: every recording parses, accumulates to the final object, ids = sequence numbers', async (t) => {
  for (const [name, rec] of Object.entries(recordings)) {
    const gw = fakeGateway(rec);
    const stream = openaiClient(gw.fetch).responses.stream({ model: 'mock-1', input: 'hi' });
    const events: ResponseStreamEvent[] = [];
    const textSnapshots: string[] = [];
    stream.on('event', (e) => events.push(e));
    stream.on('response.output_text.delta', (e) => textSnapshots.push(e.snapshot));
    const final = await stream.finalResponse();
    const turn = gw.turns[0]!;
    const frames = parseFrames(turn.sse!);
    t.equal(events.length, frames.length, `${name}: every frame is an event`);
    t.same(
      events.map((e) => e.sequence_number),
      frames.map((f) => f.id),
      `${name}: sequence numbers are the SSE ids`,
    );
    t.same(withoutSdkFields(final), json(turn.response), `${name}: finalResponse() is the encoder's final object`);

    // The events alone, without the final one, build the same output (the SDK's own accumulator).
    let acc: OpenAIResponse | undefined;
    for (const e of events.slice(0, -1)) acc = accumulateResponse(e, acc);
    const finalText = turn.response.output.flatMap((i) => (i.type === 'message' ? i.content.map((c) => c.text) : [])).join('');
    t.equal(final.output_text, finalText, `${name}: output_text`);
    if (finalText) t.equal(textSnapshots.at(-1), finalText, `${name}: text accumulated from the deltas`);
    if (rec.end.kind === 'done') t.same(json(acc!.output), json(turn.response.output), `${name}: items from the events equal the final items`);
    else t.same(acc!.output.map((i) => i.type), turn.response.output.map((i) => i.type), `${name}: the items so far`);
  }
  t.match((await openaiClient(fakeGateway(recordings.errorEnd).fetch).responses.stream({ model: 'mock-1', input: 'hi' }).finalResponse()), {
    status: 'failed',
    error: { code: 'upstream_error', message: 'upstream main failed (500): boom' },
  });
});

t.test('openai SDK against the mock model: text, a function call, a length cut, and the request it sends validates', async (t) => {
  const gw = fakeGateway();
  const client = openaiClient(gw.fetch);
  const text = await client.responses.stream({ model: 'mock-1', instructions: 'Be brief.', input: 'Say it [mock:tokens=7]', temperature: 0.5 }).finalResponse();
  t.equal(text.status, 'completed');
  t.equal(text.output_text, gw.turns[0]!.plan.content);
  t.equal(text.output_text.split(' ').length, 7);
  t.same(text.usage, { input_tokens: gw.turns[0]!.plan.usage.prompt_tokens, input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: gw.turns[0]!.plan.usage.total_tokens });
  t.match(gw.turns[0]!.chat, { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say it [mock:tokens=7]' }], temperature: 0.5, stream: true });
  t.match(text, { instructions: 'Be brief.', temperature: 0.5 });

  const call = await client.responses.stream({ model: 'mock-1', input: 'Find cats', tools: [lookupTool] }).finalResponse();
  t.match(call.output, [{ type: 'function_call', name: 'lookup', arguments: '{"query":"Find cats"}', status: 'completed' }]);
  t.equal((call.output[0] as { call_id: string }).call_id, gw.turns[1]!.plan.toolCall!.id);

  const cut = await client.responses.stream({ model: 'mock-1', input: 'Go [mock:tokens=10]', max_output_tokens: 3 }).finalResponse();
  t.match(cut, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } });
  t.equal(gw.turns[2]!.chat.max_tokens, 3);
});

t.test('openai SDK responses.create without stream, previous_response_id, and a 400 it raises with its param', async (t) => {
  const gw = fakeGateway();
  const client = openaiClient(gw.fetch);
  const first = await client.responses.create({ model: 'mock-1', input: 'First [mock:tokens=4]' });
  t.same(withoutSdkFields(first), json(gw.turns[0]!.response));
  t.equal(first.output_text, gw.turns[0]!.plan.content);
  t.equal(first.completed_at, 1_700_000_200);

  const second = await client.responses.create({ model: 'mock-1', input: [{ role: 'user', content: 'Second' }], previous_response_id: first.id, instructions: 'Terse.' });
  t.same(gw.turns[1]!.chat.messages, [
    { role: 'system', content: 'Terse.' },
    { role: 'user', content: 'First [mock:tokens=4]' },
    { role: 'assistant', content: first.output_text },
    { role: 'user', content: 'Second' },
  ]);
  t.equal(second.previous_response_id, first.id);

  const tools = await client.responses.create({ model: 'mock-1', input: 'weather?', tools: [lookupTool], tool_choice: 'required' });
  t.match(tools.output, [{ type: 'function_call', name: 'lookup' }]);

  const err = await client.responses.create({ model: 'mock-1', input: 'x', tools: [{ type: 'web_search' }] }).catch((e: unknown) => e);
  t.type(err, OpenAI.BadRequestError);
  t.match(err, { status: 400, param: 'tools[0].type', code: 'invalid_body' });
});

t.test('Vercel AI SDK streamText: text, finish reason and usage; its request passes the schema', async (t) => {
  const gw = fakeGateway();
  const openai = aiProvider(gw.fetch);
  const errors: unknown[] = [];
  const result = streamText({ model: openai('mock-1'), system: 'Be brief.', prompt: 'Tell me [mock:tokens=6]', temperature: 0.3, onError: ({ error }) => void errors.push(error) });
  t.equal(await result.text, gw.turns[0]!.plan.content);
  t.equal(await result.finishReason, 'stop');
  const usage = await result.usage;
  t.match(usage, { inputTokens: gw.turns[0]!.plan.usage.prompt_tokens, outputTokens: 6, totalTokens: gw.turns[0]!.plan.usage.total_tokens });
  t.same(errors, []);
  t.match(gw.turns[0]!.raw, { model: 'mock-1', stream: true, temperature: 0.3, input: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: [{ type: 'input_text', text: 'Tell me [mock:tokens=6]' }] }] });
});

t.test('Vercel AI SDK streamText: tool calls from the mock and interleaved parallel ones from a recording', async (t) => {
  const lookup = tool({ description: 'Look it up', inputSchema: jsonSchema<{ query: string }>({ type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }) });
  const one = streamText({ model: aiProvider(fakeGateway().fetch)('mock-1'), prompt: 'Find dogs', tools: { lookup } });
  t.match(await one.toolCalls, [{ type: 'tool-call', toolName: 'lookup', input: { query: 'Find dogs' } }]);
  t.equal(await one.finishReason, 'tool-calls');

  const anyArgs = jsonSchema<Record<string, string>>({ type: 'object' });
  const two = streamText({
    model: aiProvider(fakeGateway(recordings.parallelTools).fetch)('mock-1'),
    prompt: 'Weather and time',
    tools: { get_weather: tool({ inputSchema: anyArgs }), get_time: tool({ inputSchema: anyArgs }) },
  });
  t.match(await two.toolCalls, [
    { toolCallId: 'call_P1', toolName: 'get_weather', input: { city: 'Paris' } },
    { toolCallId: 'call_P2', toolName: 'get_time', input: { tz: 'CET' } },
  ]);
  t.same(await two.usage.then((u) => [u.inputTokens, u.outputTokens]), [55, 30]);

  const mixed = streamText({ model: aiProvider(fakeGateway(recordings.textThenTool).fetch)('mock-1'), prompt: 'x', tools: { get_weather: tool({ inputSchema: anyArgs }) } });
  t.equal(await mixed.text, 'Let me check.');
  t.match(await mixed.toolCalls, [{ toolName: 'get_weather', input: { city: 'Paris' } }]);
});

t.test('Vercel AI SDK streamText: a length cut and a failed stream', async (t) => {
  const cut = streamText({ model: aiProvider(fakeGateway().fetch)('mock-1'), prompt: 'Go [mock:tokens=10]', maxOutputTokens: 3 });
  t.equal((await cut.text).split(' ').length, 3);
  t.equal(await cut.finishReason, 'length');

  const errors: unknown[] = [];
  const failed = streamText({ model: aiProvider(fakeGateway(recordings.errorEnd).fetch)('mock-1'), prompt: 'x', onError: ({ error }) => void errors.push(error) });
  await failed.consumeStream();
  t.equal(await failed.finishReason, 'error');
  t.equal(errors.length, 1);
  t.match(errors[0], { message: /upstream main failed \(500\): boom/ });
});

t.test('Vercel AI SDK generateText: the non-stream body, tools, and a second turn sent as item_reference', async (t) => {
  const gw = fakeGateway();
  const openai = aiProvider(gw.fetch);
  const first = await generateText({ model: openai('mock-1'), prompt: 'Hello [mock:tokens=5]' });
  t.equal(first.text, gw.turns[0]!.plan.content);
  t.equal(first.finishReason, 'stop');
  t.match(first.usage, { inputTokens: gw.turns[0]!.plan.usage.prompt_tokens, outputTokens: 5 });

  // The AI SDK sends an earlier answer back by id when store is on (its default).
  const second = await generateText({
    model: openai('mock-1'),
    messages: [{ role: 'user', content: 'Hello [mock:tokens=5]' }, ...first.response.messages, { role: 'user', content: 'More [mock:tokens=2]' }],
  });
  t.match(gw.turns[1]!.raw.input, [{ role: 'user' }, { type: 'item_reference', id: gw.turns[0]!.response.output[0]!.id }, { role: 'user' }]);
  t.same(gw.turns[1]!.chat.messages, [
    { role: 'user', content: 'Hello [mock:tokens=5]' },
    { role: 'assistant', content: first.text },
    { role: 'user', content: 'More [mock:tokens=2]' },
  ]);
  t.equal(second.text.split(' ').length, 2);

  const lookup = tool({ inputSchema: jsonSchema<{ query: string }>({ type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }) });
  const called = await generateText({ model: openai('mock-1'), prompt: 'Find owls', tools: { lookup } });
  t.match(called.toolCalls, [{ toolName: 'lookup', input: { query: 'Find owls' } }]);
  t.equal(called.finishReason, 'tool-calls');

  // The tool result goes back as function_call + function_call_output items, and they validate too.
  const answered = await generateText({
    model: openai('mock-1'),
    messages: [
      { role: 'user', content: 'Find owls' },
      ...called.response.messages,
      { role: 'tool', content: [{ type: 'tool-result', toolCallId: called.toolCalls[0]!.toolCallId, toolName: 'lookup', output: { type: 'json', value: { found: 3 } } }] },
    ],
  });
  t.ok(answered.text.length > 0);
  t.match(gw.turns.at(-1)!.chat.messages, [
    { role: 'user', content: 'Find owls' },
    { role: 'assistant', content: null, tool_calls: [{ id: called.toolCalls[0]!.toolCallId, function: { name: 'lookup' } }] },
    { role: 'tool', tool_call_id: called.toolCalls[0]!.toolCallId, content: '{"found":3}' },
  ]);
});
