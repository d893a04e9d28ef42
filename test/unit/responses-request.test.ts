import t from 'tap';
import { GatewayError } from '../../src/errors.js';
import { responsesRequestSchema, type ResponsesRequest } from '../../src/dialects/responses/request.js';
import { conversationAfter, inputMessages, outputMessages, toChatRequest } from '../../src/dialects/responses/to-chat.js';
import { functionCallItem, itemAddress, itemId, messageItem, type OutputItem } from '../../src/dialects/responses/response-object.js';
import { responseFromCompletion, errorBody } from '../../src/dialects/responses/response-body.js';
import { responsesDialect } from '../../src/dialects/responses/dialect.js';
import { chatRequestSchema } from '../../src/schema/chat-request.js';
import { validateBody } from '../../src/schema/validate.js';
import { meta } from '../helpers/responses-fixtures.js';

const limits = { maxMessages: 8, maxPromptChars: 400, maxTokens: 4096 };
const schema = responsesRequestSchema(limits);
const validate = (body: unknown): ResponsesRequest => validateBody(schema, body);
/** The chat request, checked by the chat route's own schema (what the relay would send upstream). */
const chat = (body: unknown, ...rest: Parameters<typeof toChatRequest> extends [unknown, ...infer R] ? R : never) =>
  validateBody(chatRequestSchema({ ...limits, maxMessages: 100 }), toChatRequest(validate(body), ...rest));

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function rejection(t: Test, body: unknown): GatewayError {
  try {
    validate(body);
  } catch (e) {
    t.type(e, GatewayError);
    return e as GatewayError;
  }
  t.fail(`accepted ${JSON.stringify(body)}`);
  return new GatewayError('internal_error', '(none)');
}

const base = { model: 'mock-1', input: 'hello' };

t.test('string input is one user message; instructions come first, then the previous conversation', async (t) => {
  t.same(chat(base).messages, [{ role: 'user', content: 'hello' }]);
  const previous = [
    { role: 'user' as const, content: 'earlier' },
    { role: 'assistant' as const, content: 'reply' },
  ];
  t.same(chat({ ...base, instructions: 'Be brief.' }, previous).messages, [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'earlier' },
    { role: 'assistant', content: 'reply' },
    { role: 'user', content: 'hello' },
  ]);
  t.same(responsesDialect.toChatRequest(validate(base)).messages, [{ role: 'user', content: 'hello' }], 'the Dialect entry point');
});

t.test('message items, with or without type, every role, text and image parts', async (t) => {
  const req = chat({
    model: 'mock-1',
    input: [
      { role: 'developer', content: 'Answer in English.' },
      { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'A' }, { type: 'input_text', text: 'B' }] },
      {
        role: 'user',
        content: [
          { type: 'input_text', text: 'What is this?' },
          { type: 'input_image', image_url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' },
          { type: 'input_image', image_url: 'https://example.com/a.png' },
        ],
      },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'one part' }] },
      {
        type: 'message',
        id: 'msg_abc',
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'A cat.', annotations: [], logprobs: [] }],
      },
      { role: 'assistant', content: [{ type: 'output_text', text: 'x' }, { type: 'refusal', refusal: 'no' }] },
    ],
  });
  t.same(req.messages, [
    { role: 'developer', content: 'Answer in English.' },
    { role: 'system', content: [{ type: 'text', text: 'A' }, { type: 'text', text: 'B' }] },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
        { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
      ],
    },
    { role: 'user', content: 'one part' },
    { role: 'assistant', content: 'A cat.' },
    { role: 'assistant', content: [{ type: 'text', text: 'x' }, { type: 'refusal', refusal: 'no' }] },
  ]);
});

t.test('function calls: consecutive ones make one assistant message; outputs are tool messages', async (t) => {
  const req = chat({
    model: 'mock-1',
    input: [
      { role: 'user', content: 'Weather and time in Paris?' },
      { role: 'assistant', content: [{ type: 'output_text', text: 'Checking.' }] },
      { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}', id: 'fc_1', status: 'completed' },
      { type: 'function_call', call_id: 'call_2', name: 'get_time', arguments: '{}' },
      { type: 'function_call_output', call_id: 'call_1', output: '{"temp":21}' },
      { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: '12:' }, { type: 'input_text', text: '00' }] },
      { type: 'function_call', call_id: 'call_3', name: 'get_weather', arguments: '{"city":"Lyon"}' },
    ],
  });
  t.same(req.messages, [
    { role: 'user', content: 'Weather and time in Paris?' },
    {
      role: 'assistant',
      content: 'Checking.',
      tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temp":21}' },
    { role: 'tool', tool_call_id: 'call_2', content: '12:00' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_3', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Lyon"}' } }] },
  ]);
});

t.test('sampling, tools, tool_choice, text.format, user and the rest map onto chat fields', async (t) => {
  const tool = { type: 'function', name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} }, strict: true };
  const req = chat({
    ...base,
    stream: true,
    max_output_tokens: 300,
    temperature: 0.2,
    top_p: 0.9,
    tools: [tool, { type: 'function', name: 'bare', parameters: null, strict: null, description: null }],
    tool_choice: { type: 'function', name: 'get_weather' },
    parallel_tool_calls: false,
    text: { format: { type: 'json_schema', name: 'answer', schema: { type: 'object' }, strict: true, description: 'd' } },
    user: 'u-1',
    safety_identifier: 'hash-1',
    prompt_cache_key: 'k-1',
    store: false,
    metadata: { a: 'b' },
    include: ['reasoning.encrypted_content'],
    truncation: 'disabled',
    reasoning: { effort: null, summary: null },
    service_tier: 'auto',
    stream_options: { include_obfuscation: false },
  });
  t.match(req, {
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 300,
    temperature: 0.2,
    top_p: 0.9,
    tools: [
      { type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} }, strict: true } },
      { type: 'function', function: { name: 'bare' } },
    ],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    parallel_tool_calls: false,
    response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object' }, strict: true, description: 'd' } },
    user: 'u-1',
    safety_identifier: 'hash-1',
    prompt_cache_key: 'k-1',
  });
  t.same(Object.keys(req.tools![1]!.function), ['name'], 'null tool fields are left out');
  for (const k of ['store', 'metadata', 'include', 'truncation', 'reasoning', 'service_tier', 'instructions', 'input', 'max_output_tokens', 'text']) {
    t.notOk(k in req, `${k} stays out of the chat request`);
  }
  t.same(chat({ ...base, text: { format: { type: 'json_object' } } }).response_format, { type: 'json_object' });
  t.notOk('response_format' in chat({ ...base, text: { format: { type: 'text' } } }), 'text format is chat default');
  t.equal(chat({ ...base, tool_choice: 'required', tools: [tool] }).tool_choice, 'required');
  t.notOk('parallel_tool_calls' in chat({ ...base, parallel_tool_calls: true }), 'no parallel_tool_calls without tools (OpenAI refuses it)');
  t.notOk('stream' in chat(base), 'no stream for stream: false');
});

t.test('item_reference: resolved through the lookup; unknown → 400 naming it', async (t) => {
  const respId = 'resp_ffff0000';
  const kept: OutputItem[] = [messageItem(itemId(respId, 'msg', 0), 'Earlier answer.', 'completed'), functionCallItem(itemId(respId, 'fc', 1), 'call_9', 'f', '{}', 'completed')];
  const lookup = (id: string) => {
    const at = itemAddress(id);
    return at?.responseId === respId ? kept[at.outputIndex] : undefined;
  };
  t.same(itemAddress('msg_ffff0000_0'), { responseId: 'resp_ffff0000', outputIndex: 0 });
  t.same(itemAddress('fc_a_b_12'), { responseId: 'resp_a_b', outputIndex: 12 }, 'ids with underscores');
  t.equal(itemAddress('msg_elsewhere'), null);
  const body = { model: 'mock-1', input: [{ role: 'user', content: 'hi' }, { type: 'item_reference', id: 'msg_ffff0000_0' }, { type: 'item_reference', id: 'fc_ffff0000_1' }, { role: 'user', content: 'again' }] };
  t.same(chat(body, [], lookup).messages, [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'Earlier answer.', tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'f', arguments: '{}' } }] },
    { role: 'user', content: 'again' },
  ]);
  for (const l of [undefined, () => undefined]) {
    try {
      toChatRequest(validate({ model: 'mock-1', input: [{ type: 'item_reference', id: 'msg_gone_0' }] }), [], l);
      t.fail('resolved an unknown item');
    } catch (e) {
      t.match(e, { code: 'invalid_body', status: 400, param: 'input[0].id', message: /msg_gone_0/ });
    }
  }
});

t.test('conversationAfter: the request without its instructions, then the output as one assistant turn', async (t) => {
  const body = validate({ ...base, instructions: 'Be brief.' });
  const req = toChatRequest(body, [{ role: 'user', content: 'before' }]);
  const output: OutputItem[] = [messageItem('msg_x_0', 'Sure.', 'completed'), functionCallItem('fc_x_1', 'call_1', 'f', '{"a":1}', 'completed')];
  const conv = conversationAfter(body, req, { output });
  t.same(conv, [
    { role: 'user', content: 'before' },
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'Sure.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }] },
  ]);
  t.same(outputMessages([]), []);
  t.same(inputMessages(validate(base).input), [{ role: 'user', content: 'hello' }]);
  // The next turn: previous_response_id's conversation goes before the new input, under the new instructions.
  const next = toChatRequest(validate({ ...base, input: 'and then?', instructions: 'New rules.' }), conv);
  t.same(next.messages.map((m) => m.role), ['system', 'user', 'user', 'assistant', 'user']);
  t.equal(next.messages[0]!.content, 'New rules.');
});

t.test('every unsupported or invalid field is a 400 naming it', async (t) => {
  const user = (content: unknown) => ({ model: 'mock-1', input: [{ role: 'user', content }] });
  const cases: [string, unknown, string, RegExp][] = [
    ['no model', { input: 'x' }, 'model', /is required/],
    ['no input', { model: 'mock-1' }, 'input', /is required/],
    ['input a number', { model: 'mock-1', input: 3 }, 'input', /string or an array of input items/],
    ['input empty', { model: 'mock-1', input: [] }, 'input', /must not be empty/],
    ['too many items', { model: 'mock-1', input: Array(9).fill({ role: 'user', content: 'x' }) }, 'input', /at most 8/],
    ['prompt too long', { model: 'mock-1', input: 'x'.repeat(300), instructions: 'y'.repeat(101) }, 'input', /401 characters, at most 400/],
    ['reasoning item', { model: 'mock-1', input: [{ type: 'reasoning', id: 'rs_1', summary: [] }] }, 'input[0].type', /"reasoning" are not supported/],
    ['web_search_call item', { model: 'mock-1', input: [{ type: 'web_search_call', id: 'ws' }] }, 'input[0].type', /"web_search_call" are not supported/],
    ['tool role', { model: 'mock-1', input: [{ role: 'tool', content: 'x' }] }, 'input[0].role', /role must be one of/],
    ['content a number', user(3), 'input[0].content', /string or an array of content parts/],
    ['content empty', user([]), 'input[0].content', /must not be empty/],
    ['input_file part', user([{ type: 'input_file', file_id: 'f' }]), 'input[0].content[0].type', /"input_file" are not supported/],
    ['image by file_id', user([{ type: 'input_image', file_id: 'file-1', detail: 'auto' }]), 'input[0].content[0].file_id', /send the image as image_url/],
    ['image detail', user([{ type: 'input_image', image_url: 'https://x/y.png', detail: 'original' }]), 'input[0].content[0].detail', /"auto", "low" or "high"/],
    ['image in system', { model: 'mock-1', input: [{ role: 'system', content: [{ type: 'input_image', image_url: 'https://x' }] }] }, 'input[0].content[0].type', /"input_image" are not supported/],
    ['unknown message field', { model: 'mock-1', input: [{ role: 'user', content: 'x', name: 'bob' }] }, 'input[0].name', /is not supported/],
    ['cache breakpoint on a part', user([{ type: 'input_text', text: 'x', prompt_cache_breakpoint: {} }]), 'input[0].content[0].prompt_cache_breakpoint', /is not supported/],
    ['function_call without call_id', { model: 'mock-1', input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 'input[0].call_id', /is required/],
    ['function_call namespace', { model: 'mock-1', input: [{ type: 'function_call', call_id: 'c', name: 'f', arguments: '{}', namespace: 'n' }] }, 'input[0].namespace', /is not supported/],
    ['image in tool output', { model: 'mock-1', input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_image', image_url: 'https://x' }] }] }, 'input[0].output[0].type', /"input_image" are not supported/],
    ['item_reference without id', { model: 'mock-1', input: [{ type: 'item_reference' }] }, 'input[0].id', /is required/],
    ['built-in tool', { ...base, tools: [{ type: 'web_search' }] }, 'tools[0].type', /tools of type "web_search" are not supported \(only function\)/],
    ['file_search tool', { ...base, tools: [{ type: 'file_search', vector_store_ids: ['vs'] }] }, 'tools[0].type', /"file_search"/],
    ['bad tool name', { ...base, tools: [{ type: 'function', name: 'has space' }] }, 'tools[0].name', /1-64 letters/],
    ['deferred tool', { ...base, tools: [{ type: 'function', name: 'f', defer_loading: true }] }, 'tools[0].defer_loading', /is not supported/],
    ['hosted tool_choice', { ...base, tool_choice: { type: 'web_search_preview' } }, 'tool_choice', /"none", "auto", "required"/],
    ['allowed_tools choice', { ...base, tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [] } }, 'tool_choice', /"none", "auto", "required"/],
    ['max_output_tokens 0', { ...base, max_output_tokens: 0 }, 'max_output_tokens', /must be >= 1/],
    ['max_output_tokens big', { ...base, max_output_tokens: 5000 }, 'max_output_tokens', /must be <= 4096/],
    ['max_output_tokens float', { ...base, max_output_tokens: 1.5 }, 'max_output_tokens', /integer/],
    ['temperature', { ...base, temperature: 3 }, 'temperature', /must be <= 2/],
    ['top_p', { ...base, top_p: 'high' }, 'top_p', /must be a number/],
    ['text format', { ...base, text: { format: { type: 'grammar' } } }, 'text.format.type', /type must be one of text, json_object, json_schema/],
    ['json_schema without schema', { ...base, text: { format: { type: 'json_schema', name: 'a' } } }, 'text.format.schema', /JSON Schema object/],
    ['verbosity', { ...base, text: { verbosity: 'low' } }, 'text.verbosity', /is not supported/],
    ['reasoning effort', { ...base, reasoning: { effort: 'high' } }, 'reasoning.effort', /is not supported/],
    ['reasoning summary', { ...base, reasoning: { summary: 'auto' } }, 'reasoning.summary', /is not supported/],
    ['logprobs include', { ...base, include: ['message.output_text.logprobs'] }, 'include[0]', /logprobs are not supported/],
    ['unknown include', { ...base, include: ['everything'] }, 'include[0]', /known include value/],
    ['top_logprobs', { ...base, top_logprobs: 5 }, 'top_logprobs', /logprobs are not supported/],
    ['truncation auto', { ...base, truncation: 'auto' }, 'truncation', /only "disabled"/],
    ['priority tier', { ...base, service_tier: 'priority' }, 'service_tier', /only "auto" or "default"/],
    ['conversation', { ...base, conversation: 'conv_1' }, 'conversation', /is not supported/],
    ['stored prompt', { ...base, prompt: { id: 'pmpt_1' } }, 'prompt', /is not supported/],
    ['max_tool_calls', { ...base, max_tool_calls: 2 }, 'max_tool_calls', /is not supported/],
    ['a typo', { ...base, temprature: 1 }, 'temprature', /is not supported/],
    ['stream not boolean', { ...base, stream: 'yes' }, 'stream', /must be a boolean/],
    ['stream_options without stream', { ...base, stream_options: { include_obfuscation: true } }, 'stream_options', /only allowed when stream is true/],
    ['background without store', { ...base, background: true, store: false }, 'background', /requires store/],
    ['previous_response_id empty', { ...base, previous_response_id: '' }, 'previous_response_id', /must not be empty/],
    ['metadata value', { ...base, metadata: { k: 1 } }, 'metadata.k', /must be a string/],
    ['metadata size', { ...base, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata', /at most 16/],
  ];
  for (const [name, body, param, message] of cases) {
    const e = rejection(t, body);
    t.equal(e.param, param, `${name}: param`);
    t.match(e.message, message, `${name}: message`);
    t.equal(e.status, 400, `${name}: status`);
    t.equal(e.message.startsWith(`${param}: `), true, `${name}: the message names the field`);
  }
});

t.test('responseFromCompletion: a non-stream chat.completion as a response object', async (t) => {
  const m = meta({ tools: [{ type: 'function', name: 'f' }] as ResponsesRequest['tools'] }, 'resp_abc');
  const completion = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'upstream-name',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'Calling.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        finish_reason: 'tool_calls',
      },
    ],
    usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7, prompt_tokens_details: { cached_tokens: 1 } },
  };
  const r = responseFromCompletion(completion, m, () => 9_000);
  t.match(r, {
    id: 'resp_abc',
    object: 'response',
    status: 'completed',
    completed_at: 9,
    model: 'mock-1',
    output: [
      { id: 'msg_abc_0', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Calling.', annotations: [] }] },
      { id: 'fc_abc_1', type: 'function_call', status: 'completed', call_id: 'call_1', name: 'f', arguments: '{}' },
    ],
    usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7, input_tokens_details: { cached_tokens: 1 } },
    tools: [{ type: 'function', name: 'f', parameters: null, strict: null }],
    tool_choice: 'auto',
    parallel_tool_calls: true,
    text: { format: { type: 'text' } },
    store: true,
    background: false,
  });
  const cut = responseFromCompletion({ choices: [{ message: { content: 'Par' }, finish_reason: 'length' }] }, m);
  t.match(cut, { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, completed_at: null, usage: null, output: [{ status: 'incomplete' }] });
  t.same(responseFromCompletion({ choices: [{ message: { content: null }, finish_reason: 'stop' }] }, m).output, [], 'no text, no message item');
});

t.test('errorBody: the OpenAI error shape the gateway uses everywhere', async (t) => {
  const e = new GatewayError('invalid_body', 'input: is required', { param: 'input' });
  t.same(errorBody(e), { error: { message: 'input: is required', type: 'invalid_request_error', code: 'invalid_body', param: 'input' } });
  t.same(responsesDialect.errorBody(e), errorBody(e));
  t.equal(responsesDialect.api, 'responses');
});
