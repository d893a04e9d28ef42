import t from 'tap';
import { defaultConfig } from '../../src/config.js';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { STACK_TRACE, openAIError, send } from '../helpers/http.js';

/**
 * Malformed chat bodies are refused at the gateway's door: OpenAI-shaped 4xx
 * naming the field at fault, no stack trace, and nothing ever reaches the
 * upstream (asserted on the mock's own record of what it received).
 */

const BODY_LIMIT = 2048;
const user = (content: unknown = 'hi') => [{ role: 'user', content }];
const ok = (extra: Record<string, unknown>) => ({ model: 'mock-1', messages: user(), ...extra });

interface Case {
  name: string;
  /** A string is sent raw; anything else as JSON. */
  body: unknown;
  contentType?: string;
  status?: number;
  code: string;
  /** The field at fault, as OpenAI names params; null when the body as a whole is bad. */
  param: string | null;
}

const invalid = (name: string, body: unknown, param: string): Case => ({ name, body, code: 'invalid_body', param });
const badJson = (name: string, body: string): Case => ({ name, body, code: 'invalid_json', param: null });
const notObject = (name: string, body: string): Case => ({ name, body, code: 'invalid_body', param: null });

const cases: Case[] = [
  // The body as a whole.
  badJson('non-JSON text', '{"model": "mock-1", messages: nope'),
  badJson('empty body with content-type json', ''),
  badJson('truncated JSON', '{"model":"mock-1","messages":[{"role":"user","content":"hi"}'),
  notObject('JSON array', '[{"model":"mock-1"}]'),
  notObject('JSON string', '"hello"'),
  notObject('JSON null', 'null'),
  notObject('JSON number', '42'),
  badJson('__proto__ key', '{"model":"mock-1","messages":[{"role":"user","content":"hi"}],"__proto__":{"isAdmin":true}}'),
  badJson(
    'constructor.prototype key',
    '{"model":"mock-1","messages":[{"role":"user","content":"hi"}],"constructor":{"prototype":{"isAdmin":true}}}',
  ),
  // model
  invalid('missing model', { messages: user() }, 'model'),
  invalid('model not a string', { model: 42, messages: user() }, 'model'),
  invalid('empty model', { model: '', messages: user() }, 'model'),
  invalid('model longer than 256 characters', { model: 'm'.repeat(257), messages: user() }, 'model'),
  // messages
  invalid('missing messages', { model: 'mock-1' }, 'messages'),
  invalid('messages not an array', { model: 'mock-1', messages: { role: 'user', content: 'hi' } }, 'messages'),
  invalid('empty messages', { model: 'mock-1', messages: [] }, 'messages'),
  invalid('message not an object', { model: 'mock-1', messages: ['hi'] }, 'messages[0]'),
  invalid('message without role', { model: 'mock-1', messages: [{ content: 'hi' }] }, 'messages[0].role'),
  invalid('bad role', { model: 'mock-1', messages: [{ role: 'wizard', content: 'hi' }] }, 'messages[0].role'),
  invalid('user content a number', { model: 'mock-1', messages: user(42) }, 'messages[0].content'),
  invalid('content part with unknown type', { model: 'mock-1', messages: user([{ type: 'video', video: {} }]) }, 'messages[0].content'),
  invalid('text part whose text is not a string', { model: 'mock-1', messages: user([{ type: 'text', text: 1 }]) }, 'messages[0].content'),
  invalid(
    'tool message without tool_call_id',
    { model: 'mock-1', messages: [...user(), { role: 'tool', content: 'result' }] },
    'messages[1].tool_call_id',
  ),
  invalid(
    'assistant tool_calls entry without arguments',
    { model: 'mock-1', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f' } }] }, ...user()] },
    'messages[0].tool_calls[0].function.arguments',
  ),
  invalid('assistant tool_calls not an array', { model: 'mock-1', messages: [{ role: 'assistant', tool_calls: 'nope' }, ...user()] }, 'messages[0].tool_calls'),
  // sampling and limits
  invalid('negative max_tokens', ok({ max_tokens: -5 }), 'max_tokens'),
  invalid('max_tokens 0', ok({ max_tokens: 0 }), 'max_tokens'),
  invalid('fractional max_tokens', ok({ max_tokens: 1.5 }), 'max_tokens'),
  invalid('max_tokens as a string', ok({ max_tokens: '10' }), 'max_tokens'),
  invalid('max_completion_tokens above the limit', ok({ max_completion_tokens: defaultConfig().limits.maxTokens + 1 }), 'max_completion_tokens'),
  invalid('temperature 5', ok({ temperature: 5 }), 'temperature'),
  invalid('top_p -1', ok({ top_p: -1 }), 'top_p'),
  invalid('n 2', ok({ n: 2 }), 'n'),
  invalid('stop with 5 strings', ok({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop'),
  invalid('seed "abc"', ok({ seed: 'abc' }), 'seed'),
  invalid('logit_bias value out of range', ok({ logit_bias: { '50256': 1000 } }), 'logit_bias.50256'),
  // streaming flags
  invalid('stream "yes"', ok({ stream: 'yes' }), 'stream'),
  invalid('stream_options without stream', ok({ stream_options: { include_usage: true } }), 'stream_options'),
  invalid('stream_options with an unknown key', ok({ stream: true, stream_options: { include_usage: true, extra: 1 } }), 'stream_options'),
  // tools and formats
  invalid('tools with a bad function name', ok({ tools: [{ type: 'function', function: { name: 'bad name!' } }] }), 'tools[0].function.name'),
  invalid('tool_choice "sometimes"', ok({ tool_choice: 'sometimes' }), 'tool_choice'),
  invalid('response_format type "xml"', ok({ response_format: { type: 'xml' } }), 'response_format.type'),
  // transport
  {
    name: 'body over the limit',
    body: { model: 'mock-1', messages: user('x'.repeat(BODY_LIMIT + 100)) },
    status: 413,
    code: 'body_too_large',
    param: null,
  },
  {
    name: 'unsupported content-type application/xml',
    body: '<chat><model>mock-1</model></chat>',
    contentType: 'application/xml',
    status: 415,
    code: 'unsupported_media_type',
    param: null,
  },
];

t.test('malformed bodies: OpenAI-shaped 4xx naming the field, nothing sent upstream', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({
    ...viaUpstream(baseUrl),
    mock: FAST_MOCK,
    limits: { ...defaultConfig().limits, bodyLimitBytes: BODY_LIMIT },
  });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  t.ok(cases.length >= 30, `${cases.length} malformed bodies`);

  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const res = await send(`${gw.url}/v1/chat/completions`, {
        body: c.body,
        headers: { 'content-type': c.contentType ?? 'application/json' },
      });
      const status = c.status ?? 400;
      t.equal(res.status, status, `status ${status}`);
      t.match(res.headers['content-type'], /^application\/json/);
      const err = openAIError(res.body);
      if (typeof err === 'string') return t.fail(err);
      t.equal(err.error.code, c.code);
      t.equal(err.error.type, 'invalid_request_error');
      t.equal(err.error.param ?? null, c.param, 'param names the field at fault');
      if (c.param !== null) t.ok(err.error.message.includes(c.param), `message names ${c.param}: ${err.error.message}`);
      t.notMatch(res.body, STACK_TRACE, 'no stack trace or internal path in the body');
    });
  }

  t.equal(mock.requests.length, 0, 'the upstream received none of the malformed requests');

  await t.test('unknown model: 404 model_not_found, nothing sent upstream', async (t) => {
    const res = await send(`${gw.url}/v1/chat/completions`, {
      body: chatBody('hi', { model: 'gpt-does-not-exist' }),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(res.status, 404);
    const err = openAIError(res.body);
    if (typeof err === 'string') return t.fail(err);
    t.equal(err.error.code, 'model_not_found');
    t.equal(err.error.param, 'model');
    t.match(err.error.message, /gpt-does-not-exist/);
    t.notMatch(res.body, STACK_TRACE);
    t.equal(mock.requests.length, 0, 'still nothing sent upstream');
  });

  await t.test('unknown model with stream: true is refused the same way', async (t) => {
    const res = await send(`${gw.url}/v1/chat/completions`, {
      body: chatBody('hi', { model: 'gpt-does-not-exist', stream: true }),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(res.status, 404);
    t.match(res.headers['content-type'], /^application\/json/);
    t.equal(mock.requests.length, 0);
  });

  await t.test('a valid body still works afterwards', async (t) => {
    const res = await send(`${gw.url}/v1/chat/completions`, {
      body: chatBody('hi [mock:tokens=3]', { model: 'mock-1-mini' }),
      headers: { 'content-type': 'application/json' },
    });
    t.equal(res.status, 200);
    const completion = JSON.parse(res.body) as { object: string; model: string; choices: { message: { content: string } }[] };
    t.equal(completion.object, 'chat.completion');
    t.equal(completion.model, 'mock-1-mini');
    t.equal(mock.requests.length, 1, 'exactly one request reached the upstream');
    t.equal(mock.requests[0]!.body.model, 'mock-1-mini');
  });
});

t.test('text/plain body: 415 unsupported_media_type', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), mock: FAST_MOCK });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const res = await send(`${gw.url}/v1/chat/completions`, {
    body: JSON.stringify(chatBody('hi')),
    headers: { 'content-type': 'text/plain' },
  });
  t.ok(res.status >= 400 && res.status < 500, 'refused with a 4xx');
  const err = openAIError(res.body);
  if (typeof err === 'string') return t.fail(err);
  t.notMatch(res.body, STACK_TRACE);
  t.equal(mock.requests.length, 0, 'nothing sent upstream');
  t.equal(res.status, 415, 'status 415');
  t.equal(err.error.code, 'unsupported_media_type');
});
