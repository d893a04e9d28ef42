import type { GatewayError } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import type { StreamEnd } from '../streams/stream-log.js';

/** Framed SSE events, ready for the stream log: `count` events with consecutive ids. */
export interface EncodedFrames {
  text: string;
  count: number;
}

/**
 * Turns the upstream's chat.completion.chunk JSON texts into one API's own
 * SSE events. Ids are the stream log's (consecutive from `firstId`), so
 * replay and Last-Event-ID work the same for every API. One encoder per
 * stream; it keeps what it needs to write the closing events.
 */
export interface StreamEncoder {
  /** The events a client sees before the first upstream chunk. */
  open(firstId: number): EncodedFrames;
  /** One upstream read's chunks. */
  batch(chunks: readonly string[], firstId: number): EncodedFrames;
  /** The closing events for how the stream ended; the response ends after them. */
  close(end: StreamEnd, firstId: number): EncodedFrames;
}

/** One client API spoken on top of the upstream's chat completions. */
export interface Dialect<Body> {
  readonly api: 'chat' | 'responses' | 'messages';
  /** The API's own body for an error answered before any stream started. */
  errorBody(err: GatewayError): unknown;
  /** The validated client body as the internal chat request. */
  toChatRequest(body: Body): ChatRequest;
}
