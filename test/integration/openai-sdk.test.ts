import { OpenAI } from 'openai';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { failure } from '../helpers/http.js';

/** The official SDK as a client, against the gateway, against the mock over real sockets. */
t.test('openai SDK → gateway → mock HTTP upstream', async (t) => {
  const { mock, baseUrl } = await startMock({ ...FAST_MOCK, apiKey: 'sk-upstream-secret-0123456789' });
  const gw = await startGateway({
    ...viaUpstream(baseUrl, 'sk-upstream-secret-0123456789'),
    gatewayApiKeys: ['client-key-1'],
    rateLimit: { max: 1000, windowMs: 60_000 },
  });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'client-key-1', maxRetries: 0 });
  const messages = [{ role: 'user' as const, content: 'Tell me about streams [mock:tokens=30]' }];
  const expected = planCompletion({ model: 'mock-1', messages }, FAST_MOCK);

  t.test('streamed text equals the mock text', async (t) => {
    const stream = await client.chat.completions.create({ model: 'mock-1', messages, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    t.equal(text, expected.content);
    t.equal(finish, 'stop');
    const seen = mock.requests.at(-1)!;
    t.equal(seen.authorization, 'Bearer sk-upstream-secret-0123456789', 'the upstream key goes upstream');
  });

  t.test('withResponse exposes X-Stream-Id', async (t) => {
    const { data, response } = await client.chat.completions.create({ model: 'mock-1', messages, stream: true }).withResponse();
    for await (const _ of data) void _;
    t.match(response.headers.get('x-stream-id'), /^str_/);
  });

  t.test('non-stream', async (t) => {
    const c = await client.chat.completions.create({ model: 'mock-1', messages });
    t.equal(c.object, 'chat.completion');
    t.equal(c.choices[0]!.message.content, expected.content);
    t.same(c.usage, expected.usage);
  });

  t.test('usage with include_usage, and only then', async (t) => {
    const withUsage = await client.chat.completions.create({ model: 'mock-1', messages, stream: true, stream_options: { include_usage: true } });
    let usage: unknown = null;
    for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage;
    t.same(usage, expected.usage);

    const { data: without, response } = await client.chat.completions.create({ model: 'mock-1', messages, stream: true }).withResponse();
    let sawUsage = false;
    for await (const chunk of without) if (chunk.usage) sawUsage = true;
    t.equal(sawUsage, false, 'the usage chunk the gateway asked for is not forwarded');
    const id = response.headers.get('x-stream-id');
    const line = await gw.logs.waitForRequest((l) => l.stream_id === id);
    t.equal(line.completion_tokens, 30, 'but the gateway logs the usage');
  });

  t.test('tool-call deltas reassemble', async (t) => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { query: { type: 'string' } } } } }];
    const stream = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'weather in Paris' }], tools, stream: true });
    let name = '';
    let args = '';
    let id = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      const call = chunk.choices[0]?.delta.tool_calls?.[0];
      if (call?.id) id = call.id;
      if (call?.function?.name) name += call.function.name;
      if (call?.function?.arguments) args += call.function.arguments;
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    t.match(id, /^call_/);
    t.equal(name, 'get_weather');
    t.same(JSON.parse(args), { query: 'weather in Paris' });
    t.equal(finish, 'tool_calls');
  });

  t.test('SDK error classes', async (t) => {
    t.type(await failure(client.chat.completions.create({ model: 'mock-1', messages: [] })), OpenAI.BadRequestError);
    t.type(await failure(client.chat.completions.create({ model: 'no-such-model', messages })), OpenAI.NotFoundError);
    const stranger = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    t.type(await failure(stranger.chat.completions.create({ model: 'mock-1', messages })), OpenAI.AuthenticationError);
    const upstream429 = client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: '[mock:fail-before=429]' }], stream: true });
    t.type(await failure(upstream429), OpenAI.RateLimitError);
  });

  t.test('a mid-stream upstream error reaches the SDK as an APIError', async (t) => {
    const stream = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: '[mock:fail-after=3]' }], stream: true });
    let chunks = 0;
    const err = await failure(
      (async () => {
        for await (const _ of stream) chunks++;
      })(),
    );
    t.type(err, OpenAI.APIError);
    t.equal(chunks, 3, 'the chunks before the failure arrived');
  });

  t.test('the upstream key never reaches a client or a log line', async (t) => {
    t.notMatch(gw.logs.raw, 'sk-upstream-secret');
    t.notMatch(gw.logs.raw, 'client-key-1');
  });
});

t.test('rate limit through the SDK → RateLimitError', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, rateLimit: { max: 1, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const body = { model: 'mock-1', messages: [{ role: 'user' as const, content: 'hi' }] };
  await client.chat.completions.create(body);
  t.type(await failure(client.chat.completions.create(body)), OpenAI.RateLimitError);
});
