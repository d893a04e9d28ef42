import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { JwksServer, bearer, jwksConfig, makeKey, sign } from '../helpers/jwks.js';
import { parseSse } from '../helpers/sse.js';

/**
 * The optional `models` claim: a token limited to some models gets 403
 * `model_not_allowed` for any other, on every API, before anything is sent
 * upstream (the mock runs as an HTTP upstream and records what reached it).
 * And the Anthropic path with the official SDK holding a JWT as its apiKey.
 */

const JSON_CT = { 'content-type': 'application/json' };
const ALLOWED = 'mock-1-mini';
const FORBIDDEN = 'mock-1';

t.test('models claim', async (t) => {
  const idp = await new JwksServer().start();
  const key = await makeKey('RS256');
  idp.keys = [key];
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), ...jwksConfig(idp.url), rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
    await idp.close();
  });
  const limited = await sign(key, { sub: 'dana', models: [ALLOWED] });
  const unlimited = await sign(key, { sub: 'erin' });
  const chatMsg = [{ role: 'user', content: 'hi [mock:tokens=3]' }];

  const calls: [string, string, Record<string, unknown>, 'openai' | 'anthropic'][] = [
    ['chat completions', '/v1/chat/completions', { model: FORBIDDEN, messages: chatMsg }, 'openai'],
    ['chat completions, stream', '/v1/chat/completions', { model: FORBIDDEN, messages: chatMsg, stream: true }, 'openai'],
    ['POST /v1/streams', '/v1/streams', { model: FORBIDDEN, messages: chatMsg }, 'openai'],
    ['Responses', '/v1/responses', { model: FORBIDDEN, input: 'hi' }, 'openai'],
    ['Responses, stream', '/v1/responses', { model: FORBIDDEN, input: 'hi', stream: true }, 'openai'],
    ['Responses, background', '/v1/responses', { model: FORBIDDEN, input: 'hi', background: true }, 'openai'],
    ['Messages', '/v1/messages', { model: FORBIDDEN, max_tokens: 16, messages: chatMsg }, 'anthropic'],
    ['Messages, stream', '/v1/messages', { model: FORBIDDEN, max_tokens: 16, messages: chatMsg, stream: true }, 'anthropic'],
    ['Messages count_tokens', '/v1/messages/count_tokens', { model: FORBIDDEN, messages: chatMsg }, 'anthropic'],
  ];
  for (const [name, path, body, shape] of calls) {
    await t.test(`${name}: 403 model_not_allowed, nothing upstream`, async (t) => {
      const before = mock.requests.length;
      const res = await send(`${gw.url}${path}`, { body, headers: { ...JSON_CT, ...bearer(limited) } });
      t.equal(res.status, 403);
      const parsed = JSON.parse(res.body) as Record<string, any>;
      if (shape === 'openai') t.match(parsed, { error: { code: 'model_not_allowed', type: 'permission_error', param: 'model', message: /does not allow the model 'mock-1'/ } });
      else t.match(parsed, { type: 'error', error: { type: 'permission_error', details: { error_code: 'model_not_allowed' } } });
      t.equal(mock.requests.length, before, 'the upstream saw nothing');
    });
  }

  await t.test('the allowed model passes; a token without the claim may use any', async (t) => {
    const before = mock.requests.length;
    const ok = await send(`${gw.url}/v1/chat/completions`, { body: { model: ALLOWED, messages: chatMsg }, headers: { ...JSON_CT, ...bearer(limited) } });
    t.equal(ok.status, 200, `${ALLOWED} with the limited token`);
    const any = await send(`${gw.url}/v1/chat/completions`, { body: { model: FORBIDDEN, messages: chatMsg }, headers: { ...JSON_CT, ...bearer(unlimited) } });
    t.equal(any.status, 200, `${FORBIDDEN} with a token without the claim`);
    t.equal(mock.requests.length, before + 2, 'two requests upstream');
    const unknown = await send(`${gw.url}/v1/chat/completions`, { body: { model: 'nope', messages: chatMsg }, headers: { ...JSON_CT, ...bearer(limited) } });
    t.equal(unknown.status, 403, 'a model outside the claim is refused the same whether or not it exists');
  });

  await t.test('GET /v1/models lists only what the token allows', async (t) => {
    const list = async (token: string) => (JSON.parse((await send(`${gw.url}/v1/models`, { headers: bearer(token) })).body) as { data: { id: string }[] }).data.map((m) => m.id);
    t.same(await list(limited), [ALLOWED]);
    t.ok((await list(unlimited)).length >= 2, 'every model without the claim');
    t.equal((await send(`${gw.url}/v1/models/${FORBIDDEN}`, { headers: bearer(limited) })).status, 403);
    t.equal((await send(`${gw.url}/v1/models/${ALLOWED}`, { headers: bearer(limited) })).status, 200);
  });

  await t.test('@anthropic-ai/sdk with a JWT as its apiKey (sent as x-api-key)', async (t) => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: limited, maxRetries: 0 });
    const prompt = 'Stream me [mock:tokens=12]';
    const expected = planCompletion({ model: ALLOWED, messages: [{ role: 'user', content: prompt }] }, FAST_MOCK).content;
    const stream = client.messages.stream({ model: ALLOWED, max_tokens: 64, messages: [{ role: 'user', content: prompt }] });
    const deltas: string[] = [];
    stream.on('text', (d) => deltas.push(d));
    const final = await stream.finalMessage();
    t.equal(deltas.join(''), expected, 'streamed');
    t.equal(final.stop_reason, 'end_turn');
    t.equal(mock.requests.at(-1)!.authorization, undefined, 'the JWT never goes upstream');

    const created = await client.messages.create({ model: ALLOWED, max_tokens: 64, messages: [{ role: 'user', content: prompt }] });
    t.same(created.content, [{ type: 'text', text: expected, citations: null }], 'messages.create');
    const counted = await client.messages.countTokens({ model: ALLOWED, messages: [{ role: 'user', content: prompt }] });
    t.ok(counted.input_tokens > 0, 'countTokens');

    const before = mock.requests.length;
    const refused = await client.messages.create({ model: FORBIDDEN, max_tokens: 64, messages: [{ role: 'user', content: 'no' }] }).catch((e: unknown) => e);
    t.ok(refused instanceof Anthropic.PermissionDeniedError, `a forbidden model: the SDK's PermissionDeniedError (${String(refused)})`);
    t.equal((refused as InstanceType<typeof Anthropic.PermissionDeniedError>).status, 403);
    t.equal(mock.requests.length, before, 'nothing upstream');

    const bad = new Anthropic({ baseURL: gw.url, apiKey: limited.slice(0, -8), maxRetries: 0 });
    const denied = await bad.messages.create({ model: ALLOWED, max_tokens: 8, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    t.ok(denied instanceof Anthropic.AuthenticationError, 'a damaged token: AuthenticationError');
    t.match((denied as Error).message, /signature does not verify/);
    t.notOk((denied as Error).message.includes(limited.slice(0, -8).split('.')[1]!), 'the token is not in the message');
  });

  await t.test('streams with a JWT end to end: SSE on the chat endpoint', async (t) => {
    const res = await send(`${gw.url}/v1/chat/completions`, { body: { model: ALLOWED, messages: chatMsg, stream: true }, headers: { ...JSON_CT, ...bearer(limited) } });
    t.equal(parseSse(res.body).events.at(-1)?.data, '[DONE]');
  });
});
