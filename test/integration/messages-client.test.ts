import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { countTokens } from '../../src/dialects/messages/response-body.js';
import { countTokensSchema } from '../../src/dialects/messages/request.js';
import { defaultConfig } from '../../src/config.js';
import { validateBody } from '../../src/schema/validate.js';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';

/**
 * The official @anthropic-ai/sdk, unchanged, against the gateway's
 * /v1/messages over real sockets, the gateway in front of the mock model as
 * an HTTP upstream (so the tests also see what went upstream).
 */

const KEY = 'gw-messages-key-1';
const UPSTREAM_KEY = 'sk-upstream-messages-0123456789';

const weatherTool = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object' as const, properties: { query: { type: 'string' } }, required: ['query'] },
};

t.test('@anthropic-ai/sdk → gateway /v1/messages → mock HTTP upstream', async (t) => {
  const { mock, baseUrl } = await startMock({ ...FAST_MOCK, apiKey: UPSTREAM_KEY });
  const gw = await startGateway({ ...viaUpstream(baseUrl, UPSTREAM_KEY), gatewayApiKeys: [KEY], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  // apiKey: the SDK sends it as x-api-key, as Claude Code does with ANTHROPIC_API_KEY.
  const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  const prompt = 'Tell me about streams [mock:tokens=30]';
  const expected = planCompletion({ model: 'mock-1', messages: [{ role: 'user', content: prompt }] }, FAST_MOCK);

  t.test('messages.stream: text events spell the mock text, finalMessage is the Message', async (t) => {
    const stream = client.messages.stream({ model: 'mock-1', max_tokens: 256, messages: [{ role: 'user', content: prompt }] });
    const deltas: string[] = [];
    stream.on('text', (d) => deltas.push(d));
    const final = await stream.finalMessage();
    t.ok(deltas.length > 1, `text arrived as deltas (${deltas.length})`);
    t.equal(deltas.join(''), expected.content);
    t.match(final.id, /^msg_/);
    t.match(final, { type: 'message', role: 'assistant', model: 'mock-1', stop_reason: 'end_turn', stop_sequence: null });
    t.same(final.content, [{ type: 'text', text: expected.content, citations: null }]);
    t.match(final.usage, { input_tokens: expected.usage.prompt_tokens, output_tokens: expected.usage.completion_tokens });
    const seen = mock.requests.at(-1)!;
    t.equal(seen.authorization, `Bearer ${UPSTREAM_KEY}`, 'the upstream gets its own key, not the client one');
    t.match(seen.body, { model: 'mock-1', max_tokens: 256, stream: true, stream_options: { include_usage: true } });
  });

  t.test('messages.create without stream: a Message body', async (t) => {
    const m = await client.messages.create({ model: 'mock-1', max_tokens: 256, messages: [{ role: 'user', content: prompt }] });
    t.match(m, { type: 'message', role: 'assistant', model: 'mock-1', stop_reason: 'end_turn' });
    t.same(m.content, [{ type: 'text', text: expected.content, citations: null }]);
    t.match(m.usage, { input_tokens: expected.usage.prompt_tokens, output_tokens: expected.usage.completion_tokens });
    t.notOk(mock.requests.at(-1)!.body.stream, 'a non-stream call upstream');
  });

  t.test('beta.messages (?beta=true, as Claude Code calls it) with anthropic-beta and a system prompt', async (t) => {
    const final = await client.beta.messages
      .stream(
        { model: 'mock-1', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: prompt }], betas: ['claude-code-20250219'] },
        { query: { beta: 'true' } },
      )
      .finalMessage();
    t.equal(final.stop_reason, 'end_turn');
    t.same(mock.requests.at(-1)!.body.messages[0], { role: 'system', content: 'Be brief.' });
    const line = await gw.logs.waitForRequest((l) => l.url === '/v1/messages?beta=true');
    t.match(line, { status: 200, api: 'messages' });
  });

  t.test('stop_reason max_tokens when the answer is cut at max_tokens', async (t) => {
    const stream = client.messages.stream({ model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'Long one [mock:tokens=50]' }] });
    const final = await stream.finalMessage();
    t.equal(final.stop_reason, 'max_tokens');
    t.equal(final.usage.output_tokens, 5);
    const m = await client.messages.create({ model: 'mock-1', max_tokens: 5, messages: [{ role: 'user', content: 'Long one [mock:tokens=50]' }] });
    t.equal(m.stop_reason, 'max_tokens', 'non-stream too');
  });

  t.test('streamed tool use: a tool_use block with parsed input, then a tool_result round trip', async (t) => {
    const question = 'weather in Paris';
    const stream = client.messages.stream({ model: 'mock-1', max_tokens: 256, tools: [weatherTool], messages: [{ role: 'user', content: question }] });
    const jsonDeltas: string[] = [];
    stream.on('inputJson', (partial) => jsonDeltas.push(partial));
    const first = await stream.finalMessage();
    t.equal(first.stop_reason, 'tool_use');
    t.equal(first.content.length, 1);
    const use = first.content[0]!;
    if (use.type !== 'tool_use') throw new Error(`expected a tool_use block, got ${use.type}`);
    t.match(use.id, /^call_/);
    t.equal(use.name, 'get_weather');
    t.same(use.input, { query: question });
    t.ok(jsonDeltas.length > 1, 'the input streamed as input_json_delta pieces');
    t.same(mock.requests.at(-1)!.body.tools, [{ type: 'function', function: { name: 'get_weather', description: weatherTool.description, parameters: weatherTool.input_schema } }]);

    const second = await client.messages
      .stream({
        model: 'mock-1',
        max_tokens: 256,
        tools: [weatherTool],
        tool_choice: { type: 'none' },
        messages: [
          { role: 'user', content: question },
          { role: 'assistant', content: first.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 21 °C' }, { type: 'text', text: 'Summarize [mock:tokens=6]' }] },
        ],
      })
      .finalMessage();
    t.equal(second.stop_reason, 'end_turn');
    t.equal(second.content[0]?.type, 'text');
    const sent = mock.requests.at(-1)!.body;
    t.same(sent.messages.slice(1), [
      { role: 'assistant', content: null, tool_calls: [{ id: use.id, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify({ query: question }) } }] },
      { role: 'tool', tool_call_id: use.id, content: 'Sunny, 21 °C' },
      { role: 'user', content: [{ type: 'text', text: 'Summarize [mock:tokens=6]' }] },
    ]);
    t.equal(sent.tool_choice, 'none');
  });

  t.test('[mock:tools] without tools defined: still a tool_use block the SDK parses', async (t) => {
    const final = await client.messages.stream({ model: 'mock-1', max_tokens: 64, messages: [{ role: 'user', content: 'look it up [mock:tools]' }] }).finalMessage();
    t.match(final.content, [{ type: 'tool_use', name: 'lookup', input: { query: 'look it up' } }]);
    t.equal(final.stop_reason, 'tool_use');
  });

  t.test('messages.countTokens: the estimate, and no upstream call', async (t) => {
    const before = mock.requests.length;
    const body = { model: 'mock-1', system: 'Be brief.', tools: [weatherTool], messages: [{ role: 'user' as const, content: 'How many tokens is this?' }] };
    const counted = await client.messages.countTokens(body);
    const limits = defaultConfig().limits;
    t.same(counted, countTokens(validateBody(countTokensSchema(limits), body)));
    t.ok(counted.input_tokens > 20, `tools count too (${counted.input_tokens})`);
    const longer = await client.messages.countTokens({ ...body, messages: [{ role: 'user', content: 'x'.repeat(4000) }] });
    t.ok(longer.input_tokens >= 1000, 'grows with the prompt');
    t.equal(mock.requests.length, before, 'nothing was sent upstream');
    await t.rejects(client.messages.countTokens({ ...body, model: 'no-such-model' }), Anthropic.NotFoundError);
  });

  t.test('Authorization: Bearer works on /v1/messages too (ANTHROPIC_AUTH_TOKEN), and x-api-key on chat completions', async (t) => {
    const bearer = new Anthropic({ baseURL: gw.url, apiKey: null, authToken: KEY, maxRetries: 0 });
    const m = await bearer.messages.create({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi [mock:tokens=2]' }] });
    t.equal(m.type, 'message');
    const both = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'x-api-key': 'stale-anthropic-key', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi [mock:tokens=2]' }] }),
    });
    t.equal(both.status, 200, 'given both headers, the Bearer is the credential');
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'x-api-key': KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'hi [mock:tokens=2]' }] }),
    });
    t.equal(res.status, 200);
    t.equal(((await res.json()) as { object: string }).object, 'chat.completion');
  });

  t.test('neither key reaches a log line', async (t) => {
    t.notMatch(gw.logs.raw, KEY);
    t.notMatch(gw.logs.raw, UPSTREAM_KEY);
  });
});
