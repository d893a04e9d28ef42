import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { constants as http2, type Http2ServerResponse } from 'node:http2';
import { streamErrorPayload } from '../errors.js';
import type { LogReader, StreamEnd } from '../streams/stream-log.js';
import { DONE_FRAME, PING_FRAME, SSE_HEADERS, dataFrame, namedFrame } from './frame.js';
import type { Beating, HeartbeatTicker } from './heartbeat.js';

/**
 * How a stream ends on the wire. `openai`: `data: [DONE]`, or a data event
 * holding `{"error": …}` (what OpenAI's own clients expect). `eventsource`:
 * a named `done` or `error` event with an id (what EventSource readers want).
 * Another API brings its own (see dialects/): its closing events are usually
 * in the log already (`end.framed`).
 */
export type SseStyle = 'openai' | 'eventsource' | WireEnd;

export interface WireEnd {
  /** The last bytes of the response for this end; '' when the log held them. */
  end(end: StreamEnd, id: number): string;
  /** Ends a response whose stream goes on at another replica. */
  readonly moved: string;
}

const OPENAI: WireEnd = {
  end: (end, id) => (end.kind === 'done' ? DONE_FRAME : dataFrame(id, streamErrorPayload(end))),
  // An OpenAI client does not reconnect by itself: an error event without an id (it is not one of
  // the stream's events) names how to resume.
  moved: `data: ${streamErrorPayload({
    type: 'shutdown',
    message: 'the gateway is shutting down; resume on GET /v1/streams/<X-Stream-Id> with the last event id',
  })}\n\n`,
};

const EVENTSOURCE: WireEnd = {
  // Another API's stream read on GET /v1/streams/:id (Messages, Responses) ends with its own events.
  end: (end, id) =>
    end.framed
      ? ''
      : end.kind === 'done'
      ? namedFrame('done', id, JSON.stringify({ finish_reason: end.finish_reason, usage: end.usage }))
      : namedFrame('error', id, streamErrorPayload(end)),
  // EventSource reconnects by itself with its last id.
  moved: ': this replica is stopping; reconnect to resume\n\n',
};

/**
 * Writes a stream log to one client connection: one `write()` per upstream
 * batch, heartbeats while idle, and a congestion signal the generation waits
 * on instead of buffering without bound.
 */
export class SseWriter implements LogReader, Beating {
  ended = false;
  wrote = true;
  private drain: Promise<void> | null = null;
  private releaseDrain: (() => void) | null = null;
  /** Called once if the client goes away before the stream's end was written. */
  onClientGone: (() => void) | null = null;
  /** Called once the stream's end was written. */
  onEnded: (() => void) | null = null;

  private stallTimer: NodeJS.Timeout | null = null;
  private readonly wire: WireEnd;

  constructor(
    private readonly res: ServerResponse,
    style: SseStyle,
    private readonly heartbeat: HeartbeatTicker,
    /** A client that leaves its socket full this long is dropped (its generation then stops or waits for a reader). */
    private readonly stallTimeoutMs = 30_000,
  ) {
    this.wire = style === 'openai' ? OPENAI : style === 'eventsource' ? EVENTSOURCE : style;
    res.once('close', this.onClose);
  }

  /** Commits to 200. The headers leave with the first write, or with flush(). */
  open(headers: OutgoingHttpHeaders, preamble?: string): void {
    this.res.writeHead(200, { ...headers, ...SSE_HEADERS });
    this.wrote = false;
    if (preamble) this.send(preamble);
    this.heartbeat.add(this);
  }

  /** Sends the headers now if nothing else did: clients and proxies must see the stream start at once. */
  flush(): void {
    if (!this.wrote && !this.res.headersSent) this.res.flushHeaders();
  }

  onFrames(frames: Buffer): void {
    this.send(frames);
  }

  private send(chunk: Buffer | string): void {
    this.wrote = true;
    if (this.res.write(chunk) || this.drain) return;
    this.drain = new Promise((resolve) => (this.releaseDrain = resolve));
    this.res.once('drain', this.onDrain);
    this.stallTimer = setTimeout(this.onStall, this.stallTimeoutMs);
    this.stallTimer.unref();
  }

  /** Whether the client was dropped for not reading. */
  stalled = false;

  private readonly onStall = (): void => {
    this.stalled = true;
    // HTTP/2: a bare destroy() resets the stream with NO_ERROR, which a client may take for a clean end
    // (and one that is not reading never sees it). CANCEL says the response was cut; the session lives on.
    const h2 = (this.res as unknown as Partial<Http2ServerResponse>).stream;
    if (h2) h2.close(http2.NGHTTP2_CANCEL);
    else this.res.destroy();
  };

  /** Bytes accepted by write() but not yet taken by the client's socket. */
  get buffered(): number {
    return this.res.writableLength;
  }

  ping(): void {
    this.send(PING_FRAME);
  }

  onEnd(end: StreamEnd, id: number): void {
    if (this.ended) return;
    this.finish(this.wire.end(end, id));
  }

  /** The stream goes on at another replica: end this response without a final event, so the client reconnects there. */
  onMoved(): void {
    this.finish(this.wire.moved);
  }

  /** Writes the last frame, unless the client is gone already; onEnded runs either way (a remote log must be released). */
  private finish(frame: string): void {
    if (this.ended) return;
    this.ended = true;
    this.heartbeat.remove(this);
    // HTTP/2's Http2ServerResponse has no `destroyed`; `stalled` marks the one cut made here (onStall).
    if (!this.stalled && !this.res.destroyed) this.res.end(frame);
    this.onEnded?.();
  }

  congestion(): Promise<void> | null {
    return this.drain;
  }

  private readonly onDrain = (): void => {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    const release = this.releaseDrain;
    this.drain = null;
    this.releaseDrain = null;
    release?.();
  };

  private readonly onClose = (): void => {
    this.heartbeat.remove(this);
    this.res.off('drain', this.onDrain);
    this.onDrain();
    if (!this.ended) {
      this.ended = true;
      this.onClientGone?.();
    }
  };
}
