import { StreamLog, type LogReader, type ReadableLog } from '../../streams/stream-log.js';
import type { ResponseObject } from './response-object.js';

/**
 * A response's object read back from its stream log, for a response this
 * replica is not generating (it ended, or another replica runs it): nothing
 * but the log is kept per response, and the log holds the object twice, in
 * its first event (`response.created`) and, once it ended, in its last
 * (`response.completed`, `.incomplete`, `.failed`).
 *
 * Null when the log is not a Responses stream (a chat or Messages stream
 * under the same id scheme): to the Responses API it does not exist.
 */
export function responseInLog(log: ReadableLog): ResponseObject | null {
  const head = framesAfter(log, 0);
  if (!startsAsResponse(head)) return null;
  const created = eventData(firstFrame(head));
  if (!created || !isResponse(created.response)) return null;
  const end = log.end;
  // Running on another replica: its id, model and settings, in progress (its output is not rebuilt here).
  if (!end) return created.response;
  if (end.framed) {
    const last = eventData(firstFrame(framesAfter(log, log.lastId - 1)));
    if (last && FINAL_EVENTS.has(last.type as string) && isResponse(last.response)) return last.response;
  }
  // Ended without its closing event (taken over by a replica that could not continue it).
  return end.kind === 'error'
    ? { ...created.response, status: 'failed', error: { code: end.code ?? end.type, message: end.message } }
    : { ...created.response, status: 'completed' };
}

/** Whether the log is a Responses stream (its first event is `response.created`), without parsing it. */
export function isResponseLog(log: ReadableLog): boolean {
  return startsAsResponse(framesAfter(log, 0));
}

const CREATED_HEAD = 'id: 1\nevent: response.created\n';

function startsAsResponse(frames: Buffer): boolean {
  return frames.length > CREATED_HEAD.length && frames.toString('latin1', 0, CREATED_HEAD.length) === CREATED_HEAD;
}

const FINAL_EVENTS = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/** The frames after `afterId` as the log holds them now: a remote log replays them to a reader attached and let go at once. */
function framesAfter(log: ReadableLog, afterId: number): Buffer {
  // A local log is read directly: a reader attached and let go would count as one leaving, and restart its grace period.
  if (log instanceof StreamLog) return log.framesAfter(afterId);
  const got: Buffer[] = [];
  const reader: LogReader = { onFrames: (f) => void got.push(f), onEnd: () => {}, onMoved: () => {}, congestion: () => null };
  log.attach(reader, afterId);
  log.detach(reader);
  return got.length === 1 ? got[0]! : Buffer.concat(got);
}

function firstFrame(frames: Buffer): string {
  const end = frames.indexOf('\n\n');
  return frames.toString('utf8', 0, end === -1 ? frames.length : end);
}

/** The JSON of a frame's `data:` line (the gateway writes one per event). */
function eventData(frame: string): Record<string, unknown> | null {
  const line = frame.indexOf('\ndata: ');
  if (line === -1) return null;
  const lineEnd = frame.indexOf('\n', line + 1);
  try {
    const data: unknown = JSON.parse(frame.slice(line + 7, lineEnd === -1 ? frame.length : lineEnd));
    return data !== null && typeof data === 'object' ? (data as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function isResponse(v: unknown): v is ResponseObject {
  return v !== null && typeof v === 'object' && (v as { object?: unknown }).object === 'response';
}
