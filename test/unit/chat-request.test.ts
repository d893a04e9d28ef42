import t from 'tap';
import { GatewayError } from '../../src/errors.js';
import { chatRequestSchema, lastUserText, paramName, type ChatRequest } from '../../src/schema/chat-request.js';
import { validateBody } from '../../src/schema/validate.js';

const limits = { maxMessages: 4, maxPromptChars: 200, maxTokens: 4096 };
const schema = chatRequestSchema(limits);
const validate = (body: unknown): ChatRequest => validateBody(schema, body);

const user = { role: 'user', content: 'hello' };
const base = { model: 'gpt-4o-mini', messages: [user] };

/** A subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** The GatewayError validate throws for this body, failing the test if it throws none. */
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

t.test('accepts realistic requests and keeps them as sent', async (t) => {
  const bodies: Record<string, Record<string, unknown>> = {
    minimal: base,
    'every role, parts and tool calls': {
      model: 'gpt-4o',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in English.' }], name: 'dev' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in this picture?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'low' } },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }],
        },
      ],
    },
    'tool result and tools': {
      model: 'gpt-4o',
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'tool', content: '{"temp":21}', tool_call_id: 'call_1' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'get_weather',
            description: 'Current weather',
            parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
            strict: true,
          },
        },
      ],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      parallel_tool_calls: false,
    },
    'response_format json_schema': {
      ...base,
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'answer', schema: { type: 'object', properties: { a: { type: 'string' } } }, strict: true },
      },
    },
    'stream with stream_options': { ...base, stream: true, stream_options: { include_usage: true } },
    'stop as a string': { ...base, stop: '\n\n' },
    'stop as an array of 4': { ...base, stop: ['a', 'b', 'c', 'd'] },
    'sampling fields': {
      ...base,
      n: 1,
      seed: 42,
      user: 'user-1234',
      temperature: 0,
      top_p: 1,
      max_tokens: 4096,
      max_completion_tokens: 1,
      presence_penalty: -2,
      frequency_penalty: 2,
      logit_bias: { '50256': -100 },
      logprobs: true,
      top_logprobs: 5,
      metadata: { team: 'a' },
    },
    'nulls where OpenAI allows them': { ...base, stream: null, temperature: null, max_tokens: null, stop: null, n: null, seed: null },
    'tool_choice as a string': { ...base, tool_choice: 'auto' },
    'json_object': { ...base, response_format: { type: 'json_object' } },
    'assistant refusal parts': {
      model: 'm',
      messages: [user, { role: 'assistant', content: [{ type: 'refusal', refusal: 'no' }] }, user],
    },
  };
  for (const [name, body] of Object.entries(bodies)) {
    t.strictSame(validate(body), body, name);
  }
});

t.test('unknown provider fields (top_k) are kept', async (t) => {
  const out = validate({ ...base, top_k: 40, repetition_penalty: 1.1, chat_template_kwargs: { enable_thinking: false } });
  t.equal(out.top_k, 40);
  t.equal(out.repetition_penalty, 1.1);
  t.strictSame(out.chat_template_kwargs, { enable_thinking: false });
  const msg = validate({ model: 'm', messages: [{ role: 'user', content: 'x', cache_control: { type: 'ephemeral' } }] });
  t.strictSame(msg.messages[0], { role: 'user', content: 'x', cache_control: { type: 'ephemeral' } }, 'extra message fields too');
});

t.test('rejects with a 400 naming the param', async (t) => {
  const long = 'x'.repeat(limits.maxPromptChars + 1);
  const cases: [string, unknown, string, RegExp?][] = [
    ['missing model', { messages: [user] }, 'model', /is required/],
    ['empty model', { model: '', messages: [user] }, 'model', /empty/],
    ['model not a string', { model: 5, messages: [user] }, 'model', /string/],
    ['missing messages', { model: 'm' }, 'messages'],
    ['empty messages', { model: 'm', messages: [] }, 'messages', /at least one/],
    ['messages not an array', { model: 'm', messages: 'hi' }, 'messages', /array/],
    ['bad role', { model: 'm', messages: [user, { role: 'bot', content: 'x' }] }, 'messages[1].role', /system, developer, user, assistant, tool/],
    ['missing role', { model: 'm', messages: [{ content: 'x' }] }, 'messages[0].role'],
    ['tool message without tool_call_id', { model: 'm', messages: [user, { role: 'tool', content: '42' }] }, 'messages[1].tool_call_id', /required/],
    ['user content a number', { model: 'm', messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    ['empty content parts', { model: 'm', messages: [{ role: 'user', content: [] }] }, 'messages[0].content'],
    ['n: 2', { ...base, n: 2 }, 'n', /n=1/],
    ['temperature 3', { ...base, temperature: 3 }, 'temperature', /<= 2/],
    ['temperature as string', { ...base, temperature: '0.5' }, 'temperature', /number/],
    ['max_tokens 0', { ...base, max_tokens: 0 }, 'max_tokens', />= 1/],
    ['max_tokens -1', { ...base, max_tokens: -1 }, 'max_tokens', />= 1/],
    ['max_tokens 1.5', { ...base, max_tokens: 1.5 }, 'max_tokens', /integer/],
    ['max_tokens over the limit', { ...base, max_tokens: limits.maxTokens + 1 }, 'max_tokens', /<= 4096/],
    ['max_completion_tokens 0', { ...base, max_completion_tokens: 0 }, 'max_completion_tokens'],
    ['stop with 5 entries', { ...base, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /4/],
    ['stop a number', { ...base, stop: 5 }, 'stop'],
    ['tool name with spaces', { ...base, tools: [{ type: 'function', function: { name: 'get weather' } }] }, 'tools[0].function.name'],
    ['unknown field in a tool', { ...base, tools: [{ type: 'function', function: { name: 'f', nme: 'x' } }] }, 'tools[0].function', /unknown field "nme"/],
    ['stream_options without stream', { ...base, stream_options: { include_usage: true } }, 'stream_options', /stream/],
    ['stream_options with stream false', { ...base, stream: false, stream_options: { include_usage: true } }, 'stream_options'],
    ['bad tool_choice', { ...base, tool_choice: 'sometimes' }, 'tool_choice'],
    ['bad response_format type', { ...base, response_format: { type: 'xml' } }, 'response_format.type'],
    ['stream not a boolean', { ...base, stream: 'yes' }, 'stream', /boolean/],
    ['too many messages', { model: 'm', messages: Array.from({ length: limits.maxMessages + 1 }, () => user) }, 'messages', /at most 4/],
    ['prompt too long', { model: 'm', messages: [{ role: 'user', content: long }] }, 'messages', /201 characters, at most 200/],
    [
      'prompt too long over several messages and parts',
      {
        model: 'm',
        messages: [
          { role: 'system', content: 'x'.repeat(100) },
          { role: 'user', content: [{ type: 'text', text: 'y'.repeat(60) }, { type: 'text', text: 'z'.repeat(41) }] },
        ],
      },
      'messages',
      /201 characters/,
    ],
  ];
  for (const [name, body, param, why] of cases) {
    t.test(name, async (t) => {
      const e = rejection(t, body);
      t.equal(e.status, 400);
      t.equal(e.code, 'invalid_body');
      t.equal(e.param, param, 'param');
      t.ok(e.message.startsWith(`${param}: `), `"${e.message}" starts with "${param}: "`);
      if (why) t.match(e.message, why);
      t.equal(e.toBody().error.param, param);
    });
  }
});

t.test('the prompt limit counts text exactly up to the limit', async (t) => {
  t.ok(validate({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(limits.maxPromptChars) }] }));
  t.ok(validate({ model: 'm', messages: Array.from({ length: limits.maxMessages }, () => user) }), 'exactly maxMessages');
});

t.test('non-object bodies are a 400 without a param', async (t) => {
  for (const body of [null, undefined, [], [base], 'model=x', 42, true]) {
    const e = rejection(t, body);
    t.equal(e.status, 400);
    t.equal(e.code, 'invalid_body');
    t.equal(e.param, null);
    t.match(e.message, /JSON object/);
  }
});

t.test('lastUserText reads the last user message', async (t) => {
  const req = validate({
    model: 'm',
    messages: [
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'reply' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'look at ' },
          { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
          { type: 'text', text: 'this [mock:tokens=3]' },
        ],
      },
      { role: 'assistant', content: null },
    ],
  });
  t.equal(lastUserText(req), 'look at this [mock:tokens=3]', 'text parts joined, other parts skipped');
  t.equal(lastUserText(validate({ model: 'm', messages: [user, { role: 'assistant', content: 'x' }] })), 'hello');
  t.equal(lastUserText(validate({ model: 'm', messages: [{ role: 'system', content: 'only system' }] })), '', 'no user message');
});

t.test('paramName writes zod paths the way OpenAI names params', async (t) => {
  t.equal(paramName([]), '');
  t.equal(paramName(['model']), 'model');
  t.equal(paramName(['messages', 0, 'role']), 'messages[0].role');
  t.equal(paramName(['tools', 12, 'function', 'name']), 'tools[12].function.name');
  t.equal(paramName(['messages', 1, 'content', 0, 'image_url', 'url']), 'messages[1].content[0].image_url.url');
  t.equal(paramName(['a', 1, 2]), 'a[1][2]');
  t.equal(paramName([0, 'x']), '[0].x');
});
