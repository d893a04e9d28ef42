import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, streamText, tool } from 'ai';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';

/**
 * The Vercel AI SDK's default OpenAI provider (`openai(model)` calls the
 * Responses API) against the gateway, over real sockets: the client the
 * issue found failing with a 404.
 */
t.test('AI SDK 6 default provider → POST /v1/responses', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-1'], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const openai = createOpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-1' });
  const upstreamPlan = () => planCompletion(mock.requests.at(-1)!.body, FAST_MOCK);

  t.test('streamText: the full text, finish reason and usage', async (t) => {
    const errors: unknown[] = [];
    const result = streamText({ model: openai('mock-1'), system: 'Be brief.', prompt: 'Tell me about SSE [mock:tokens=25]', onError: ({ error }) => void errors.push(error) });
    let text = '';
    for await (const delta of result.textStream) text += delta;
    const plan = upstreamPlan();
    t.equal(text, plan.content);
    t.equal(await result.text, plan.content);
    t.equal(await result.finishReason, 'stop');
    t.match(await result.usage, { inputTokens: plan.usage.prompt_tokens, outputTokens: 25, totalTokens: plan.usage.total_tokens });
    t.strictSame(errors, []);
    t.strictSame(mock.requests.at(-1)!.body.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Tell me about SSE [mock:tokens=25]' },
    ]);
    const line = await gw.logs.waitForRequest((l) => l.api === 'responses' && l.completion_tokens === 25);
    t.equal(line.outcome, 'completed');
  });

  t.test('streamText: a length cut, and a failure mid-stream', async (t) => {
    const cut = streamText({ model: openai('mock-1'), prompt: 'Go [mock:tokens=30]', maxOutputTokens: 4 });
    t.equal((await cut.text).length > 0, true);
    t.equal(await cut.finishReason, 'length');

    const errors: unknown[] = [];
    const failed = streamText({ model: openai('mock-1'), prompt: 'Go [mock:fail-after=4]', onError: ({ error }) => void errors.push(error) });
    await failed.consumeStream();
    t.equal(await failed.finishReason, 'error');
  });

  t.test('streamText with tools: the call reassembled', async (t) => {
    const lookup = tool({ inputSchema: jsonSchema<{ query: string }>({ type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }) });
    const result = streamText({ model: openai('mock-1'), prompt: 'Find owls', tools: { lookup } });
    await result.consumeStream();
    t.equal(await result.finishReason, 'tool-calls');
    t.match(await result.toolCalls, [{ toolName: 'lookup', input: { query: 'Find owls' } }]);
  });

  t.test('generateText, then a second turn sent back by item_reference', async (t) => {
    const first = await generateText({ model: openai('mock-1'), prompt: 'Hello [mock:tokens=6]' });
    const plan = upstreamPlan();
    t.equal(first.text, plan.content);
    t.equal(first.finishReason, 'stop');
    t.match(first.usage, { inputTokens: plan.usage.prompt_tokens, outputTokens: 6 });
    t.equal(mock.requests.at(-1)!.body.stream, true, 'a JSON answer runs as a stream upstream too');

    // The AI SDK sends its own earlier answer back as an item_reference: the gateway kept it.
    const second = await generateText({
      model: openai('mock-1'),
      messages: [{ role: 'user', content: 'Hello [mock:tokens=6]' }, ...first.response.messages, { role: 'user', content: 'Again [mock:echo]' }],
    });
    t.equal(second.text, 'Again ');
    t.strictSame(mock.requests.at(-1)!.body.messages, [
      { role: 'user', content: 'Hello [mock:tokens=6]' },
      { role: 'assistant', content: first.text },
      { role: 'user', content: 'Again [mock:echo]' },
    ]);
  });

  t.test('generateText: tool call, then its result back', async (t) => {
    const lookup = tool({ inputSchema: jsonSchema<{ query: string }>({ type: 'object', properties: { query: { type: 'string' } }, required: ['query'] }) });
    const called = await generateText({ model: openai('mock-1'), prompt: 'Find owls', tools: { lookup } });
    t.equal(called.finishReason, 'tool-calls');
    const call = called.toolCalls[0]!;
    const answered = await generateText({
      model: openai('mock-1'),
      messages: [
        { role: 'user', content: 'Find owls' },
        ...called.response.messages,
        { role: 'tool', content: [{ type: 'tool-result', toolCallId: call.toolCallId, toolName: 'lookup', output: { type: 'json', value: { found: 3 } } }] },
      ],
    });
    t.ok(answered.text.length > 0);
    t.match(mock.requests.at(-1)!.body.messages, [
      { role: 'user', content: 'Find owls' },
      { role: 'assistant', content: null, tool_calls: [{ id: call.toolCallId, function: { name: 'lookup' } }] },
      { role: 'tool', tool_call_id: call.toolCallId, content: '{"found":3}' },
    ]);
  });
});
