import type { ErrorBody, GatewayError } from '../../errors.js';
import {
  buildResponse,
  finishState,
  functionCallItem,
  itemId,
  messageItem,
  usageOf,
  type ItemStatus,
  type OutputItem,
  type ResponseMeta,
  type ResponseObject,
} from './response-object.js';

/**
 * A whole `chat.completion` (for `stream: false`) as the Responses API
 * `response` object: a message item for the text, then one function_call
 * item per tool call, as the stream encoder would have built them.
 */
export function responseFromCompletion(completion: Record<string, unknown>, meta: ResponseMeta, now: () => number = Date.now): ResponseObject {
  const choice = Array.isArray(completion.choices) ? (completion.choices[0] as Record<string, unknown> | undefined) : undefined;
  const message = (choice?.message ?? {}) as { content?: unknown; tool_calls?: unknown };
  const finish = typeof choice?.finish_reason === 'string' ? choice.finish_reason : null;
  const { status, incompleteReason } = finishState(finish);
  const itemStatus: ItemStatus = status === 'incomplete' ? 'incomplete' : 'completed';

  const output: OutputItem[] = [];
  if (typeof message.content === 'string' && message.content.length > 0) {
    output.push(messageItem(itemId(meta.id, 'msg', 0), message.content, itemStatus));
  }
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls as { id?: unknown; function?: { name?: unknown; arguments?: unknown } }[]) {
      const id = itemId(meta.id, 'fc', output.length);
      const callId = typeof call?.id === 'string' && call.id ? call.id : `call_${id.slice(3)}`;
      const fn = call?.function ?? {};
      output.push(functionCallItem(id, callId, typeof fn.name === 'string' ? fn.name : '', typeof fn.arguments === 'string' ? fn.arguments : '', itemStatus));
    }
  }
  return buildResponse(meta, {
    status,
    incompleteReason,
    output,
    usage: usageOf(completion.usage as Record<string, unknown> | undefined),
    completedAt: status === 'completed' ? Math.floor(now() / 1000) : null,
  });
}

/** An error answered before any stream: the same OpenAI shape as chat completions. */
export function errorBody(err: GatewayError): ErrorBody {
  return err.toBody();
}
