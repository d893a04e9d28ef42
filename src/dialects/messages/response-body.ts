import type { GatewayError } from '../../errors.js';
import { anthropicError, errorTypeForStatus } from './error-type.js';
import { buildMessage, matchedStopSequence, messageUsage, stopReason, textBlock, toolUseBlock, type ChatUsage, type ContentBlock, type Message } from './message.js';
import type { CountTokensRequest } from './request.js';
import { chatTools, toChatMessages } from './to-chat-request.js';
import { estimateInputTokens } from './token-estimate.js';

/** What a Messages answer says beyond the upstream's completion. */
export interface MessageMeta {
  /** `msg_…` (newMessageId). */
  id: string;
  /** The model as the client named it. */
  model: string;
  /** The request's stop_sequences, to name the one the upstream stopped on. */
  stopSequences: readonly string[];
  /** Stands in for the input tokens when the upstream reports no usage. */
  inputTokens: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A non-stream `chat.completion` as the Message object: its text (or a
 * refusal, which is text to Anthropic clients) first, then one tool_use block
 * per tool call, its arguments parsed into `input` (see toolInput).
 */
export function messageBody(completion: Json, meta: MessageMeta): Message {
  const choice = Array.isArray(completion.choices) && isObject(completion.choices[0]) ? completion.choices[0] : {};
  const msg = isObject(choice.message) ? choice.message : {};
  const content: ContentBlock[] = [];
  let outputChars = 0;
  const text = typeof msg.content === 'string' && msg.content !== '' ? msg.content : typeof msg.refusal === 'string' ? msg.refusal : '';
  if (text !== '') {
    content.push(textBlock(text));
    outputChars += text.length;
  }
  if (Array.isArray(msg.tool_calls)) {
    msg.tool_calls.forEach((call: unknown, i) => {
      if (!isObject(call)) return;
      const fn = isObject(call.function) ? call.function : {};
      const args = typeof fn.arguments === 'string' ? fn.arguments : '';
      const id = typeof call.id === 'string' && call.id !== '' ? call.id : `toolu_${meta.id.slice(4)}_${i}`;
      content.push(toolUseBlock(id, typeof fn.name === 'string' ? fn.name : '', args));
      outputChars += args.length;
    });
  }
  const finish = typeof choice.finish_reason === 'string' ? choice.finish_reason : null;
  const stopSequence = matchedStopSequence(choice.stop_reason, meta.stopSequences);
  const usage = isObject(completion.usage) ? (completion.usage as ChatUsage) : null;
  return buildMessage({
    id: meta.id,
    model: meta.model,
    content,
    stopReason: stopReason(finish, content.some((b) => b.type === 'tool_use'), stopSequence),
    stopSequence,
    usage: messageUsage(usage, meta.inputTokens, Math.ceil(outputChars / 4)),
  });
}

/** An error answered before any stream started, in Anthropic's shape. */
export function errorBody(err: GatewayError): ReturnType<typeof anthropicError> {
  return anthropicError(errorTypeForStatus(err.status), err.message, err.code);
}

/** `POST /v1/messages/count_tokens`: an estimate, the upstream's chat completions have no way to count. */
export function countTokens(body: CountTokensRequest): { input_tokens: number } {
  return { input_tokens: estimateInputTokens({ messages: toChatMessages(body), ...chatTools(body) }) };
}
