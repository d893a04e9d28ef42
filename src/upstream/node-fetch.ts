import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/**
 * A `fetch` for the openai SDK over node:http with keep-alive agents. Node's
 * global fetch costs ~0.35 ms more per request and a web-stream hop per read;
 * here an event-stream body stays a plain IncomingMessage that the upstream
 * adapter reads directly (see `rawBody`). Other bodies are buffered into a
 * regular Response so the SDK parses errors and JSON as usual.
 */

const rawBodies = new WeakMap<Response, IncomingMessage>();

/** The unread node stream behind an event-stream Response made by nodeFetch. */
export function rawBody(res: Response): IncomingMessage | undefined {
  return rawBodies.get(res);
}

const NULL_BODY = new Set([101, 204, 205, 304]);

export function createNodeFetch(): { fetch: typeof fetch; close(): void } {
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
      req.once('error', (e) => reject(init.signal?.aborted ? init.signal.reason : e));
      req.once('response', (res) => {
        const status = res.statusCode ?? 502;
        const responseHeaders = new Headers();
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) responseHeaders.append(raw[i]!, raw[i + 1]!);
        const eventStream = status >= 200 && status < 300 && (res.headers['content-type'] ?? '').includes('text/event-stream');
        if (eventStream) {
          const response = new Response(null, { status, headers: responseHeaders });
          rawBodies.set(response, res);
          return resolve(response);
        }
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

  return {
    fetch: nodeFetch as typeof fetch,
    close: () => {
      http.destroy();
      https.destroy();
    },
  };
}
