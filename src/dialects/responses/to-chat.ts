import { GatewayError } from '../../errors.js';
import type { ChatRequest } from '../../schema/chat-request.js';
import type { InputItem, ResponsesRequest } from './request.js';
import type { OutputItem } from './response-object.js';

/**
 * A Responses request as the chat completions request the upstream serves,
 * and the chat messages a finished response adds to its conversation (what
 * `previous_response_id` continues).
 */

export type ChatMessage = ChatRequest['messages'][number];
type AssistantMessage = Extract<ChatMessage, { role: 'assistant' }>;
type ToolCall = NonNullable<AssistantMessage['tool_calls']>[number];

/** An earlier output item by id (for `item_reference`); undefined when the gateway no longer keeps it. */
export type ItemLookup = (id: string) => OutputItem | undefined;

/**
 * `previous` is the conversation `previous_response_id` names (see
 * conversationAfter): instructions first (they are never carried over from
 * the previous response, as OpenAI does), then that conversation, then the
 * new input.
 */
export function toChatRequest(body: ResponsesRequest, previous: readonly ChatMessage[] = [], lookup?: ItemLookup): ChatRequest {
  const messages: ChatMessage[] = [];
  if (body.instructions) messages.push({ role: 'system', content: body.instructions });
  messages.push(...previous, ...inputMessages(body.input, lookup));

  const req: ChatRequest = { model: body.model, messages };
  if (body.stream) {
    req.stream = true;
    req.stream_options = { include_usage: true };
  }
  if (body.max_output_tokens != null) req.max_tokens = body.max_output_tokens;
  if (body.temperature != null) req.temperature = body.temperature;
  if (body.top_p != null) req.top_p = body.top_p;
  if (body.tools && body.tools.length > 0) {
    req.tools = body.tools.map((t) => ({
      type: 'function' as const,
      function: {
        name: t.name,
        ...(t.description != null ? { description: t.description } : {}),
        ...(t.parameters != null ? { parameters: t.parameters } : {}),
        ...(t.strict != null ? { strict: t.strict } : {}),
      },
    }));
    // OpenAI's chat completions refuses parallel_tool_calls without tools.
    if (body.parallel_tool_calls != null) req.parallel_tool_calls = body.parallel_tool_calls;
  }
  const choice = body.tool_choice;
  if (choice != null) req.tool_choice = typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } };
  const format = body.text?.format;
  if (format && format.type !== 'text') {
    req.response_format =
      format.type === 'json_object'
        ? { type: 'json_object' }
        : {
            type: 'json_schema',
            json_schema: {
              name: format.name,
              schema: format.schema,
              ...(format.description != null ? { description: format.description } : {}),
              ...(format.strict != null ? { strict: format.strict } : {}),
            },
          };
  }
  if (body.user != null) req.user = body.user;
  // Chat completions knows these two as well.
  if (body.safety_identifier != null) req.safety_identifier = body.safety_identifier;
  if (body.prompt_cache_key != null) req.prompt_cache_key = body.prompt_cache_key;
  return req;
}

/**
 * The input items as chat messages. Consecutive function calls (and a call
 * right after the assistant text it came with) make one assistant message,
 * as a chat model answers them.
 */
export function inputMessages(input: readonly InputItem[], lookup?: ItemLookup): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (let i = 0; i < input.length; i++) {
    const item = input[i]!;
    switch (item.type) {
      case 'function_call':
        addToolCall(out, { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
        break;
      case 'function_call_output':
        out.push({ role: 'tool', tool_call_id: item.call_id, content: item.output.map((p) => p.text).join('') });
        break;
      case 'item_reference': {
        const found = lookup?.(item.id);
        if (!found) {
          throw new GatewayError('invalid_body', `input[${i}].id: no stored item "${item.id}"`, { param: `input[${i}].id` });
        }
        addOutputItem(out, found);
        break;
      }
      default:
        out.push(messageOf(item));
    }
  }
  return out;
}

/** The chat messages an answer adds to the conversation: one assistant message, as the upstream gave it. */
export function outputMessages(output: readonly OutputItem[]): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const item of output) addOutputItem(out, item);
  return out;
}

/**
 * The conversation after a response, for the next request's
 * `previous_response_id`: the chat request's messages without the
 * instructions, then the response's output.
 */
export function conversationAfter(body: Pick<ResponsesRequest, 'instructions'>, request: ChatRequest, response: { output: readonly OutputItem[] }): ChatMessage[] {
  return [...request.messages.slice(body.instructions ? 1 : 0), ...outputMessages(response.output)];
}

type MessageItem = Exclude<InputItem, { type: 'function_call' | 'function_call_output' | 'item_reference' }>;

function messageOf(item: MessageItem): ChatMessage {
  switch (item.role) {
    case 'user': {
      const parts = item.content.map((p) =>
        p.type === 'input_text'
          ? { type: 'text' as const, text: p.text }
          : { type: 'image_url' as const, image_url: { url: p.image_url, ...(p.detail != null ? { detail: p.detail } : {}) } },
      );
      const only = parts.length === 1 ? parts[0]! : null;
      return { role: 'user', content: only?.type === 'text' ? only.text : parts };
    }
    case 'system':
    case 'developer':
      return { role: item.role, content: textOf(item.content) };
    case 'assistant': {
      const parts = item.content.map((p) => (p.type === 'refusal' ? { type: 'refusal' as const, refusal: p.refusal } : { type: 'text' as const, text: p.text }));
      const only = parts.length === 1 ? parts[0]! : null;
      return { role: 'assistant', content: only?.type === 'text' ? only.text : parts };
    }
  }
}

/** One text part as a string (what every upstream takes), several as parts. */
function textOf(parts: readonly { text: string }[]): string | { type: 'text'; text: string }[] {
  return parts.length === 1 ? parts[0]!.text : parts.map((p) => ({ type: 'text' as const, text: p.text }));
}

function addOutputItem(out: ChatMessage[], item: OutputItem): void {
  if (item.type === 'function_call') {
    addToolCall(out, { id: item.call_id, type: 'function', function: { name: item.name, arguments: item.arguments } });
    return;
  }
  let content = '';
  for (const p of item.content) content += p.text;
  out.push({ role: 'assistant', content });
}

function addToolCall(out: ChatMessage[], call: ToolCall): void {
  const last = out[out.length - 1];
  if (last?.role === 'assistant') {
    (last.tool_calls ??= []).push(call);
    return;
  }
  out.push({ role: 'assistant', content: null, tool_calls: [call] });
}
