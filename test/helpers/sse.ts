import { request, type IncomingMessage } from 'node:http';
import { send, type HttpResponse } from './http.js';

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
  retry?: string;
}

/** A strict reader of the gateway's SSE output: every event, comments counted apart. */
export function parseSse(text: string): { events: SseEvent[]; comments: string[] } {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    const ev: Partial<SseEvent> & { data?: string } = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments.push(line.slice(1).trim());
        continue;
      }
      const i = line.indexOf(':');
      const field = i === -1 ? line : line.slice(0, i);
      const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') ev.data = ev.data === undefined ? value : `${ev.data}\n${value}`;
      else if (field === 'id' || field === 'event' || field === 'retry') ev[field] = value;
      else throw new Error(`unexpected SSE field ${JSON.stringify(field)} in ${JSON.stringify(block)}`);
    }
    if (ev.data !== undefined || ev.retry !== undefined) events.push(ev as SseEvent);
  }
  return { events, comments };
}

/** The assistant text a stream's chunk events carry (named events, [DONE] and the retry preamble skipped). */
export function answerText(events: SseEvent[]): string {
  let text = '';
  for (const e of events) {
    if (e.id === undefined || e.event !== undefined || e.data === '[DONE]') continue;
    text += (JSON.parse(e.data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
  }
  return text;
}

export type RawResponse = HttpResponse;

/** POST of a JSON body over node:http (no fetch magic), collecting the whole body. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  return send(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

/**
 * Opens a stream and hands back the response as it arrives, so a test can
 * wait for a given event and then hang up.
 */
export function openStream(url: string, body: unknown, headers: Record<string, string> = {}): Promise<StreamHandle> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      resolve(new StreamHandle(res, () => req.destroy()));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export class StreamHandle {
  text = '';
  ended = false;
  private waiters: (() => void)[] = [];

  constructor(
    readonly res: IncomingMessage,
    readonly destroy: () => void,
  ) {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      this.text += c;
      this.wake();
    });
    res.on('end', () => {
      this.ended = true;
      this.wake();
    });
    res.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  get events(): SseEvent[] {
    const complete = this.text.slice(0, this.text.lastIndexOf('\n\n') + 2);
    return parseSse(complete).events;
  }

  /** Resolves once `pred` holds on the text so far; rejects if the stream ends first. */
  async until(pred: (h: StreamHandle) => boolean): Promise<void> {
    while (!pred(this)) {
      if (this.ended) throw new Error(`stream ended before the condition held; got ${JSON.stringify(this.text.slice(-300))}`);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  async done(): Promise<string> {
    while (!this.ended) await new Promise<void>((r) => this.waiters.push(r));
    return this.text;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** GET an event stream (what EventSource does), handing back the response as it arrives. */
export function getStream(url: string, headers: Record<string, string> = {}): Promise<StreamHandle> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      resolve(new StreamHandle(res, () => req.destroy()));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An event the way a byte-for-byte comparison wants it. */
export function serialize(events: SseEvent[]): string {
  return events
    .filter((e) => e.data !== undefined && e.retry === undefined)
    .map((e) => `${e.id ?? ''}|${e.event ?? ''}|${e.data}`)
    .join('\n');
}

/** Every event of an SDK's stream (`Array.fromAsync` needs Node 22), in order. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const e of stream) out.push(e);
  return out;
}
