import t from 'tap';
import type Anthropic from '@anthropic-ai/sdk';
import type { z } from 'zod';
import { GatewayError } from '../../src/errors.js';
import { countTokensSchema, messagesRequestSchema, type MessagesRequest } from '../../src/dialects/messages/request.js';
import { toChatRequest } from '../../src/dialects/messages/to-chat-request.js';
import { countTokens } from '../../src/dialects/messages/response-body.js';
import { messagesDialect } from '../../src/dialects/messages/dialect.js';
import { chatRequestSchema } from '../../src/schema/chat-request.js';
import { validateBody } from '../../src/schema/validate.js';

const limits = { maxMessages: 6, maxPromptChars: 2000, maxTokens: 4096 };
const validate = (body: unknown): MessagesRequest => validateBody(messagesRequestSchema(limits), body);
const base = { model: 'claude-gw', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] };

/** A subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function rejection(t: Test, body: unknown, schema: z.ZodType = messagesRequestSchema(limits)): GatewayError {
  try {
    validateBody(schema, body);
  } catch (e) {
    t.type(e, GatewayError);
    return e as GatewayError;
  }
  t.fail(`accepted ${JSON.stringify(body)}`);
  return new GatewayError('internal_error', '(none)');
}

const PNG = 'iVBORw0KGgo=';

/** A conversation as the official SDK types it (so its shape is the SDK's), with what Claude Code-like clients add. */
const conversation: Anthropic.MessageCreateParamsNonStreaming = {
  model: 'claude-gw',
  max_tokens: 1024,
  system: [
    { type: 'text', text: 'You are a weather bot.', cache_control: { type: 'ephemeral' } },
    { type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral', ttl: '1h' } },
  ],
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Weather here?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
        { type: 'image', source: { type: 'url', url: 'https://example.com/sky.jpg' }, cache_control: { type: 'ephemeral' } },
      ],
    },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'Checking.', citations: null },
        { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' }, caller: { type: 'direct' } },
        { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
      ],
    },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Also: in Celsius.' },
        { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '21' }, { type: 'text', text: 'sunny' }] },
        { type: 'tool_result', tool_use_id: 'toolu_2', content: 'clock broken', is_error: true, cache_control: { type: 'ephemeral' } },
      ],
    },
    { role: 'assistant', content: 'It is' },
  ],
  tools: [
    {
      name: 'get_weather',
      description: 'Weather for a city',
      input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      cache_control: { type: 'ephemeral' },
      strict: true,
    },
    { type: 'custom', name: 'get_time', input_schema: { type: 'object' }, eager_input_streaming: true },
  ],
  tool_choice: { type: 'auto', disable_parallel_tool_use: true },
  stop_sequences: ['END'],
  metadata: { user_id: 'user_3f2a' },
  thinking: { type: 'disabled' },
  service_tier: 'auto',
  cache_control: { type: 'ephemeral' },
};

t.test('accepts what the SDK and Claude Code send, and translates it onto chat completions', async (t) => {
  const body = validate({ ...conversation, temperature: 0.2, top_p: 0.9, top_k: 40, stream: true });
  const chat = toChatRequest(body);
  t.same(chat, {
    model: 'claude-gw',
    max_tokens: 1024,
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0.2,
    top_p: 0.9,
    top_k: 40,
    stop: ['END'],
    user: 'user_3f2a',
    messages: [
      {
        role: 'system',
        content: [
          { type: 'text', text: 'You are a weather bot.' },
          { type: 'text', text: 'Be brief.' },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Weather here?' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: 'image_url', image_url: { url: 'https://example.com/sky.jpg' } },
        ],
      },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'toolu_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
      },
      // Tool results first, each its own message, in order; then the rest of the turn.
      { role: 'tool', tool_call_id: 'toolu_1', content: '21\nsunny' },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: clock broken' },
      { role: 'user', content: [{ type: 'text', text: 'Also: in Celsius.' }] },
      { role: 'assistant', content: 'It is' },
    ],
    tools: [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'Weather for a city',
          parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
          strict: true,
        },
      },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object' } } },
    ],
    tool_choice: 'auto',
    parallel_tool_calls: false,
  });
  // What goes upstream passes the gateway's own chat completions schema.
  t.doesNotThrow(() => validateBody(chatRequestSchema({ ...limits, maxMessages: 20 }), chat));
  t.same(messagesDialect.toChatRequest(body), chat, 'the dialect exposes it');
  t.equal(messagesDialect.api, 'messages');
});

t.test('small translations', async (t) => {
  const chat = (extra: Record<string, unknown>) => toChatRequest(validate({ ...base, ...extra }));
  t.same(chat({}), { model: 'claude-gw', max_tokens: 100, messages: [{ role: 'user', content: 'Hi' }] }, 'nothing added that was not asked');
  t.same(chat({ system: 'Be nice.' }).messages[0], { role: 'system', content: 'Be nice.' });
  t.same(chat({ system: '' }).messages.length, 1, 'an empty system prompt is no message');
  const tools = [{ name: 'f', input_schema: { type: 'object' } }];
  t.equal(chat({ tools, tool_choice: { type: 'any' } }).tool_choice, 'required');
  t.same(chat({ tools, tool_choice: { type: 'tool', name: 'f' } }).tool_choice, { type: 'function', function: { name: 'f' } });
  t.equal(chat({ tools, tool_choice: { type: 'none' } }).tool_choice, 'none');
  t.equal(chat({ tools, tool_choice: { type: 'auto' } }).parallel_tool_calls, undefined);
  // Without tools, auto and none ask nothing, and OpenAI refuses tool_choice without tools.
  t.same(Object.keys(chat({ tool_choice: { type: 'auto', disable_parallel_tool_use: true } })), ['model', 'messages', 'max_tokens']);
  t.same(Object.keys(chat({ tool_choice: { type: 'none' } })), ['model', 'messages', 'max_tokens']);
  t.same(chat({ output_config: { format: { type: 'json_schema', schema: { type: 'object' } } } }).response_format, {
    type: 'json_schema',
    json_schema: { name: 'output', schema: { type: 'object' }, strict: true },
  });
  t.same(chat({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1' }] }] }).messages, [{ role: 'tool', tool_call_id: 't1', content: '' }]);
  t.same(chat({ messages: [{ role: 'system', content: [{ type: 'text', text: 'mid' }] }, { role: 'user', content: 'x' }] }).messages[0], {
    role: 'system',
    content: [{ type: 'text', text: 'mid' }],
  });
  t.same(chat({ messages: [{ role: 'assistant', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }] }).messages[0], { role: 'assistant', content: 'ab' });
  t.same(
    chat({ messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 'x', name: 'f', input: { a: [1] } }] }] }).messages[0],
    { role: 'assistant', content: null, tool_calls: [{ id: 'x', type: 'function', function: { name: 'f', arguments: '{"a":[1]}' } }] },
  );
  t.equal(chat({ stream: false }).stream, undefined);
  t.equal(chat({ temperature: null, top_k: null }).temperature, undefined);
});

t.test('every refusal is a 400 naming its field', async (t) => {
  const msg = (content: unknown, role = 'user') => ({ messages: [{ role, content }] });
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['no max_tokens', { max_tokens: undefined }, 'max_tokens', /is required/],
    ['max_tokens 0 (cache pre-warming)', { max_tokens: 0 }, 'max_tokens', />= 1/],
    ['max_tokens over the limit', { max_tokens: 5000 }, 'max_tokens', /<= 4096/],
    ['max_tokens not an integer', { max_tokens: 1.5 }, 'max_tokens', /integer/],
    ['no model', { model: undefined }, 'model', /is required/],
    ['no messages', { messages: [] }, 'messages', /at least one/],
    ['too many messages', { messages: Array(7).fill({ role: 'user', content: 'x' }) }, 'messages', /at most 6/],
    ['prompt too long', { system: 'x'.repeat(2001) }, 'messages', /prompt is 2003 characters, at most 2000/],
    ['unknown role', msg('x', 'tool'), 'messages[0].role', /user, assistant, system/],
    ['content missing', { messages: [{ role: 'user' }] }, 'messages[0].content', /is required/],
    ['content a number', msg(5), 'messages[0].content', /string or an array/],
    ['empty blocks', msg([]), 'messages[0].content', /must not be empty/],
    ['document block', msg([{ type: 'document', source: {} }]), 'messages[0].content[0].type', /documents are not supported/],
    ['thinking block', msg([{ type: 'thinking', thinking: 'hm', signature: 's' }], 'assistant'), 'messages[0].content[0].type', /thinking/],
    ['server tool result', msg([{ type: 'web_search_tool_result' }], 'assistant'), 'messages[0].content[0].type', /"web_search_tool_result" blocks are not supported/],
    ['tool_use from the user', msg([{ type: 'tool_use', id: 'a', name: 'f', input: {} }]), 'messages[0].content[0].type', /not allowed here; user messages take/],
    ['image from the assistant', msg([{ type: 'image', source: { type: 'url', url: 'u' } }], 'assistant'), 'messages[0].content[0].type', /not allowed here/],
    ['unknown block field', msg([{ type: 'text', text: 'a', foo: 1 }]), 'messages[0].content[0].foo', /unknown field/],
    ['citations', msg([{ type: 'text', text: 'a', citations: [{ type: 'char_location' }] }]), 'messages[0].content[0].citations', /citations/],
    ['file image', msg([{ type: 'image', source: { type: 'file', file_id: 'f' } }]), 'messages[0].content[0].source.type', /file sources/],
    ['bad media type', msg([{ type: 'image', source: { type: 'base64', media_type: 'image/bmp', data: 'x' } }]), 'messages[0].content[0].source.media_type', /image\/png/],
    ['image in a tool result', msg([{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'image', source: {} }] }]), 'messages[0].content[0].content[0].type', /text only/],
    ['tool_use input not an object', msg([{ type: 'tool_use', id: 'a', name: 'f', input: 'x' }], 'assistant'), 'messages[0].content[0].input', /an object/],
    ['server caller', msg([{ type: 'tool_use', id: 'a', name: 'f', input: {}, caller: { type: 'code_execution_20250825' } }], 'assistant'), 'messages[0].content[0].caller.type', /direct/],
    ['system block not text', { system: [{ type: 'image', source: {} }] }, 'system[0].type', /system prompts take text/],
    ['server tool', { tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }] }, 'tools[0].type', /server tool/],
    ['tool name', { tools: [{ name: 'has space', input_schema: {} }] }, 'tools[0].name', /letters, digits/],
    ['tool without schema', { tools: [{ name: 'f' }] }, 'tools[0].input_schema', /is required/],
    ['tool search', { tools: [{ name: 'f', input_schema: {}, defer_loading: true }] }, 'tools[0].defer_loading', /tool search/],
    ['input_examples', { tools: [{ name: 'f', input_schema: {}, input_examples: [{}] }] }, 'tools[0].input_examples', /not supported/],
    ['tool_choice type', { tool_choice: { type: 'some' } }, 'tool_choice.type', /auto, any, tool, none/],
    ['tool_choice any without tools', { tool_choice: { type: 'any' } }, 'tool_choice', /needs tools/],
    ['tool_choice names no tool', { tools: [{ name: 'f', input_schema: {} }], tool_choice: { type: 'tool', name: 'g' } }, 'tool_choice.name', /no tool named "g"/],
    ['thinking enabled', { thinking: { type: 'enabled', budget_tokens: 2048 } }, 'thinking.type', /"enabled" is not supported/],
    ['thinking adaptive', { thinking: { type: 'adaptive' } }, 'thinking.type', /"adaptive" is not supported/],
    ['five stop sequences', { stop_sequences: ['a', 'b', 'c', 'd', 'e'] }, 'stop_sequences', /at most 4/],
    ['temperature over 1', { temperature: 1.5 }, 'temperature', /<= 1/],
    ['top_p', { top_p: -1 }, 'top_p', />= 0/],
    ['top_k', { top_k: 2.5 }, 'top_k', /integer/],
    ['stream', { stream: 'yes' }, 'stream', /boolean/],
    ['metadata field', { metadata: { user_id: 'u', tag: 'x' } }, 'metadata.tag', /unknown field/],
    ['metadata user_id', { metadata: { user_id: 'u'.repeat(257) } }, 'metadata.user_id', /256/],
    ['container', { container: 'cntr_1' }, 'container', /containers/],
    ['mcp_servers', { mcp_servers: [{ type: 'url', url: 'https://x', name: 'x' }] }, 'mcp_servers', /MCP/],
    ['context_management', { context_management: { edits: [] } }, 'context_management', /context management/],
    ['inference_geo', { inference_geo: 'us' }, 'inference_geo', /where the upstream runs/],
    ['speed fast', { speed: 'fast' }, 'speed', /fast/],
    ['effort', { output_config: { effort: 'high' } }, 'output_config.effort', /effort/],
    ['service tier', { service_tier: 'priority' }, 'service_tier', /auto/],
    ['unknown top-level field', { n: 2 }, 'n', /unknown field/],
  ];
  for (const [name, extra, param, message] of cases) {
    const err = rejection(t, { ...base, ...extra });
    t.equal(err.code, 'invalid_body', name);
    t.equal(err.param, param, `${name}: param`);
    t.match(err.message, message, `${name}: message`);
    t.ok(err.message.startsWith(`${param}: `), `${name}: the message names the field`);
  }
});

t.test('count_tokens: its own body, the same checks, an estimate', async (t) => {
  const schema = countTokensSchema(limits);
  const body = validateBody(schema, { model: 'claude-gw', messages: [{ role: 'user', content: 'x'.repeat(40) }] });
  t.same(countTokens(body), { input_tokens: 10 });
  const withAll = validateBody(schema, {
    model: 'claude-gw',
    system: 'y'.repeat(40),
    messages: [
      { role: 'user', content: 'x'.repeat(40) },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: { q: 'z'.repeat(30) } }] },
    ],
    tools: [{ name: 'f', description: 'd'.repeat(100), input_schema: { type: 'object' } }],
  });
  const { input_tokens } = countTokens(withAll);
  // Text, system, tool call arguments and tool definitions all count.
  t.ok(input_tokens > 20 + Math.ceil(30 / 4) + 25, `${input_tokens} counts everything the model reads`);
  t.equal(rejection(t, { model: 'm', messages: [{ role: 'user', content: 'x' }], max_tokens: 5 }, schema).param, 'max_tokens', 'max_tokens is no count_tokens field');
  t.equal(rejection(t, { model: 'm', messages: [{ role: 'user', content: 'x' }], thinking: { type: 'enabled', budget_tokens: 1024 } }, schema).param, 'thinking.type');
});
