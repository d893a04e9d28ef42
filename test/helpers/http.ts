import { request, type IncomingMessage } from 'node:http';

export interface HttpResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * Any request over node:http with the body sent exactly as given (a string or
 * Buffer is sent raw, anything else as JSON), with an explicit content-length.
 */
export function send(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const raw = typeof opts.body === 'string' || Buffer.isBuffer(opts.body);
    const data = opts.body === undefined ? undefined : raw ? (opts.body as string | Buffer) : JSON.stringify(opts.body);
    const headers: Record<string, string> = { ...opts.headers };
    if (data !== undefined) headers['content-length'] = String(Buffer.byteLength(data));
    const req = request(url, { method: opts.method ?? (data === undefined ? 'GET' : 'POST'), headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; code: string; param?: string | null };
}

/** Parses an OpenAI-shaped error body, or returns the reason it is not one. */
export function openAIError(body: string): OpenAIErrorBody | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `not JSON: ${body.slice(0, 200)}`;
  }
  const e = (parsed as { error?: Record<string, unknown> } | null)?.error;
  if (!e || typeof e !== 'object') return `no error object: ${body.slice(0, 200)}`;
  if (typeof e.message !== 'string' || e.message === '') return 'error.message is not a non-empty string';
  if (typeof e.type !== 'string' || e.type === '') return 'error.type is not a non-empty string';
  if (typeof e.code !== 'string' || e.code === '') return 'error.code is not a non-empty string';
  if (e.param !== undefined && e.param !== null && typeof e.param !== 'string') return 'error.param is neither string nor null';
  return parsed as OpenAIErrorBody;
}

/** Text a stack trace or an internal error frame would leave in a response body. */
export const STACK_TRACE = /\n\s+at\s|\bat\s+\S+\s+\(|(?:file:\/\/|\/work\/|node_modules\/|\/src\/)\S*|\.[cm]?[jt]s:\d+|\b\w*Error:\s/;

/**
 * Waits until `pred()` holds, yielding to the event loop between checks
 * (setImmediate, so I/O and timers progress). Bounded by a tick count and a
 * deadline; throws naming `what` when neither is met.
 */
export async function waitUntil(pred: () => boolean, what: string, maxMs = 5_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  for (let tick = 0; tick < 1_000_000; tick++) {
    if (pred()) return;
    if (performance.now() > deadline) break;
    await new Promise<void>((r) => setImmediate(r));
  }
  if (!pred()) throw new Error(`timed out waiting for ${what}`);
}

/** Resolves to what the promise rejected with (tap's rejects() matches patterns, not classes); throws if it resolved. */
export async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}
