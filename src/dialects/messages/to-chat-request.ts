import type { ChatRequest } from '../../schema/chat-request.js';
import type { AssistantBlock, Conversation, MessagesRequest, UserBlock } from './request.js';

/**
 * A validated Messages request as the chat completions request the relay
 * sends upstream. `top_k` goes as a top-level `top_k`, which vLLM, SGLang,
 * llama.cpp and Ollama's OpenAI endpoints read; an upstream that refuses it
 * answers 400, passed on as such.
 */

type ChatMessage = ChatRequest['messages'][number];
type ChatPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

export function toChatRequest(body: MessagesRequest): ChatRequest {
  const req: ChatRequest = { model: body.model, messages: toChatMessages(body), max_tokens: body.max_tokens };
  if (body.stream) {
    req.stream = true;
    // The encoder reports usage in message_delta.
    req.stream_options = { include_usage: true };
  }
  if (body.temperature != null) req.temperature = body.temperature;
  if (body.top_p != null) req.top_p = body.top_p;
  if (body.top_k != null) req.top_k = body.top_k;
  if (body.stop_sequences?.length) req.stop = body.stop_sequences;
  if (body.metadata?.user_id != null) req.user = body.metadata.user_id;
  Object.assign(req, chatTools(body));
  const format = body.output_config?.format;
  // Anthropic's structured output is guaranteed to match the schema: chat's strict mode.
  if (format) req.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } };
  return req;
}

/** `tools`, `tool_choice` and `parallel_tool_calls` in chat's terms. */
export function chatTools(body: Pick<Conversation, 'tools' | 'tool_choice'>): Pick<ChatRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'> {
  const out: Pick<ChatRequest, 'tools' | 'tool_choice' | 'parallel_tool_calls'> = {};
  // Without tools, "auto" and "none" ask nothing (the schema refuses the others), and OpenAI
  // refuses tool_choice and parallel_tool_calls without tools.
  if (!body.tools?.length) return out;
  out.tools = body.tools.map((t) => ({
    type: 'function' as const,
    function: {
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      parameters: t.input_schema,
      ...(t.strict !== undefined ? { strict: t.strict } : {}),
    },
  }));
  const choice = body.tool_choice;
  if (choice) {
    if (choice.type === 'auto') out.tool_choice = 'auto';
    else if (choice.type === 'any') out.tool_choice = 'required';
    else if (choice.type === 'none') out.tool_choice = 'none';
    else out.tool_choice = { type: 'function', function: { name: choice.name } };
    if (choice.type !== 'none' && choice.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
  }
  return out;
}

/**
 * The conversation as chat messages. A user turn's tool_result blocks become
 * tool messages, each its own and in order, before the rest of that turn:
 * chat wants a tool message right after the assistant message that called
 * the tool. An assistant turn's tool_use blocks become its tool_calls.
 */
export function toChatMessages(body: Pick<Conversation, 'system' | 'messages'>): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (body.system !== undefined && body.system !== '') out.push({ role: 'system', content: textContent(body.system) });
  for (const m of body.messages) {
    if (m.role === 'system') out.push({ role: 'system', content: textContent(m.content) });
    else if (m.role === 'assistant') out.push(assistantMessage(m.content));
    else if (typeof m.content === 'string') out.push({ role: 'user', content: m.content });
    else userMessages(m.content, out);
  }
  return out;
}

function textContent(content: string | readonly { text: string }[]): string | { type: 'text'; text: string }[] {
  return typeof content === 'string' ? content : content.map((b) => ({ type: 'text' as const, text: b.text }));
}

function userMessages(blocks: readonly UserBlock[], out: ChatMessage[]): void {
  const parts: ChatPart[] = [];
  for (const b of blocks) {
    if (b.type === 'tool_result') {
      out.push({ role: 'tool', tool_call_id: b.tool_use_id, content: toolResultText(b.content, b.is_error === true) });
    } else if (b.type === 'text') {
      parts.push({ type: 'text', text: b.text });
    } else {
      const s = b.source;
      parts.push({ type: 'image_url', image_url: { url: s.type === 'url' ? s.url : `data:${s.media_type};base64,${s.data}` } });
    }
  }
  if (parts.length > 0) out.push({ role: 'user', content: parts });
}

/**
 * A tool result as the tool message's text. Chat has no `is_error`; the
 * model learns of the failure from the text, as Anthropic's own prompt
 * format tells it.
 */
function toolResultText(content: string | readonly { text: string }[] | undefined, isError: boolean): string {
  const body = content === undefined ? '' : typeof content === 'string' ? content : content.map((b) => b.text).join('\n');
  return isError ? `Error: ${body}` : body;
}

/**
 * Text blocks joined into one string: a last assistant message stays a
 * plain-string prefill, which is what upstreams continue (and what
 * relay/takeover.ts expects).
 */
function assistantMessage(content: string | readonly AssistantBlock[]): ChatMessage {
  if (typeof content === 'string') return { role: 'assistant', content };
  let textOut = '';
  const calls: { id: string; type: 'function'; function: { name: string; arguments: string } }[] = [];
  for (const b of content) {
    if (b.type === 'text') textOut += b.text;
    else calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input) } });
  }
  if (calls.length === 0) return { role: 'assistant', content: textOut };
  return { role: 'assistant', content: textOut === '' ? null : textOut, tool_calls: calls };
}
