import Anthropic, { APIError } from '@anthropic-ai/sdk';
import { OpenAI } from 'openai';
import t from 'tap';
import { FAST_MOCK, startGateway } from '../helpers/gateway.js';
import { failure, waitUntil } from '../helpers/http.js';
import { openStream } from '../helpers/sse.js';

/**
 * One key, two APIs, one set of limits: Messages requests count against the
 * same request rate and the same open-stream slots as chat completions.
 */

const KEY = 'gw-messages-limits-key';

const ask = (content: string) => ({ model: 'mock-1', max_tokens: 64, messages: [{ role: 'user' as const, content }] });

t.test('the request rate counts Messages and chat completions together', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [KEY], rateLimit: { max: 4, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });

  await openai.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'one [mock:tokens=2]' }] });
  await anthropic.messages.create(ask('two [mock:tokens=2]'));
  await anthropic.messages.countTokens({ model: 'mock-1', messages: ask('three').messages });
  await openai.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'four [mock:tokens=2]' }] });

  const fifth = await failure(anthropic.messages.create(ask('five [mock:tokens=2]')));
  t.type(fifth, Anthropic.RateLimitError, 'the fifth request of the key, a Messages one, is refused');
  t.equal((fifth as APIError).errorCode, 'rate_limit_exceeded');
  t.type(await failure(openai.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'six' }] })), OpenAI.RateLimitError, 'and so is chat');
});

t.test('open streams count Messages and chat completions together', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [KEY], maxConcurrentStreams: 1, rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(() => gw.close());
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
  const headers = { authorization: `Bearer ${KEY}` };
  const open = () => gw.slots.total;

  // A chat stream that stays open holds the key's only slot.
  const chat = await openStream(`${gw.url}/v1/chat/completions`, { model: 'mock-1', stream: true, messages: [{ role: 'user', content: '[mock:hang-after=2]' }] }, headers);
  t.equal(chat.res.statusCode, 200);
  const refused = await failure(anthropic.messages.stream(ask('hi [mock:tokens=2]')).finalMessage());
  t.type(refused, Anthropic.RateLimitError, 'a Messages stream waits for the slot');
  t.equal((refused as APIError).errorCode, 'too_many_streams');
  t.equal((refused as APIError).headers?.get('retry-after'), '1');
  chat.destroy();
  await waitUntil(() => open() === 0, 'the chat stream to release its slot');

  // And the other way round.
  const messages = await openStream(`${gw.url}/v1/messages`, { ...ask('[mock:hang-after=2]'), stream: true }, { 'x-api-key': KEY });
  t.equal(messages.res.statusCode, 200);
  const chatRefused = await failure(openai.chat.completions.create({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
  t.type(chatRefused, OpenAI.RateLimitError, 'a chat stream waits for the slot a Messages stream holds');
  messages.destroy();
  await waitUntil(() => open() === 0, 'the Messages stream to release its slot');
  const after = await anthropic.messages.stream(ask('again [mock:tokens=3]')).finalMessage();
  t.equal(after.stop_reason, 'end_turn', 'the slot is free again');
});
