import { promptChars, type ChatRequest } from '../../schema/chat-request.js';

/**
 * Input tokens of a request, estimated as the gateway estimates everywhere
 * (relay/token-budget.ts): about 4 characters per token. Counted: the text of
 * every message, the arguments of earlier tool calls and the tool
 * definitions, all of which the model reads; images are not. For
 * `count_tokens` (no upstream counts for us) and `message_start`, before the
 * upstream's own usage arrives.
 */
export function estimateInputTokens(chat: Pick<ChatRequest, 'messages' | 'tools'>): number {
  let chars = promptChars(chat);
  for (const m of chat.messages) {
    if (m.role !== 'assistant' || !m.tool_calls) continue;
    for (const c of m.tool_calls) chars += c.function.name.length + c.function.arguments.length;
  }
  if (chat.tools?.length) chars += JSON.stringify(chat.tools).length;
  return Math.max(1, Math.ceil(chars / 4));
}
