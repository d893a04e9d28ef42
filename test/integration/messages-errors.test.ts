import Anthropic, { APIError } from '@anthropic-ai/sdk';
import t from 'tap';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { STACK_TRACE, failure, send } from '../helpers/http.js';

/**
 * Errors on /v1/messages as Anthropic's clients know them: before the
 * stream, Anthropic's error body under the gateway's statuses (so the SDK
 * raises its own classes); after it started, one `event: error` the SDK
 * throws from the stream.
 */

const KEY = 'gw-messages-errors-key';

interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string; details?: { error_code?: string } };
}

function anthropicBody(text: string): AnthropicErrorBody {
  const body = JSON.parse(text) as AnthropicErrorBody;
  if (body.type !== 'error' || typeof body.error?.type !== 'string' || typeof body.error.message !== 'string') {
    throw new Error(`not an Anthropic error body: ${text.slice(0, 200)}`);
  }
  return body;
}

const ask = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'mock-1',
  max_tokens: 64,
  messages: [{ role: 'user' as const, content }],
  ...extra,
});

t.test('errors before the stream: Anthropic shape, SDK classes, nothing sent upstream where nothing should be', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: [KEY], upstreamTimeoutMs: 400, rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });

  t.test('401: a wrong x-api-key, or none', async (t) => {
    const stranger = new Anthropic({ baseURL: gw.url, apiKey: 'not-a-gateway-key', maxRetries: 0 });
    const err = await failure(stranger.messages.create(ask('hi')));
    t.type(err, Anthropic.AuthenticationError);
    t.equal((err as APIError).type, 'authentication_error');
    t.equal((err as APIError).errorCode, 'unauthorized');
    t.type(await failure(stranger.messages.stream(ask('hi')).finalMessage()), Anthropic.AuthenticationError, 'streaming too');
    t.type(await failure(stranger.messages.countTokens({ model: 'mock-1', messages: ask('hi').messages })), Anthropic.AuthenticationError);

    const none = await send(`${gw.url}/v1/messages`, { headers: { 'content-type': 'application/json' }, body: ask('hi') });
    t.equal(none.status, 401);
    t.match(anthropicBody(none.body), { type: 'error', error: { type: 'authentication_error', message: /x-api-key/ } });
    t.notMatch(none.body, STACK_TRACE);
    const blank = await send(`${gw.url}/v1/messages`, { headers: { 'content-type': 'application/json', 'x-api-key': '' }, body: ask('hi') });
    t.equal(blank.status, 401, 'an empty x-api-key is no key');
    t.equal(mock.requests.length, 0, 'nothing went upstream');
    t.notMatch(gw.logs.raw, 'not-a-gateway-key', 'the presented key is not logged');
  });

  t.test('404 not_found_error for a model the gateway does not serve', async (t) => {
    const err = await failure(client.messages.create({ ...ask('hi'), model: 'claude-sonnet-4-5' }));
    t.type(err, Anthropic.NotFoundError);
    t.equal((err as APIError).type, 'not_found_error');
    t.equal((err as APIError).errorCode, 'model_not_found');
    const before = mock.requests.length;
    t.type(await failure(client.messages.stream({ ...ask('hi'), model: 'claude-sonnet-4-5' }).finalMessage()), Anthropic.NotFoundError);
    t.equal(mock.requests.length, before, 'nothing sent upstream for an unknown model');
  });

  t.test('400 invalid_request_error naming the field, for what the gateway cannot honour', async (t) => {
    const before = mock.requests.length;
    const thinking = await failure(client.messages.create({ ...ask('hi'), thinking: { type: 'enabled', budget_tokens: 1024 } }));
    t.type(thinking, Anthropic.BadRequestError);
    t.equal((thinking as APIError).type, 'invalid_request_error');
    t.match((thinking as APIError).message, /thinking\.type/);
    const server = await failure(client.messages.create({ ...ask('hi'), tools: [{ type: 'web_search_20250305', name: 'web_search' }] }));
    t.match((server as APIError).message, /tools\[0\]\.type.*server tool/);
    const noMax = await send(`${gw.url}/v1/messages`, {
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: { model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] },
    });
    t.equal(noMax.status, 400);
    t.match(anthropicBody(noMax.body).error, { type: 'invalid_request_error', message: /max_tokens: is required/ });
    const notJson = await send(`${gw.url}/v1/messages`, { headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: '{"model":' });
    t.equal(notJson.status, 400);
    t.equal(anthropicBody(notJson.body).error.type, 'invalid_request_error', 'a body that is not JSON too');
    t.equal(mock.requests.length, before, 'nothing sent upstream');
  });

  t.test('upstream failures before the first byte: 429, 502, 504 in their Anthropic types', async (t) => {
    const limited = await failure(client.messages.stream(ask('[mock:fail-before=429]')).finalMessage());
    t.type(limited, Anthropic.RateLimitError);
    t.equal((limited as APIError).type, 'rate_limit_error');
    const broken = await failure(client.messages.create(ask('[mock:fail-before=500]')));
    t.type(broken, Anthropic.InternalServerError);
    t.equal((broken as APIError).status, 502);
    t.equal((broken as APIError).type, 'api_error');
    const hung = await failure(client.messages.stream(ask('[mock:hang]')).finalMessage());
    t.type(hung, Anthropic.GatewayTimeoutError);
    t.equal((hung as APIError).type, 'timeout_error');
  });

  t.test('503 overloaded_error while draining, Retry-After kept', async (t) => {
    gw.state.draining = true;
    t.teardown(() => void (gw.state.draining = false));
    const res = await send(`${gw.url}/v1/messages`, { headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: ask('hi') });
    t.equal(res.status, 503);
    t.equal(res.headers['retry-after'], '1');
    t.equal(anthropicBody(res.body).error.type, 'overloaded_error');
  });

  t.test('a failure after the stream started: the SDK throws api_error from the stream, after the text before it', async (t) => {
    const stream = client.messages.stream(ask('Start then fail [mock:fail-after=3]'));
    const deltas: string[] = [];
    stream.on('text', (d) => deltas.push(d));
    const err = await failure(stream.finalMessage());
    t.type(err, APIError);
    t.equal((err as APIError).type, 'api_error');
    t.equal((err as APIError).errorCode, 'upstream_error');
    t.match((err as APIError).message, /mock failure mid-stream/);
    t.equal(deltas.length, 2, 'the two text deltas before the failure arrived');
  });
});

t.test('429 rate_limit_error from the gateway rate limit, with Retry-After and x-ratelimit-*', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [KEY], rateLimit: { max: 1, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  await client.messages.create(ask('hi [mock:tokens=2]'));
  const err = await failure(client.messages.create(ask('hi [mock:tokens=2]')));
  t.type(err, Anthropic.RateLimitError);
  t.equal((err as APIError).type, 'rate_limit_error');
  const headers = (err as APIError).headers!;
  t.match(headers.get('retry-after'), /^\d+$/);
  t.equal(headers.get('x-ratelimit-limit'), '1');
  t.equal(headers.get('x-ratelimit-remaining'), '0');
});
