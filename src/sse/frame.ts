/**
 * SSE wire format (WHATWG HTML §9.2). Every frame the gateway writes is built
 * here; payloads reach these functions as single-line JSON, so no text from
 * an upstream can end a frame early or start one of its own.
 */

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  // nginx (and ingress controllers built on it) buffer responses unless told not to.
  'x-accel-buffering': 'no',
} as const;

export const PING_FRAME = ': ping\n\n';
export const DONE_FRAME = 'data: [DONE]\n\n';

export function dataFrame(id: number, payload: string): string {
  return 'id: ' + id + '\ndata: ' + payload + '\n\n';
}

/** Frames a batch of payloads as one string, ids from `firstId` on: one write per upstream read. */
export function dataFrames(firstId: number, payloads: readonly string[]): string {
  let out = '';
  for (let i = 0; i < payloads.length; i++) out += 'id: ' + (firstId + i) + '\ndata: ' + payloads[i] + '\n\n';
  return out;
}

export function namedFrame(event: string, id: number, payload: string): string {
  return 'id: ' + id + '\nevent: ' + event + '\ndata: ' + payload + '\n\n';
}

export function retryFrame(ms: number): string {
  return 'retry: ' + ms + '\n\n';
}

/**
 * Makes an upstream event's data safe to frame as one `data:` line of JSON.
 * The common case (a compact object from an OpenAI-compatible server) costs a
 * few character checks and no parse: `{…}` on one line cannot break the
 * framing. Only the braces are checked there, not the full JSON grammar;
 * anything else is parsed and re-encoded, or rejected.
 */
export function toSingleLineJson(data: string, multiLine = true): string {
  if (
    data.charCodeAt(0) === 123 /* { */ &&
    data.charCodeAt(data.length - 1) === 125 /* } */ &&
    // The parser already split lines: one data: line holds no line end.
    (!multiLine || (data.indexOf('\n') === -1 && data.indexOf('\r') === -1))
  ) {
    return data;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new SyntaxError('upstream event data is not JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new SyntaxError('upstream event data is not a JSON object');
  return JSON.stringify(parsed);
}
