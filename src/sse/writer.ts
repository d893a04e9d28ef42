import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { LogReader, StreamEnd } from '../streams/stream-log.js';
import { DONE_FRAME, PING_FRAME, SSE_HEADERS, dataFrame, namedFrame } from './frame.js';

/**
 * How a stream ends on the wire. `openai`: `data: [DONE]`, or a data event
 * holding `{"error": …}` (what OpenAI's own clients expect). `eventsource`:
 * a named `done` or `error` event with an id (what EventSource readers want).
 */
export type SseStyle = 'openai' | 'eventsource';

/**
 * Writes a stream log to one client connection: one `write()` per upstream
 * batch, heartbeats while idle, and a congestion signal the generation waits
 * on instead of buffering without bound.
 */
export class SseWriter implements LogReader {
  ended = false;
  private idle = true;
  private heartbeat: NodeJS.Timeout | null = null;
  private drain: Promise<void> | null = null;
  private releaseDrain: (() => void) | null = null;
  /** Called once if the client goes away before the stream's end was written. */
  onClientGone: (() => void) | null = null;

  constructor(
    private readonly res: ServerResponse,
    private readonly style: SseStyle,
    private readonly heartbeatMs: number,
  ) {
    res.once('close', this.onClose);
  }

  /** Commits to 200 and flushes the headers at once, so clients and proxies see the stream start. */
  open(headers: OutgoingHttpHeaders, preamble?: string): void {
    this.res.writeHead(200, { ...headers, ...SSE_HEADERS });
    if (preamble) this.write(preamble);
    else this.res.flushHeaders();
    this.heartbeat = setInterval(this.beat, this.heartbeatMs);
    this.heartbeat.unref();
  }

  onFrames(frames: readonly string[], from: number, to: number): void {
    let out = frames[from]!;
    for (let i = from + 1; i < to; i++) out += frames[i]!;
    this.write(out);
  }

  onEnd(end: StreamEnd, id: number): void {
    if (this.ended) return;
    this.ended = true;
    this.stopHeartbeat();
    if (this.res.destroyed) return;
    if (this.style === 'openai') {
      if (end.kind === 'done') this.res.end(DONE_FRAME);
      else this.res.end(dataFrame(id, errorJson(end)));
    } else if (end.kind === 'done') {
      this.res.end(namedFrame('done', id, JSON.stringify({ finish_reason: end.finish_reason, usage: end.usage })));
    } else {
      this.res.end(namedFrame('error', id, errorJson(end)));
    }
  }

  congestion(): Promise<void> | null {
    return this.drain;
  }

  private write(chunk: string): void {
    this.idle = false;
    if (this.res.write(chunk) || this.drain) return;
    this.drain = new Promise((resolve) => (this.releaseDrain = resolve));
    this.res.once('drain', this.onDrain);
  }

  private readonly onDrain = (): void => {
    const release = this.releaseDrain;
    this.drain = null;
    this.releaseDrain = null;
    release?.();
  };

  private readonly beat = (): void => {
    if (this.idle) this.write(PING_FRAME);
    this.idle = true;
  };

  private readonly onClose = (): void => {
    this.stopHeartbeat();
    this.res.off('drain', this.onDrain);
    this.onDrain();
    if (!this.ended) {
      this.ended = true;
      this.onClientGone?.();
    }
  };

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }
}

function errorJson(end: Extract<StreamEnd, { kind: 'error' }>): string {
  return JSON.stringify({ error: { type: end.type, ...(end.code ? { code: end.code } : {}), message: end.message } });
}
