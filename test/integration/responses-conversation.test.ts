import { OpenAI } from 'openai';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { failure } from '../helpers/http.js';

/** stream: false, retrieve, and conversations continued by previous_response_id, checked on the upstream's side of the wire. */
t.test('Responses: JSON answers and conversations', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-1', 'key-2'], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-1', maxRetries: 0 });
  const other = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-2', maxRetries: 0 });
  const upstreamPlan = () => planCompletion(mock.requests.at(-1)!.body, FAST_MOCK);

  t.test('create (stream: false) → a response object; retrieve gives it back', async (t) => {
    const r = await client.responses.create({ model: 'mock-1', input: 'Hello there [mock:tokens=9]', metadata: { run: 'a' } });
    const plan = upstreamPlan();
    t.match(r.id, /^resp_[A-Za-z0-9_-]{22}$/);
    t.equal(r.object, 'response');
    t.equal(r.status, 'completed');
    t.equal(r.output_text, plan.content);
    t.match(r.output, [{ type: 'message', role: 'assistant', status: 'completed', id: /^msg_/ }]);
    t.match(r.usage, { input_tokens: plan.usage.prompt_tokens, output_tokens: 9, total_tokens: plan.usage.total_tokens });
    t.strictSame(r.metadata, { run: 'a' });

    const again = await client.responses.retrieve(r.id);
    t.strictSame(again, r, 'GET answers the final object, as the log holds it');
    const line = await gw.logs.waitForRequest((l) => l.method === 'POST' && l.stream_id === `str_${r.id.slice(5)}`);
    t.equal(line.api, 'responses');
    t.equal(line.completion_tokens, 9);
  });

  t.test('max_output_tokens cut → incomplete', async (t) => {
    const r = await client.responses.create({ model: 'mock-1', input: 'Long one [mock:tokens=40]', max_output_tokens: 5 });
    t.equal(r.status, 'incomplete');
    t.strictSame(r.incomplete_details, { reason: 'max_output_tokens' });
    t.equal(mock.requests.at(-1)!.body.max_tokens, 5);
  });

  t.test('previous_response_id continues the conversation: the upstream gets it whole', async (t) => {
    const first = await client.responses.create({ model: 'mock-1', instructions: 'You echo.', input: 'My name is Ada [mock:echo]' });
    t.equal(first.output_text, 'My name is Ada ');
    const second = await client.responses.stream({ model: 'mock-1', previous_response_id: first.id, input: 'What is my name? [mock:echo]' }).finalResponse();
    t.equal(second.previous_response_id, first.id);
    t.equal(second.instructions, null, 'instructions are not carried over');
    t.strictSame(mock.requests.at(-1)!.body.messages, [
      { role: 'user', content: 'My name is Ada [mock:echo]' },
      { role: 'assistant', content: 'My name is Ada ' },
      { role: 'user', content: 'What is my name? [mock:echo]' },
    ]);
    const third = await client.responses.create({ model: 'mock-1', previous_response_id: second.id, input: 'And again [mock:echo]' });
    t.equal(mock.requests.at(-1)!.body.messages.length, 5, 'a chain keeps growing');
    t.equal(third.output_text, 'And again ');

    t.test('another key cannot continue it: 400 previous_response_not_found', async (t) => {
      const err = await failure(other.responses.create({ model: 'mock-1', previous_response_id: first.id, input: 'hi' }));
      t.type(err, OpenAI.BadRequestError);
      t.match(err, { status: 400, code: 'previous_response_not_found', param: 'previous_response_id' });
    });
  });

  t.test('unknown previous_response_id, or one stored with store: false → 400, nothing sent upstream', async (t) => {
    const notKept = await client.responses.create({ model: 'mock-1', input: 'forget me', store: false });
    t.equal((notKept as unknown as { store: boolean }).store, false, 'echoed (the SDK type has no `store`)');
    const sent = mock.requests.length;
    for (const id of ['resp_nope', notKept.id]) {
      const err = await failure(client.responses.create({ model: 'mock-1', previous_response_id: id, input: 'hi' }));
      t.type(err, OpenAI.BadRequestError);
      t.match(err, { status: 400, code: 'previous_response_not_found', param: 'previous_response_id', error: { type: 'invalid_request_error' } });
    }
    t.equal(mock.requests.length, sent);
  });

  t.test('a function call and its output: a round trip through previous_response_id', async (t) => {
    const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { query: { type: 'string' } } }, strict: false }];
    const call = await client.responses.create({ model: 'mock-1', input: 'weather in Oslo', tools });
    const fc = call.output.find((o) => o.type === 'function_call')!;
    t.match(fc, { type: 'function_call', name: 'get_weather', call_id: /^call_/, status: 'completed' });
    t.strictSame(JSON.parse((fc as { arguments: string }).arguments), { query: 'weather in Oslo' });
    t.strictSame(mock.requests.at(-1)!.body.tools, [{ type: 'function', function: { name: 'get_weather', parameters: tools[0]!.parameters, strict: false } }]);

    const callId = (fc as { call_id: string }).call_id;
    const answer = await client.responses.create({
      model: 'mock-1',
      previous_response_id: call.id,
      input: [{ type: 'function_call_output', call_id: callId, output: '{"celsius":4}' }],
      tools,
      tool_choice: 'none',
    });
    t.equal(answer.status, 'completed');
    t.equal(answer.output[0]!.type, 'message');
    const messages = mock.requests.at(-1)!.body.messages;
    t.strictSame(messages.slice(1), [
      { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: 'get_weather', arguments: (fc as { arguments: string }).arguments } }] },
      { role: 'tool', tool_call_id: callId, content: '{"celsius":4}' },
    ]);

    t.test('item_reference to a kept output item resolves to it', async (t) => {
      await client.responses.create({
        model: 'mock-1',
        input: [
          { role: 'user', content: 'weather in Oslo' },
          { type: 'item_reference', id: fc.id! },
          { type: 'function_call_output', call_id: callId, output: 'cold' },
        ],
        tools,
        tool_choice: 'none',
      });
      t.strictSame(mock.requests.at(-1)!.body.messages[1], messages[1]);
      const err = await failure(other.responses.create({ model: 'mock-1', input: [{ type: 'item_reference', id: fc.id! }] }));
      t.match(err, { status: 400, param: 'input[0].id' }, "another key's items are not there");
    });
  });

  t.test('retrieve of an unknown id → 404 in the OpenAI shape', async (t) => {
    for (const id of ['resp_AAAAAAAAAAAAAAAAAAAAAA', 'resp_bad', 'not-even-close']) {
      const err = await failure(client.responses.retrieve(id));
      t.type(err, OpenAI.NotFoundError, id);
      t.match(err, { status: 404, code: 'response_not_found', error: { type: 'invalid_request_error' } });
    }
  });

  t.test('a chat completions stream is not a response', async (t) => {
    const { response } = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }], stream: true }).withResponse();
    const streamId = response.headers.get('x-stream-id')!;
    await gw.logs.waitForRequest((l) => l.stream_id === streamId);
    t.match(await failure(client.responses.retrieve(`resp_${streamId.slice(4)}`)), { status: 404 });
  });
});
