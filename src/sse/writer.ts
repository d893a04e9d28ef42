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
 */
export type SseStyle = 'openai' | 'eventsource';

const MOVED_EVENTSOURCE = ': this replica is stopping; reconnect to resume\n\n';
const MOVED_OPENAI = `data: ${streamErrorPayload({
  type: 'shutdown',
  message: 'the gateway is shutting down; resume on GET /v1/streams/<X-Stream-Id> with the last event id',
})}\n\n`;

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

  constructor(
    private readonly res: ServerResponse,
    private readonly style: SseStyle,
    private readonly heartbeat: HeartbeatTicker,
    /** A client that leaves its socket full this long is dropped (its generation then stops or waits for a reader). */
    private readonly stallTimeoutMs = 30_000,
  ) {
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
    let frame: string;
    if (this.style === 'openai') frame = end.kind === 'done' ? DONE_FRAME : dataFrame(id, streamErrorPayload(end));
    else if (end.kind === 'done') frame = namedFrame('done', id, JSON.stringify({ finish_reason: end.finish_reason, usage: end.usage }));
    else frame = namedFrame('error', id, streamErrorPayload(end));
    this.finish(frame);
  }

  /** The stream goes on at another replica: end this response without a final event, so the client reconnects there. */
  onMoved(): void {
    // EventSource reconnects by itself with its last id. An OpenAI client does not: it gets an error
    // event without an id (it is not one of the stream's events), naming how to resume.
    this.finish(this.style === 'openai' ? MOVED_OPENAI : MOVED_EVENTSOURCE);
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
