import { namedFrame } from '../../sse/frame.js';
import type { WireEnd } from '../../sse/writer.js';
import type { StreamEnd } from '../../streams/stream-log.js';
import { anthropicError, errorTypeForStreamEnd } from './error-type.js';

/**
 * How a Messages stream ends on its own POST. The encoder wrote the closing
 * events into the log (a framed end): nothing to add. An end without them
 * (a replica took the stream over and could not continue it: it has no
 * encoder) gets the one `error` event Anthropic's clients know, so the SDK
 * throws instead of waiting for a message_stop that never comes.
 */
export const messagesWire: WireEnd = {
  end: (end: StreamEnd, id: number) => {
    if (end.framed) return '';
    const body =
      end.kind === 'error'
        ? anthropicError(errorTypeForStreamEnd(end), end.message, end.code ?? end.type)
        : anthropicError('api_error', 'the stream ended without its closing events', 'generation_lost');
    return namedFrame('error', id, JSON.stringify(body));
  },
  // This replica is shutting down. Anthropic's clients do not resume a stream by themselves;
  // overloaded_error is capacity that comes back, which they retry. No id: it is not one of the stream's events.
  moved: `event: error\ndata: ${JSON.stringify(
    anthropicError(
      'overloaded_error',
      'the gateway is shutting down: retry the request, or resume on GET /v1/streams/<X-Stream-Id> with the last event id',
      'shutdown',
    ),
  )}\n\n`,
};
