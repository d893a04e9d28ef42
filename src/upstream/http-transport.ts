import { Agent as HttpAgent, request as httpRequest, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Client, buildConnector, errors as undiciErrors } from 'undici';
import type { PushedBody } from '../sse/batch-reader.js';
import { EventStreamRequest } from './event-stream-request.js';

export { StreamRefusal } from './event-stream-request.js';

/**
 * The upstream transport. `postEventStream` is the hot path (streamed chat
 * completions): no SDK, and undici's dispatch API instead of node:http, whose
 * ClientRequest, IncomingMessage and Readable per request, and listeners on
 * each, cost more than the rest of a 5-event stream's relay (gateway CPU per
 * such stream: 257 → 188 µs). `fetch` is what the openai
 * SDK uses for everything else: node:http with keep-alive agents (Node's
 * global fetch costs ~0.35 ms more per request and a web-stream hop per read).
 */

const NULL_BODY = new Set([101, 204, 205, 304]);

export interface HttpTransport {
  fetch: typeof fetch;
  /**
   * POSTs and resolves with the response once its headers arrived: the
   * body for a 2xx event stream, else a StreamRefusal carrying the status
   * and the (buffered) error body.
   */
  postEventStream(url: URL, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<PushedBody>;
  close(): void;
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

  // Timeouts are the gateway's own (first byte, idle, duration): undici's would cut a quiet stream.
  // One connector for every connection: given options instead, each Client builds its own (with a
  // TLS session cache and a FinalizationRegistry), and a burst of new streams opens a connection each.
  const connect = buildConnector({ timeout: opts.connectTimeoutMs });
  const streams = new ConnectionPool({ connect, headersTimeout: 0, bodyTimeout: 0 });

  const postEventStream = (url: URL, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<PushedBody> => {
    if (signal.aborted) return Promise.reject(signal.reason);
    const origin = url.origin;
    const client = streams.acquire(origin);
    const request = new EventStreamRequest(signal, () => streams.release(origin, client));
    try {
      client.dispatch({ path: url.pathname + url.search, method: 'POST', headers, body }, request);
    } catch (e) {
      streams.release(origin, client);
      return Promise.reject(e);
    }
    return request.response.catch((e: unknown) => {
      throw e instanceof undiciErrors.ConnectTimeoutError ? new ConnectTimeout(opts.connectTimeoutMs) : e;
    });
  };

  return {
    fetch: nodeFetch as typeof fetch,
    postEventStream,
    close: () => {
      http.destroy();
      https.destroy();
      streams.destroy();
    },
  };
}

/**
 * Keep-alive connections per origin, one request at a time each, the most
 * recently used first (its socket is the likeliest to be still open). A free
 * connection is a pop and a finished request a push; undici's own Pool walks
 * every connection to find a free one and adds a spare Client whenever all
 * are busy.
 */
class ConnectionPool {
  private readonly idle = new Map<string, Client[]>();
  private readonly all = new Set<Client>();

  constructor(
    private readonly options: Client.Options,
    /** Idle connections kept per origin; past this, a freed one is closed. */
    private readonly maxIdle = 1024,
  ) {}

  acquire(origin: string): Client {
    const client = this.idle.get(origin)?.pop();
    if (client) return client;
    const created = new Client(origin, this.options);
    this.all.add(created);
    return created;
  }

  release(origin: string, client: Client): void {
    if (client.destroyed || client.closed) return void this.all.delete(client);
    let stack = this.idle.get(origin);
    if (!stack) this.idle.set(origin, (stack = []));
    if (stack.length < this.maxIdle) return void stack.push(client);
    this.all.delete(client);
    void client.close().catch(() => {});
  }

  destroy(): void {
    for (const client of this.all) void client.destroy().catch(() => {});
    this.all.clear();
    this.idle.clear();
  }
}
