import { OpenAI } from 'openai';
import t from 'tap';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { failure, openAIError, send } from '../helpers/http.js';

/** Errors answered before any stream: real statuses, OpenAI's shape, through the openai SDK and on the raw wire. */
t.test('Responses: errors before the stream', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-1'], rateLimit: { max: 1000, windowMs: 60_000 }, upstreamTimeoutMs: 300 });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-1', maxRetries: 0 });
  const raw = (body: unknown, key = 'key-1') => send(`${gw.url}/v1/responses`, { headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });

  t.test('400 names the field; nothing goes upstream', async (t) => {
    const sent = mock.requests.length;
    const cases: [Record<string, unknown>, string][] = [
      [{ input: 'hi' }, 'model'],
      [{ model: 'mock-1' }, 'input'],
      [{ model: 'mock-1', input: 'hi', tools: [{ type: 'web_search' }] }, 'tools[0].type'],
      [{ model: 'mock-1', input: 'hi', reasoning: { effort: 'high' } }, 'reasoning.effort'],
      [{ model: 'mock-1', input: 'hi', frobnicate: true }, 'frobnicate'],
      [{ model: 'mock-1', input: [{ type: 'reasoning', summary: [] }] }, 'input[0].type'],
      [{ model: 'mock-1', input: 'hi', background: true, store: false }, 'background'],
    ];
    for (const [body, param] of cases) {
      const err = await failure(client.responses.create(body as never));
      t.type(err, OpenAI.BadRequestError, param);
      t.match(err, { status: 400, param, code: 'invalid_body', error: { type: 'invalid_request_error' } }, param);
    }
    const res = await raw({ model: 'mock-1', input: 'hi', tools: [{ type: 'web_search' }], stream: true });
    t.equal(res.status, 400);
    t.match(res.headers['content-type'], /^application\/json/, 'JSON, not a stream');
    t.match(openAIError(res.body), { error: { param: 'tools[0].type', message: /web_search/ } });
    t.equal(mock.requests.length, sent);
  });

  t.test('401 without a valid key (GATEWAY_API_KEYS)', async (t) => {
    const stranger = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    t.type(await failure(stranger.responses.create({ model: 'mock-1', input: 'hi' })), OpenAI.AuthenticationError);
    t.type(await failure(stranger.responses.create({ model: 'mock-1', input: 'hi', stream: true })), OpenAI.AuthenticationError);
    t.type(await failure(stranger.responses.retrieve('resp_AAAAAAAAAAAAAAAAAAAAAA')), OpenAI.AuthenticationError, 'reads too');
    const res = await raw({ model: 'mock-1', input: 'hi' }, 'wrong');
    t.equal(res.status, 401);
    t.match(openAIError(res.body), { error: { code: 'unauthorized', type: 'authentication_error' } });
  });

  t.test('404 for an unknown model, nothing sent upstream', async (t) => {
    const sent = mock.requests.length;
    for (const stream of [false, true]) {
      const err = await failure(client.responses.create({ model: 'no-such-model', input: 'hi', stream }));
      t.type(err, OpenAI.NotFoundError);
      t.match(err, { status: 404, code: 'model_not_found' });
    }
    t.equal(mock.requests.length, sent);
  });

  t.test('502 when the upstream fails before its first byte: stream, JSON and background', async (t) => {
    for (const stream of [true, false]) {
      const err = await failure(client.responses.create({ model: 'mock-1', input: 'x [mock:fail-before=500]', stream }));
      t.type(err, OpenAI.InternalServerError, `stream: ${stream}`);
      t.match(err, { status: 502, code: 'upstream_error', error: { type: 'upstream_error' } });
    }
    const res = await raw({ model: 'mock-1', input: 'x [mock:fail-before=503]' });
    t.equal(res.status, 502, 'not a 200 with a failed response');
    t.match(openAIError(res.body), { error: { code: 'upstream_error' } });
    const line = await gw.logs.waitForRequest((l) => l.api === 'responses' && l.status === 502);
    t.equal(line.error_code, 'upstream_error');
    t.equal(line.outcome, 'upstream_error');

    // Nobody waits on a background response: its failure is in the object (and its stream).
    const bg = await client.responses.create({ model: 'mock-1', input: 'x [mock:fail-before=500]', background: true });
    const final = await client.responses.stream({ response_id: bg.id }).finalResponse();
    t.equal(final.status, 'failed');
    t.match(final.error, { code: 'upstream_error' });
  });

  t.test('429 from the upstream keeps its status and Retry-After', async (t) => {
    const err = await failure(client.responses.create({ model: 'mock-1', input: 'x [mock:fail-before=429]' }));
    t.type(err, OpenAI.RateLimitError);
    t.match(err, { status: 429, code: 'upstream_rate_limited' });
    t.equal((err as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after'), '1');
  });

  t.test('504 when the upstream does not answer in time', async (t) => {
    for (const stream of [false, true]) {
      const err = await failure(client.responses.create({ model: 'mock-1', input: 'x [mock:hang]', stream }));
      t.match(err, { status: 504, code: 'upstream_timeout', error: { type: 'timeout_error' } }, `stream: ${stream}`);
    }
  });
});

t.test('Responses: 429 from the gateway rate limit, with Retry-After', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, rateLimit: { max: 1, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  await client.responses.create({ model: 'mock-1', input: 'hi' });
  for (const stream of [false, true]) {
    const err = await failure(client.responses.create({ model: 'mock-1', input: 'hi', stream }));
    t.type(err, OpenAI.RateLimitError);
    t.match(err, { status: 429, code: 'rate_limit_exceeded', error: { type: 'rate_limit_error' } });
    t.match((err as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after'), /^\d+$/);
  }
  const line = await gw.logs.waitForRequest((l) => l.api === 'responses' && l.status === 429);
  t.equal(line.error_code, 'rate_limit_exceeded');
});

t.test('Responses: a token budget spent → 429 token_budget_exceeded', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, tokensPerMinute: 10 });
  t.teardown(() => gw.close());
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  await client.responses.create({ model: 'mock-1', input: 'spend it [mock:tokens=40]' });
  const line = await gw.logs.waitForRequest((l) => l.api === 'responses' && l.status === 200);
  t.equal(line.completion_tokens, 40);
  t.match(await failure(client.responses.create({ model: 'mock-1', input: 'hi' })), { status: 429, code: 'token_budget_exceeded' });
});
