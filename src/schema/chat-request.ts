import { z } from 'zod';

/**
 * The chat completions request as OpenAI defines it. Known fields are checked
 * strictly; unknown top-level fields (provider extensions such as vLLM's
 * `top_k`) pass through to the upstream untouched — documented in the README.
 */

/** "is required" when absent, "must be <what>" otherwise. */
const expected = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`),
});

const text = z.string(expected('a string'));

const textPart = z.strictObject({ type: z.literal('text'), text });
const imagePart = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({ url: text.min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
});
const audioPart = z.strictObject({
  type: z.literal('input_audio'),
  input_audio: z.strictObject({ data: text, format: z.enum(['wav', 'mp3']) }),
});
const filePart = z.strictObject({
  type: z.literal('file'),
  file: z.strictObject({ file_data: text.optional(), file_id: text.optional(), filename: text.optional() }),
});
const refusalPart = z.strictObject({ type: z.literal('refusal'), refusal: text });

const partsOf = <T extends z.ZodType>(part: T) => z.array(part).min(1, { error: 'must not be empty' });
const userContent = z.union([text, partsOf(z.discriminatedUnion('type', [textPart, imagePart, audioPart, filePart]))], {
  error: 'must be a string or an array of content parts',
});
const textContent = z.union([text, partsOf(textPart)], { error: 'must be a string or an array of text parts' });

const name = text.min(1).max(256).optional();

const toolCall = z.strictObject({
  id: text.min(1),
  type: z.literal('function'),
  function: z.strictObject({ name: text.min(1), arguments: text }),
});

const message = z.discriminatedUnion(
  'role',
  [
    z.looseObject({ role: z.literal('system'), content: textContent, name }),
    z.looseObject({ role: z.literal('developer'), content: textContent, name }),
    z.looseObject({ role: z.literal('user'), content: userContent, name }),
    z.looseObject({
      role: z.literal('assistant'),
      content: z.union([text, partsOf(z.discriminatedUnion('type', [textPart, refusalPart]))]).nullable().optional(),
      name,
      refusal: text.nullable().optional(),
      tool_calls: z.array(toolCall).optional(),
    }),
    z.looseObject({ role: z.literal('tool'), content: textContent, tool_call_id: text.min(1) }),
  ],
  { error: 'role must be one of system, developer, user, assistant, tool' },
);

const tool = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: text.regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: 'must be 1-64 letters, digits, _ or -' }),
    description: text.optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});

const toolChoice = z.union(
  [
    z.enum(['none', 'auto', 'required']),
    z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: text.min(1) }) }),
  ],
  { error: 'must be "none", "auto", "required" or {"type":"function","function":{"name":…}}' },
);

const responseFormat = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('text') }),
    z.strictObject({ type: z.literal('json_object') }),
    z.strictObject({
      type: z.literal('json_schema'),
      json_schema: z.strictObject({
        name: text.min(1),
        description: text.optional(),
        schema: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullable().optional(),
      }),
    }),
  ],
  { error: 'type must be one of text, json_object, json_schema' },
);

export interface RequestLimits {
  maxMessages: number;
  maxPromptChars: number;
  maxTokens: number;
}

export function chatRequestSchema(limits: RequestLimits) {
  const tokens = z
    .number(expected('a number'))
    .int({ error: 'must be an integer' })
    .min(1, { error: 'must be >= 1' })
    .max(limits.maxTokens, { error: `must be <= ${limits.maxTokens}` })
    .nullable()
    .optional();
  return z
    .looseObject({
      model: text.min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' }),
      messages: z
        .array(message, { error: 'must be an array of messages' })
        .min(1, { error: 'must contain at least one message' })
        .max(limits.maxMessages, { error: `must contain at most ${limits.maxMessages} messages` }),
      stream: z.boolean(expected('a boolean')).nullable().optional(),
      stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional(),
      max_tokens: tokens,
      max_completion_tokens: tokens,
      temperature: z.number(expected('a number')).min(0, { error: 'must be >= 0' }).max(2, { error: 'must be <= 2' }).nullable().optional(),
      top_p: z.number(expected('a number')).min(0, { error: 'must be >= 0' }).max(1, { error: 'must be <= 1' }).nullable().optional(),
      n: z.literal(1, { error: 'only n=1 is supported' }).nullable().optional(),
      stop: z
        .union([text, z.array(text).max(4, { error: 'at most 4 stop sequences' })], { error: 'must be a string or an array of up to 4 strings' })
        .nullable()
        .optional(),
      presence_penalty: z.number().min(-2).max(2).nullable().optional(),
      frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
      logit_bias: z.record(z.string(), z.number().min(-100).max(100)).nullable().optional(),
      logprobs: z.boolean().nullable().optional(),
      top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
      user: text.max(512).optional(),
      seed: z.number().int({ error: 'must be an integer' }).nullable().optional(),
      tools: z.array(tool).max(128).optional(),
      tool_choice: toolChoice.optional(),
      parallel_tool_calls: z.boolean().optional(),
      response_format: responseFormat.optional(),
      metadata: z.record(z.string(), z.string()).nullable().optional(),
    })
    .superRefine((body, ctx) => {
      let chars = 0;
      for (const m of body.messages) chars += contentChars(m.content);
      if (chars > limits.maxPromptChars) {
        ctx.addIssue({ code: 'custom', path: ['messages'], message: `prompt is ${chars} characters, at most ${limits.maxPromptChars} allowed` });
      }
      if (body.stream_options && !body.stream) {
        ctx.addIssue({ code: 'custom', path: ['stream_options'], message: 'only allowed when stream is true' });
      }
    });
}

export type ChatRequest = z.infer<ReturnType<typeof chatRequestSchema>>;

/** Characters of text in the prompt: the basis of token estimates when an upstream reports no usage. */
export function promptChars(req: Pick<ChatRequest, 'messages'>): number {
  let n = 0;
  for (const m of req.messages) n += contentChars(m.content);
  return n;
}

function contentChars(content: unknown): number {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const p of content) if (p && typeof (p as { text?: unknown }).text === 'string') n += (p as { text: string }).text.length;
  return n;
}

/** The last user message's text: what the mock model reads its directives from. */
export function lastUserText(req: Pick<ChatRequest, 'messages'>): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i]!;
    if (m.role !== 'user') continue;
    if (typeof m.content === 'string') return m.content;
    return m.content.map((p) => ('text' in p ? p.text : '')).join('');
  }
  return '';
}

/** `messages[0].role` from a zod path, the way OpenAI names params. */
export function paramName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}
