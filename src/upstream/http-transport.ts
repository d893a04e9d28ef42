import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { urlToHttpOptions } from 'node:url';

/**
 * The upstream transport: node:http with keep-alive agents. Node's global
 * fetch costs ~0.35 ms more per request and a web-stream hop per read.
 * `postEventStream` is the hot path (streamed chat completions): no SDK,
 * no Headers or Response objects, the body left a plain IncomingMessage.
 * `fetch` is what the openai SDK uses for everything else.
 */

const NULL_BODY = new Set([101, 204, 205, 304]);

export interface HttpTransport {
  fetch: typeof fetch;
  /**
   * POSTs and resolves with the response once its headers arrived: the
   * IncomingMessage for a 2xx event stream, else a StreamRefusal carrying the
   * status and the (buffered) body.
   */
  postEventStream(url: URL, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<IncomingMessage>;
  close(): void;
}

/** A non-2xx (or non-event-stream) answer to postEventStream. */
export class StreamRefusal extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly retryAfter: string | undefined,
  ) {
    super(`upstream answered ${status}`);
  }
}

/** An upstream that did not accept the TCP connection in time. */
export class ConnectTimeout extends Error {
  readonly code = 'ECONNTIMEOUT';
  constructor(ms: number) {
    super(`connect timeout after ${ms} ms`);
  }
}

/** Bounds the TCP connect only: a reused keep-alive socket is already connected. */
function connectTimeout(req: ClientRequest, ms: number): void {
  req.once('socket', (socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(() => req.destroy(new ConnectTimeout(ms)), ms);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  });
}

/** A URL as request options, worked out once per URL object instead of once per request. */
const optionsOf = new WeakMap<URL, RequestOptions>();
function requestOptions(url: URL): RequestOptions {
  let o = optionsOf.get(url);
  if (!o) {
    o = urlToHttpOptions(url);
    optionsOf.set(url, o);
  }
  return o;
}

export function createHttpTransport(opts: { connectTimeoutMs: number }): HttpTransport {
  const http = new HttpAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });
  const https = new HttpsAgent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024, scheduling: 'lifo' });

  const nodeFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> =>
    new Promise((resolve, reject) => {
      const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => (headers[k] = v));
      const secure = url.protocol === 'https:';
      const req = (secure ? httpsRequest : httpRequest)(url, {
        method: init.method ?? 'GET',
        headers,
        agent: secure ? https : http,
        ...(init.signal ? { signal: init.signal } : {}),
      });
      connectTimeout(req, opts.connectTimeoutMs);
      req.once('error', (e) => reject(init.signal?.aborted ? init.signal.reason : e));
      req.once('response', (res) => {
        const status = res.statusCode ?? 502;
        const responseHeaders = new Headers();
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) responseHeaders.append(raw[i]!, raw[i + 1]!);
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.once('error', reject);
        res.once('end', () => {
          const body = NULL_BODY.has(status) ? null : Buffer.concat(parts);
          resolve(new Response(body, { status, headers: responseHeaders }));
        });
      });
      const body = init.body;
      if (body === undefined || body === null) req.end();
      else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
      else reject(new TypeError('nodeFetch only sends string or byte bodies'));
    });

  const postEventStream = (url: URL, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const secure = url.protocol === 'https:';
      const req = (secure ? httpsRequest : httpRequest)({ ...requestOptions(url), method: 'POST', headers, agent: secure ? https : http });
      // Not the `signal` option: that one also watches the request's end to unhook itself (eos), which
      // costs more than the request's other setup. A destroy after the response ended is a no-op (the
      // request is marked destroyed when its socket goes back to the pool), and the signal is the
      // attempt's own, so the listener goes with it.
      signal.addEventListener('abort', () => req.destroy(signal.reason), { once: true });
      connectTimeout(req, opts.connectTimeoutMs);
      req.once('error', (e) => reject(signal.aborted ? signal.reason : e));
      req.once('response', (res) => {
        const status = res.statusCode ?? 502;
        if (status >= 200 && status < 300 && (res.headers['content-type'] ?? '').includes('text/event-stream')) return resolve(res);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (text.length < 65_536) text += c;
        });
        res.once('error', (e) => reject(signal.aborted ? signal.reason : e));
        res.once('end', () => reject(new StreamRefusal(status, text, res.headers['retry-after'])));
      });
      req.end(body);
    });

  return {
    fetch: nodeFetch as typeof fetch,
    postEventStream,
    close: () => {
      http.destroy();
      https.destroy();
    },
  };
}
