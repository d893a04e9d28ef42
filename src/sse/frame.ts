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

const ID_PREFIX = [105, 100, 58, 32]; // "id: "
const DATA_PREFIX = [10, 100, 97, 116, 97, 58, 32]; // "\ndata: "
/** Bytes of `id: \ndata: \n\n` around each payload, ids aside. */
const FRAME_BYTES = ID_PREFIX.length + DATA_PREFIX.length + 2;

/**
 * dataFrames() written straight into one Buffer: the same bytes, without the
 * joined string, which Buffer.from would first flatten into a copy of its own.
 * Those two strings were a third of what a stream allocated on the JS heap.
 */
export function dataFramesBuffer(firstId: number, payloads: readonly string[]): Buffer {
  const n = payloads.length;
  let size = n * FRAME_BYTES + digitsFrom(firstId, n);
  for (let i = 0; i < n; i++) size += Buffer.byteLength(payloads[i]!, 'utf8');
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < n; i++) {
    for (const b of ID_PREFIX) out[at++] = b;
    at = writeDigits(out, at, firstId + i);
    for (const b of DATA_PREFIX) out[at++] = b;
    at += out.write(payloads[i]!, at, 'utf8');
    out[at++] = 10;
    out[at++] = 10;
  }
  return out;
}

/** Decimal digits of the ids `first` … `first + n - 1`, in all. */
function digitsFrom(first: number, n: number): number {
  let total = 0;
  let id = first;
  const last = first + n - 1;
  for (let width = digitCount(first), next = 10 ** width; id <= last; width++, next *= 10) {
    const upto = Math.min(last, next - 1);
    total += (upto - id + 1) * width;
    id = upto + 1;
  }
  return total;
}

function digitCount(x: number): number {
  let n = 1;
  while (x >= 10) {
    x = Math.floor(x / 10);
    n++;
  }
  return n;
}

/** Writes the non-negative integer `x` in decimal at `at`; returns the index after it. */
function writeDigits(out: Buffer, at: number, x: number): number {
  const end = at + digitCount(x);
  for (let i = end - 1; i >= at; i--) {
    out[i] = 48 + (x % 10);
    x = Math.floor(x / 10);
  }
  return end;
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
