import { z } from 'zod';
import type { RequestLimits } from '../../schema/chat-request.js';

/**
 * The OpenAI Responses API request (`POST /v1/responses`), as far as it can
 * be honoured on top of an upstream's chat completions. Every object is
 * closed: a field not listed here is a 400 naming it, never dropped.
 *
 * Not supported (400 naming the field), for the README:
 * - built-in tools (`web_search`, `file_search`, `computer_use_preview`,
 *   `code_interpreter`, `image_generation`, `mcp`, `local_shell`, `shell`,
 *   `apply_patch`, `custom`, `tool_search`, …) and their tool_choice forms
 *   (`allowed_tools`, hosted types); only `function` tools
 * - input items other than messages, `function_call`, `function_call_output`
 *   and `item_reference` (`reasoning`, `web_search_call`, `computer_call`, …);
 *   `input_file` parts; `input_image` by `file_id`; images in
 *   `function_call_output`; `item_reference` to an item the gateway does not keep
 * - `reasoning.effort` other than `none`, `reasoning.summary`: the answer
 *   comes from chat completions, which carries no reasoning items
 * - logprobs (`top_logprobs` > 0, `include: ["message.output_text.logprobs"]`)
 * - `truncation: "auto"`, `service_tier` `flex`/`scale`/`priority`,
 *   `text.verbosity`, `conversation`, `prompt` (stored prompts),
 *   `max_tool_calls`, `context_management`, `moderation`, prompt cache
 *   retention options, tool `defer_loading`/`allowed_callers`
 *
 * Accepted although they change nothing here: the other `include` values
 * (details of items this gateway never produces), `stream_options.include_obfuscation`
 * (padding, never added), message `phase`, output_text `annotations`/`logprobs`
 * sent back as input. `prompt_cache_key` and `safety_identifier` pass on to
 * the upstream's chat completions, which knows them too.
 */

/** "is required" when absent, "must be <what>" otherwise. */
const expected = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? 'is required' : `must be ${what}`),
});

const text = z.string(expected('a string'));
const flag = z.boolean(expected('a boolean')).nullable().optional();

const notSupported = z.unknown().refine(() => false, { error: 'is not supported', abort: true });

/** An object whose unlisted fields each fail with their own path. */
const closed = <S extends z.ZodRawShape>(shape: S) => z.object(shape).catchall(notSupported);

/** The error of a union on `type`, naming what is accepted. */
const typeError = (what: string, accepted: readonly string[]) => ({
  error: (iss: { input?: unknown }) => {
    const t = (iss.input as { type?: unknown } | undefined)?.type;
    const list = accepted.join(', ');
    return typeof t === 'string' ? `${what} of type "${t}" are not supported (only ${list})` : `type must be one of ${list}`;
  },
});

/** A string is one text part (what the API does with it); the parts then go through one path. */
const partsOf = <T extends z.ZodType>(part: T, what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? [{ type: 'input_text', text: v }] : v),
    z.array(part, { error: `must be a string or an array of ${what}` }).min(1, { error: 'must not be empty' }),
  );

const inputText = closed({ type: z.literal('input_text'), text });
const outputText = closed({
  type: z.literal('output_text'),
  text,
  // Sent back with an earlier answer; nothing the model reads.
  annotations: z.array(z.unknown()).optional(),
  logprobs: z.array(z.unknown()).nullable().optional(),
});
const refusal = closed({ type: z.literal('refusal'), refusal: text });
const inputImage = closed({
  type: z.literal('input_image'),
  // Before image_url: an image sent by file_id is told why, not that image_url is missing.
  file_id: z.null({ error: 'is not supported: send the image as image_url' }).optional(),
  image_url: text.min(1, { error: 'must not be empty' }),
  detail: z.enum(['auto', 'low', 'high'], { error: 'must be "auto", "low" or "high"' }).nullable().optional(),
});

const userParts = partsOf(
  z.discriminatedUnion('type', [inputText, inputImage], typeError('content parts', ['input_text', 'input_image'])),
  'content parts',
);
const instructionParts = partsOf(z.discriminatedUnion('type', [inputText], typeError('content parts', ['input_text'])), 'text parts');
const assistantParts = partsOf(
  z.discriminatedUnion('type', [outputText, inputText, refusal], typeError('content parts', ['output_text', 'input_text', 'refusal'])),
  'content parts',
);

const itemStatus = z.enum(['in_progress', 'completed', 'incomplete'], { error: 'must be "in_progress", "completed" or "incomplete"' });
/** Fields any message item may carry: its own id when it is an earlier output sent back, its status, its phase. */
const messageFields = {
  type: z.literal('message').optional(),
  id: text.optional(),
  status: itemStatus.nullable().optional(),
  phase: z.enum(['commentary', 'final_answer']).nullable().optional(),
};

const message = z.discriminatedUnion(
  'role',
  [
    closed({ ...messageFields, role: z.literal('user'), content: userParts }),
    closed({ ...messageFields, role: z.literal('system'), content: instructionParts }),
    closed({ ...messageFields, role: z.literal('developer'), content: instructionParts }),
    closed({ ...messageFields, role: z.literal('assistant'), content: assistantParts }),
  ],
  { error: 'role must be one of user, assistant, system, developer' },
);

const functionCall = closed({
  type: z.literal('function_call'),
  call_id: text.min(1, { error: 'must not be empty' }),
  name: text.min(1, { error: 'must not be empty' }),
  arguments: text,
  id: text.nullable().optional(),
  status: itemStatus.nullable().optional(),
});

const functionCallOutput = closed({
  type: z.literal('function_call_output'),
  call_id: text.min(1, { error: 'must not be empty' }),
  output: partsOf(z.discriminatedUnion('type', [inputText], typeError('output parts', ['input_text'])), 'input_text parts'),
  id: text.nullable().optional(),
  status: itemStatus.nullable().optional(),
});

/** An earlier output item by id; the route resolves it from the responses it keeps. */
const itemReference = closed({ type: z.literal('item_reference'), id: text.min(1, { error: 'must not be empty' }) });

const ITEM_TYPES = ['message', 'function_call', 'function_call_output', 'item_reference'] as const;
const inputItem = z.discriminatedUnion('type', [message, functionCall, functionCallOutput, itemReference], typeError('input items', ITEM_TYPES));

const toolName = text.regex(/^[a-zA-Z0-9_-]{1,64}$/, { error: 'must be 1-64 letters, digits, _ or -' });

const functionTool = closed({
  type: z.literal('function'),
  name: toolName,
  description: text.nullable().optional(),
  parameters: z.record(z.string(), z.unknown(), { error: 'must be a JSON Schema object' }).nullable().optional(),
  strict: flag,
});

const toolChoice = z.union([z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), name: text.min(1) })], {
  error: 'must be "none", "auto", "required" or {"type":"function","name":…}',
});

const textFormat = z.discriminatedUnion(
  'type',
  [
    closed({ type: z.literal('text') }),
    closed({ type: z.literal('json_object') }),
    closed({
      type: z.literal('json_schema'),
      name: toolName,
      schema: z.record(z.string(), z.unknown(), { error: 'must be a JSON Schema object' }),
      description: text.optional(),
      strict: flag,
    }),
  ],
  { error: 'type must be one of text, json_object, json_schema' },
);

/** `include` values that ask for details of items this gateway never produces: honoured by there being none. */
const HARMLESS_INCLUDES = [
  'file_search_call.results',
  'web_search_call.results',
  'web_search_call.action.sources',
  'message.input_image.image_url',
  'computer_call_output.output.image_url',
  'code_interpreter_call.outputs',
  'reasoning.encrypted_content',
] as const;

const unsupported = (why: string) => ({ error: `is not supported: ${why}` });

export function responsesRequestSchema(limits: RequestLimits) {
  return closed({
    model: text.min(1, { error: 'must not be empty' }).max(256, { error: 'must be at most 256 characters' }),
    input: z.preprocess(
      (v) => (typeof v === 'string' ? [{ role: 'user', content: v }] : v),
      z
        .array(inputItem, expected('a string or an array of input items'))
        .min(1, { error: 'must not be empty' })
        .max(limits.maxMessages, { error: `must contain at most ${limits.maxMessages} items` }),
    ),
    instructions: text.nullable().optional(),
    tools: z
      .array(z.discriminatedUnion('type', [functionTool], typeError('tools', ['function'])), { error: 'must be an array of tools' })
      .max(128, { error: 'at most 128 tools' })
      .nullable()
      .optional(),
    tool_choice: toolChoice.nullable().optional(),
    parallel_tool_calls: flag,
    max_output_tokens: z
      .number(expected('a number'))
      .int({ error: 'must be an integer' })
      .min(1, { error: 'must be >= 1' })
      .max(limits.maxTokens, { error: `must be <= ${limits.maxTokens}` })
      .nullable()
      .optional(),
    temperature: z.number(expected('a number')).min(0, { error: 'must be >= 0' }).max(2, { error: 'must be <= 2' }).nullable().optional(),
    top_p: z.number(expected('a number')).min(0, { error: 'must be >= 0' }).max(1, { error: 'must be <= 1' }).nullable().optional(),
    text: closed({
      format: textFormat.optional(),
      verbosity: z.null(unsupported('chat completions upstreams take no verbosity')).optional(),
    }).optional(),
    stream: flag,
    stream_options: closed({ include_obfuscation: z.boolean(expected('a boolean')).optional() }).nullable().optional(),
    store: flag,
    background: flag,
    previous_response_id: text.min(1, { error: 'must not be empty' }).nullable().optional(),
    metadata: z
      .record(text.max(64, { error: 'keys must be at most 64 characters' }), text.max(512, { error: 'must be at most 512 characters' }), {
        error: 'must be an object of strings',
      })
      .refine((m) => Object.keys(m).length <= 16, { error: 'at most 16 pairs' })
      .nullable()
      .optional(),
    user: text.max(512).nullable().optional(),
    include: z
      .array(
        z.enum(HARMLESS_INCLUDES, {
          error: (iss) => (iss.input === 'message.output_text.logprobs' ? 'logprobs are not supported' : 'must be a known include value'),
        }),
        { error: 'must be an array' },
      )
      .nullable()
      .optional(),
    truncation: z.enum(['disabled'], { error: 'only "disabled" is supported' }).nullable().optional(),
    reasoning: closed({
      effort: z.enum(['none'], unsupported('answers come from chat completions, without reasoning')).nullable().optional(),
      summary: z.null(unsupported('answers come from chat completions, without reasoning')).optional(),
      generate_summary: z.null(unsupported('answers come from chat completions, without reasoning')).optional(),
    })
      .nullable()
      .optional(),
    service_tier: z.enum(['auto', 'default'], { error: 'only "auto" or "default" is supported' }).nullable().optional(),
    top_logprobs: z.literal(0, { error: 'logprobs are not supported' }).nullable().optional(),
    prompt_cache_key: text.max(1024).nullable().optional(),
    safety_identifier: text.max(512).nullable().optional(),
  }).superRefine((body, ctx) => {
    const chars = promptChars(body);
    if (chars > limits.maxPromptChars) {
      ctx.addIssue({ code: 'custom', path: ['input'], message: `prompt is ${chars} characters, at most ${limits.maxPromptChars} allowed` });
    }
    if (body.stream_options && !body.stream) {
      ctx.addIssue({ code: 'custom', path: ['stream_options'], message: 'only allowed when stream is true' });
    }
    if (body.background && body.store === false) {
      ctx.addIssue({ code: 'custom', path: ['background'], message: 'requires store to be true' });
    }
  });
}

export type ResponsesRequest = z.infer<ReturnType<typeof responsesRequestSchema>>;
export type InputItem = ResponsesRequest['input'][number];

/** Characters of text in the instructions and input (the same measure as chat's `messages`). */
export function promptChars(body: Pick<ResponsesRequest, 'instructions' | 'input'>): number {
  let n = body.instructions?.length ?? 0;
  for (const item of body.input) {
    const parts = item.type === 'function_call_output' ? item.output : item.type === 'function_call' || item.type === 'item_reference' ? null : item.content;
    if (parts) for (const p of parts) n += p.type === 'refusal' ? p.refusal.length : p.type === 'input_image' ? 0 : p.text.length;
  }
  return n;
}
