import { StringDecoder } from 'node:string_decoder';

/**
 * Incremental SSE parser: bytes → lines → events, per WHATWG HTML §9.2.6.
 * Lines may end in \n, \r\n or \r, split anywhere across reads, and multi-byte
 * UTF-8 characters may straddle reads (TextDecoder in stream mode keeps them).
 * It keeps no per-event objects: each event's data goes to the sink.
 */

export interface SseSink {
  /**
   * One dispatched event. `event` is '' for unnamed events; `multiLine` says
   * the data came from several `data:` lines (joined with \n, per the spec).
   */
  onEvent(data: string, event: string, multiLine: boolean): void;
}

export class SseParser {
  // StringDecoder keeps a character split across reads, and is lighter per stream than TextDecoder.
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';
  private data: string | null = null;
  private multiLine = false;
  /** The spec drops one byte-order mark at the start of the stream. */
  private atStart = true;
  private event = '';
  /** The previous read ended in \r: a \n starting the next one belongs to it. */
  private skipLF = false;

  constructor(private readonly sink: SseSink) {}

  push(bytes: Uint8Array): void {
    this.pushText(this.decoder.write(bytes as Buffer));
  }

  pushText(text: string): void {
    let s = this.rest.length > 0 ? this.rest + text : text;
    if (this.atStart && s.length > 0) {
      this.atStart = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    if (this.skipLF && s.length > 0) {
      this.skipLF = false;
      if (s.charCodeAt(0) === 10) s = s.slice(1);
    }
    if (s.indexOf('\r') !== -1) {
      this.skipLF = s.charCodeAt(s.length - 1) === 13;
      s = s.replace(/\r\n?/g, '\n');
    }
    let start = 0;
    let nl: number;
    while ((nl = s.indexOf('\n', start)) !== -1) {
      // Fast path, what OpenAI-compatible servers send: a lone `data: …` line and a blank line.
      if (
        this.data === null &&
        this.event === '' &&
        s.charCodeAt(nl + 1) === 10 &&
        s.charCodeAt(start) === 100 /* d */ &&
        s.startsWith('data: ', start)
      ) {
        this.sink.onEvent(s.slice(start + 6, nl), '', false);
        start = nl + 2;
        continue;
      }
      this.line(s, start, nl);
      start = nl + 1;
    }
    this.rest = start === 0 ? s : start < s.length ? s.slice(start) : '';
  }

  /** End of input: an event without its blank line is not dispatched (the spec says so). */
  end(): void {
    this.pushText(this.decoder.end());
    this.rest = '';
    this.skipLF = false;
    this.data = null;
    this.multiLine = false;
    this.event = '';
  }

  private line(s: string, start: number, end: number): void {
    if (start === end) {
      if (this.data !== null) this.sink.onEvent(this.data, this.event, this.multiLine);
      this.data = null;
      this.multiLine = false;
      this.event = '';
      return;
    }
    const c = s.charCodeAt(start);
    if (c === 58 /* : */) return; // comment
    if (c === 100 /* d */ && s.startsWith('data', start)) {
      const v = this.value(s, start + 4, end);
      if (v === null) return;
      if (this.data === null) this.data = v;
      else {
        this.data = this.data + '\n' + v;
        this.multiLine = true;
      }
    } else if (c === 101 /* e */ && s.startsWith('event', start)) {
      const v = this.value(s, start + 5, end);
      if (v !== null) this.event = v;
    }
    // id and retry are the upstream's business with us; we assign our own ids.
  }

  /** The field value after `name`, or null when the line's field name is longer than `name`. */
  private value(s: string, at: number, end: number): string | null {
    if (at === end) return '';
    if (s.charCodeAt(at) !== 58 /* : */) return null;
    const from = s.charCodeAt(at + 1) === 32 ? at + 2 : at + 1;
    return s.slice(from, end);
  }
}
