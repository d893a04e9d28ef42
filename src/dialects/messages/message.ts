import { randomBytes } from 'node:crypto';

/**
 * The Anthropic `Message` object, built one way for both answers: the
 * non-stream body (response-body.ts) and the stream encoder's snapshot. The
 * fields follow the official SDK's `Message` type, required ones included
 * (nullable ones as null: the gateway has no containers, caches or
 * diagnostics to report).
 */

export interface TextBlock {
  type: 'text';
  text: string;
  citations: null;
}

export interface ToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
  caller: { type: 'direct' };
}

export type ContentBlock = TextBlock | ToolUseBlock;

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

export interface MessageUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cache_creation: null;
  inference_geo: null;
  output_tokens_details: null;
  server_tool_use: null;
  service_tier: null;
  speed: null;
}

export interface Message {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  stop_details: null;
  container: null;
  diagnostics: null;
  usage: MessageUsage;
}

/** The chat completions usage fields read here (OpenAI counts cached prompt tokens inside prompt_tokens). */
export interface ChatUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

export function newMessageId(): string {
  return 'msg_' + randomBytes(16).toString('base64url');
}

export function textBlock(text: string): TextBlock {
  return { type: 'text', text, citations: null };
}

export function toolUseBlock(id: string, name: string, args: string): ToolUseBlock {
  return { type: 'tool_use', id, name, input: toolInput(args), caller: { type: 'direct' } };
}

/**
 * A tool call's arguments as the object Anthropic promises in `input`. No
 * arguments is `{}` (upstreams send "" for a tool without parameters). Text
 * that is not a JSON object (a model's mistake, or arguments cut off by
 * max_tokens) is `{}` too: the client then reports the missing parameters in
 * its tool_result and the conversation goes on, where a 502 would throw the
 * whole answer away, and a string `input` would make the client's next
 * request, which sends it back, invalid.
 */
export function toolInput(args: string): Record<string, unknown> {
  if (args.trim() === '') return {};
  try {
    const v: unknown = JSON.parse(args);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The stop sequence the upstream says it stopped on. OpenAI-compatible
 * servers strip it from the text and report only `finish_reason: "stop"`;
 * vLLM also names it in the choice's own `stop_reason`. Without that, a stop
 * on a sequence cannot be told from a natural end, and is reported as
 * `end_turn`.
 */
export function matchedStopSequence(choiceStopReason: unknown, stopSequences: readonly string[]): string | null {
  return typeof choiceStopReason === 'string' && stopSequences.includes(choiceStopReason) ? choiceStopReason : null;
}

/**
 * Chat's finish_reason as Anthropic's stop_reason. A message with tool_use
 * blocks stops for `tool_use` whatever the upstream said (some say "stop"
 * after tool calls, and Anthropic clients run tools only on `tool_use`),
 * unless it was cut off.
 */
export function stopReason(finishReason: string | null, hasToolUse: boolean, stopSequence: string | null): StopReason {
  if (finishReason === 'length') return 'max_tokens';
  if (finishReason === 'content_filter') return 'refusal';
  if (hasToolUse || finishReason === 'tool_calls' || finishReason === 'function_call') return 'tool_use';
  return stopSequence !== null ? 'stop_sequence' : 'end_turn';
}

/**
 * Usage in Anthropic's terms: input_tokens exclude the tokens read from a
 * prompt cache (OpenAI's prompt_tokens include them). Without upstream usage,
 * the estimates stand in.
 */
export function messageUsage(usage: ChatUsage | null, inputEstimate: number, outputEstimate: number): MessageUsage {
  const prompt = usage?.prompt_tokens ?? inputEstimate;
  const cached = Math.min(prompt, usage?.prompt_tokens_details?.cached_tokens ?? 0);
  return {
    input_tokens: prompt - cached,
    output_tokens: usage?.completion_tokens ?? outputEstimate,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
    cache_creation: null,
    inference_geo: null,
    output_tokens_details: null,
    server_tool_use: null,
    service_tier: null,
    speed: null,
  };
}

export function buildMessage(m: {
  id: string;
  model: string;
  content: ContentBlock[];
  stopReason: StopReason | null;
  stopSequence: string | null;
  usage: MessageUsage;
}): Message {
  return {
    id: m.id,
    type: 'message',
    role: 'assistant',
    model: m.model,
    content: m.content,
    stop_reason: m.stopReason,
    stop_sequence: m.stopReason === 'stop_sequence' ? m.stopSequence : null,
    stop_details: null,
    container: null,
    diagnostics: null,
    usage: m.usage,
  };
}
