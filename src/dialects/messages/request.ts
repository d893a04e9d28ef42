import { z } from 'zod';
import type { RequestLimits } from '../../schema/chat-request.js';

/**
 * The Anthropic Messages request (`POST /v1/messages`) and the body of
 * `POST /v1/messages/count_tokens`, as the official SDK's types define them,
 * checked before anything goes upstream. Every field is either honoured on
 * the upstream's chat completions (to-chat-request.ts), ignored because it
 * changes nothing the client can observe, or refused with a 400 naming it:
 * never dropped silently.
 *
 * Honoured in chat's terms (to-chat-request.ts): `system` and system turns
 * inside `messages` (the SDK allows them) as system messages, `top_k` as
 * `top_k`, `metadata.user_id` as `user`, `disable_parallel_tool_use` as
 * `parallel_tool_calls: false`, `output_config.format` as a strict
 * `json_schema` response_format, a tool_result's `is_error` as an "Error: "
 * prefix on its text.
 *
 * Ignored (harmless): `cache_control` (on the body, blocks and tools: prompt
 * caching is the upstream's business), `service_tier`, `thinking:
 * {"type":"disabled"}`, `speed: "standard"`, a tool's `eager_input_streaming`
 * (tool input is streamed as the upstream sends it anyway), `citations: null`,
 * `caller: {"type":"direct"}` on tool_use blocks sent back.
 *
 * Refused (README, "Anthropic Messages API: not supported"): `thinking`
 * enabled or adaptive, and thinking blocks; server tools (any tool `type`
 * but `custom`: web search, web fetch, code execution, bash, text editor,
 * computer use, memory, tool search) and `defer_loading`, `allowed_callers`
 * other than "direct", `input_examples`, `toolset_name`; `container`,
 * `mcp_servers`, `context_management`, `inference_geo`, `diagnostics`,
 * `speed: "fast"`, `output_config.effort`; `document`, `search_result`,
 * `container_upload` and server tool result blocks, citations, file image
 * sources, image `transformations`, images inside tool_result;
 * `max_tokens: 0` (cache pre-warming); more than 4 `stop_sequences` (chat's
 * `stop` takes 4).
 */

/** "is required" when absent, "must be <what>" otherwise. */
const expected = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`),
});

const text = z.string(expected('a string'));

/**
 * An object whose unknown fields are each a 400 naming that very field
 * (`messages[0].content[1].foo`), where a strict object would name only the
 * object: Anthropic refuses unknown fields too.
 */
function fields<S extends z.ZodRawShape>(shape: S) {
  return z.looseObject(shape, expected('an object')).superRefine((v, ctx) => {
    for (const k of Object.keys(v)) if (!Object.hasOwn(shape, k)) ctx.addIssue({ code: 'custom', path: [k], message: 'unknown field' });
  });
}

/** A field the gateway cannot honour: absent or null passes, anything else is a 400 saying why. */
const unsupported = (why: string) => z.null({ error: why }).optional();

/**
 * A string or an array of blocks, told apart by the input's type, so a bad
 * block is reported where it is (`content[2].type`) instead of as "not a
 * string or an array" (what a zod union says).
 */
function stringOr<T extends z.ZodType>(blocks: T, what: string) {
  return z.unknown().transform((v, ctx): string | z.output<T> => {
    if (typeof v !== 'string' && !Array.isArray(v)) {
      ctx.addIssue({ code: 'custom', message: v === undefined ? 'is required' : `must be a string or an array of ${what}` });
      return z.NEVER;
    }
    const r = (typeof v === 'string' ? text : blocks).safeParse(v);
    if (r.success) return r.data as string | z.output<T>;
    for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    return z.NEVER;
  });
}

const nonEmpty = <T extends z.ZodType>(block: T) => z.array(block).min(1, { error: 'must not be empty' });

const cacheControl = fields({ type: z.literal('ephemeral'), ttl: z.enum(['5m', '1h']).optional() }).nullable().optional();

const textBlock = fields({
  type: z.literal('text'),
  text,
  cache_control: cacheControl,
  citations: z.array(z.unknown()).max(0, { error: 'citations are not supported' }).nullable().optional(),
});

const imageSource = z.discriminatedUnion(
  'type',
  [
    fields({
      type: z.literal('base64'),
      media_type: z.enum(['image/jpeg', 'image/png', 'image/gif', 'image/webp'], { error: 'must be one of image/jpeg, image/png, image/gif, image/webp' }),
      data: text.min(1, { error: 'must not be empty' }),
    }),
    fields({ type: z.literal('url'), url: text.min(1, { error: 'must not be empty' }) }),
  ],
  { error: (iss) => (typeOf(iss.input) === 'file' ? 'file sources are not supported (no Files API here): send base64 or url' : 'must be "base64" or "url"') },
);

const imageBlock = fields({
  type: z.literal('image'),
  source: imageSource,
  cache_control: cacheControl,
  transformations: unsupported('image transformations are not supported'),
});

const toolUseBlock = fields({
  type: z.literal('tool_use'),
  id: text.min(1, { error: 'must not be empty' }),
  name: text.min(1, { error: 'must not be empty' }),
  input: z.record(z.string(), z.unknown(), expected('an object')),
  cache_control: cacheControl,
  caller: fields({ type: z.literal('direct', { error: 'only "direct" is supported (no server tools here)' }) }).optional(),
  toolset_name: unsupported('toolsets are not supported'),
});

const toolResultText = z.discriminatedUnion('type', [textBlock], {
  error: (iss) => blockError(iss.input, 'tool_result content', ['text'], 'chat tool messages carry text only'),
});

const toolResultBlock = fields({
  type: z.literal('tool_result'),
  tool_use_id: text.min(1, { error: 'must not be empty' }),
  content: stringOr(nonEmpty(toolResultText), 'text blocks').optional(),
  is_error: z.boolean(expected('a boolean')).optional(),
  cache_control: cacheControl,
  toolset_name: unsupported('toolsets are not supported'),
});

/** Types the gateway refuses in any message, with why. */
const REFUSED_BLOCKS: Record<string, string> = {
  thinking: 'extended thinking is not supported',
  redacted_thinking: 'extended thinking is not supported',
  document: 'documents are not supported',
  search_result: 'search results are not supported',
  container_upload: 'containers are not supported',
};

function typeOf(input: unknown): unknown {
  return input !== null && typeof input === 'object' ? (input as { type?: unknown }).type : undefined;
}

function blockError(input: unknown, where: string, allowed: readonly string[], why = ''): string {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return 'must be a content block object';
  const type = typeOf(input);
  if (type === undefined) return 'is required';
  const refused = typeof type === 'string' ? REFUSED_BLOCKS[type] : undefined;
  if (refused) return refused;
  const known = ['text', 'image', 'tool_use', 'tool_result'].includes(type as string);
  const tail = `${where} take ${allowed.join(', ')}${why ? `: ${why}` : ''}`;
  return known ? `${String(type)} blocks are not allowed here; ${tail}` : `${JSON.stringify(type)} blocks are not supported; ${tail}`;
}

const userBlock = z.discriminatedUnion('type', [textBlock, imageBlock, toolResultBlock], {
  error: (iss) => blockError(iss.input, 'user messages', ['text', 'image', 'tool_result']),
});
const assistantBlock = z.discriminatedUnion('type', [textBlock, toolUseBlock], {
  error: (iss) => blockError(iss.input, 'assistant messages', ['text', 'tool_use']),
});
const systemBlock = z.discriminatedUnion('type', [textBlock], {
  error: (iss) => blockError(iss.input, 'system prompts', ['text']),
});

const systemContent = stringOr(nonEmpty(systemBlock), 'text blocks');

const message = z.discriminatedUnion(
  'role',
  [
    fields({ role: z.literal('user'), content: stringOr(nonEmpty(userBlock), 'content blocks') }),
    fields({ role: z.literal('assistant'), content: stringOr(nonEmpty(assistantBlock), 'content blocks') }),
    // The SDK's MessageParam includes system turns; chat takes system messages anywhere.
    fields({ role: z.literal('system'), content: systemContent }),
  ],
  { error: (iss) => (typeof iss.input === 'object' && iss.input !== null ? 'role must be one of user, assistant, system' : 'must be a message object') },
);

const tool = fields({
  // First, so a server tool is refused for its type rather than for lacking input_schema.
  type: z
    .literal('custom', { error: (iss) => `${JSON.stringify(iss.input)} is a server tool; only custom tools (name, description, input_schema) are supported` })
    .nullable()
    .optional(),
  name: text.regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: 'must be 1-64 letters, digits, _ or -' }),
  description: text.optional(),
  input_schema: z.record(z.string(), z.unknown(), expected('a JSON schema object')),
  cache_control: cacheControl,
  strict: z.boolean(expected('a boolean')).optional(),
  eager_input_streaming: z.boolean(expected('a boolean')).nullable().optional(),
  defer_loading: z.literal(false, { error: 'tool search is not supported' }).optional(),
  allowed_callers: z.array(z.literal('direct', { error: 'only "direct" is supported (no code execution here)' })).optional(),
  input_examples: unsupported('input_examples are not supported'),
});

const parallel = { disable_parallel_tool_use: z.boolean(expected('a boolean')).optional() };
const toolChoice = z.discriminatedUnion(
  'type',
  [
    fields({ type: z.literal('auto'), ...parallel }),
    fields({ type: z.literal('any'), ...parallel }),
    fields({ type: z.literal('tool'), name: text.min(1, { error: 'must not be empty' }), ...parallel }),
    fields({ type: z.literal('none') }),
  ],
  { error: (iss) => (typeOf(iss.input) === undefined ? 'is required' : 'must be one of auto, any, tool, none') },
);

const thinking = fields({
  type: z.literal('disabled', {
    error: (iss) => `${JSON.stringify(iss.input)} is not supported: the upstream's chat completions have no extended thinking (only "disabled")`,
  }),
});

const outputConfig = fields({
  format: fields({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown(), expected('a JSON schema object')) }).nullable().optional(),
  effort: unsupported('effort levels are not supported'),
});

const optionalNumber = (min: number, max: number) =>
  z
    .number(expected('a number'))
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` })
    .nullable()
    .optional();

/** What both endpoints read: the conversation, its tools and how the model answers. */
function conversationShape(limits: RequestLimits) {
  return {
    model: text.min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' }),
    messages: z
      .array(message, { error: 'must be an array of messages' })
      .min(1, { error: 'must contain at least one message' })
      .max(limits.maxMessages, { error: `must contain at most ${limits.maxMessages} messages` }),
    system: systemContent.optional(),
    tools: z.array(tool, expected('an array of tools')).max(128, { error: 'at most 128 tools' }).optional(),
    tool_choice: toolChoice.optional(),
    thinking: thinking.optional(),
    output_config: outputConfig.optional(),
    cache_control: cacheControl,
    speed: z.literal('standard', { error: '"fast" is not supported' }).nullable().optional(),
  };
}

function checkConversation(body: Conversation, ctx: z.RefinementCtx, limits: RequestLimits): void {
  const chars = promptChars(body);
  if (chars > limits.maxPromptChars) {
    ctx.addIssue({ code: 'custom', path: ['messages'], message: `prompt is ${chars} characters, at most ${limits.maxPromptChars} allowed` });
  }
  const choice = body.tool_choice;
  if (choice && choice.type !== 'none' && choice.type !== 'auto' && !body.tools?.length) {
    ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: `"${choice.type}" needs tools` });
  } else if (choice?.type === 'tool' && !body.tools?.some((t) => t.name === choice.name)) {
    ctx.addIssue({ code: 'custom', path: ['tool_choice', 'name'], message: `no tool named ${JSON.stringify(choice.name)} in tools` });
  }
}

export function messagesRequestSchema(limits: RequestLimits) {
  return fields({
    ...conversationShape(limits),
    max_tokens: z
      .number(expected('a number'))
      .int({ error: 'must be an integer' })
      .min(1, { error: 'must be >= 1' })
      .max(limits.maxTokens, { error: `must be <= ${limits.maxTokens}` }),
    stop_sequences: z
      .array(text, expected('an array of strings'))
      .max(4, { error: "at most 4 stop sequences (the upstream's chat completions take no more)" })
      .optional(),
    temperature: optionalNumber(0, 1),
    top_p: optionalNumber(0, 1),
    top_k: z.number(expected('a number')).int({ error: 'must be an integer' }).min(0, { error: 'must be >= 0' }).nullable().optional(),
    stream: z.boolean(expected('a boolean')).nullable().optional(),
    metadata: fields({ user_id: text.max(256, { error: 'must be at most 256 characters' }).nullable().optional() }).nullable().optional(),
    service_tier: z.enum(['auto', 'standard_only'], { error: 'must be "auto" or "standard_only"' }).optional(),
    container: unsupported('containers are not supported'),
    mcp_servers: unsupported('MCP servers are not supported'),
    context_management: unsupported('context management is not supported'),
    inference_geo: unsupported('the gateway cannot choose where the upstream runs'),
    diagnostics: unsupported('diagnostics are not supported'),
  }).superRefine((body, ctx) => checkConversation(body, ctx, limits));
}

export function countTokensSchema(limits: RequestLimits) {
  return fields(conversationShape(limits)).superRefine((body, ctx) => checkConversation(body, ctx, limits));
}

export type MessagesRequest = z.infer<ReturnType<typeof messagesRequestSchema>>;
export type CountTokensRequest = z.infer<ReturnType<typeof countTokensSchema>>;
/** The fields both endpoints share, and the translation reads. */
export interface Conversation {
  system?: z.output<typeof systemContent> | undefined;
  messages: z.output<typeof message>[];
  tools?: z.output<typeof tool>[] | undefined;
  tool_choice?: z.output<typeof toolChoice> | undefined;
}
export type UserBlock = z.infer<typeof userBlock>;
export type AssistantBlock = z.infer<typeof assistantBlock>;

/** Characters of text in the prompt (system, messages, tool results): what RequestLimits.maxPromptChars bounds. */
export function promptChars(body: Pick<Conversation, 'system' | 'messages'>): number {
  let n = textChars(body.system);
  for (const m of body.messages) {
    if (typeof m.content === 'string') {
      n += m.content.length;
      continue;
    }
    for (const b of m.content) {
      if (b.type === 'text') n += b.text.length;
      else if (b.type === 'tool_result') n += textChars(b.content);
    }
  }
  return n;
}

function textChars(content: string | readonly { text: string }[] | undefined): number {
  if (content === undefined) return 0;
  if (typeof content === 'string') return content.length;
  let n = 0;
  for (const b of content) n += b.text.length;
  return n;
}
