import { namedFrame } from '../../sse/frame.js';
import type { WireEnd } from '../../sse/writer.js';

/**
 * How a Responses stream ends on the wire. Its log normally holds its own
 * closing event (`response.completed`, `.incomplete`, `.failed`): nothing to
 * add then. A stream that ended without one (another replica took it over and
 * could not continue it: `generation_lost`) ends with the API's `error`
 * event, and a reader let go because this replica stops is told to resume.
 */
export const responsesWire: WireEnd = {
  end: (end, id) => (end.framed || end.kind === 'done' ? '' : namedFrame('error', id, errorEvent(end.code ?? end.type, end.message, id))),
  // No id: it is not one of the stream's events. sequence_number 0 sorts before all of them.
  moved: `event: error\ndata: ${errorEvent(
    'shutdown',
    'the gateway is shutting down; resume with GET /v1/responses/<id>?stream=true&starting_after=<last sequence_number>',
    0,
  )}\n\n`,
};

/** OpenAI's `error` stream event (ResponseErrorEvent). */
function errorEvent(code: string, message: string, sequence: number): string {
  return JSON.stringify({ type: 'error', code, message, param: null, sequence_number: sequence });
}
