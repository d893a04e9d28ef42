import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { Config } from '../../src/config.js';
import { startGateway, startMock, viaUpstream } from './gateway.js';
import { parseSse, type SseEvent } from './sse.js';

/** A self-signed certificate for 127.0.0.1, made with openssl at test time (valid one day). */
export interface TestCert {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
  remove(): void;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A test certificate removed at the test's end, or null where openssl is
 * missing (the output says why, and how to get it).
 */
export function testCert(t: Test): TestCert | null {
  if (!hasOpenssl()) {
    t.comment('openssl not found: install it (apt-get install -y openssl) to run the TLS and HTTP/2 tests');
    return null;
  }
  const cert = makeCert();
  t.teardown(() => cert.remove());
  return cert;
}

export function makeCert(): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'sse-gw-tls-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile],
    { stdio: 'ignore', timeout: 20_000 },
  );
  return {
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * One HTTP/2 session to the gateway (TLS with the self-signed cert, or h2c).
 * The connection window is raised the way browsers do (Chrome: 15 MB), so one
 * stream that is not read holds back only itself, not the whole connection.
 */
export async function connectH2(url: string): Promise<ClientHttp2Session> {
  const session = http2.connect(url, { rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  session.on('error', () => {});
  session.setLocalWindowSize(15 * 1024 * 1024);
  return session;
}

/** The mock upstream (50 tokens/s) and a gateway serving HTTPS + HTTP/2 with `cert`; both closed when the test ends. */
export async function startTlsGateway(t: Test, cert: TestCert, overrides: Partial<Config> = {}) {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 50, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), tls: { cert: cert.cert, key: cert.key }, ...overrides });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  return { mock, gw };
}

/** The mock upstream (100 tokens/s), a gateway serving h2c, and one HTTP/2 session to it; all closed when the test ends. */
export async function startH2cGateway(t: Test) {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 100, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), http2Cleartext: true });
  const session = await connectH2(gw.url);
  t.teardown(async () => {
    await closeSession(session);
    await gw.close();
    await mock.close();
  });
  return { mock, gw, session };
}

export function closeSession(session: ClientHttp2Session): Promise<void> {
  if (session.closed || session.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => session.destroy(), 2000);
    session.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** One request on a session, its response collected as it arrives. */
export class H2Exchange {
  headers: (IncomingHttpHeaders & IncomingHttpStatusHeader) | null = null;
  text = '';
  ended = false;
  private waiters: (() => void)[] = [];

  constructor(readonly stream: ClientHttp2Stream, read = true) {
    stream.setEncoding('utf8');
    stream.on('response', (h) => {
      this.headers = h;
      this.wake();
    });
    if (read) stream.on('data', (c: string) => ((this.text += c), this.wake()));
    stream.on('error', () => {});
    stream.on('close', () => ((this.ended = true), this.wake()));
  }

  get status(): number | undefined {
    return this.headers?.[':status'];
  }

  get events(): SseEvent[] {
    return parseSse(this.text.slice(0, this.text.lastIndexOf('\n\n') + 2)).events;
  }

  /** Resolves once `pred` holds; rejects if the stream closes first or `ms` pass. */
  async until(pred: (x: H2Exchange) => boolean, ms = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this)) {
      if (this.ended) throw new Error(`stream closed before ${what}; got ${JSON.stringify(this.text.slice(-300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.text.slice(-300))}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiters.push(() => (clearTimeout(timer), r()));
      });
    }
  }

  /** The whole body, once the stream closed (bounded by `ms`). */
  async done(ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`stream still open after ${ms} ms; got ${JSON.stringify(this.text.slice(-300))}`);
      await new Promise<void>((r) => {
        const timer = setTimeout(r, left);
        this.waiters.push(() => (clearTimeout(timer), r()));
      });
    }
    return this.text;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export function h2Post(session: ClientHttp2Session, path: string, body: unknown, opts: { read?: boolean } = {}): H2Exchange {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
  stream.end(JSON.stringify(body));
  return new H2Exchange(stream, opts.read ?? true);
}

export function h2Get(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}): H2Exchange {
  const stream = session.request({ ':method': 'GET', ':path': path, accept: 'text/event-stream', ...headers });
  stream.end();
  return new H2Exchange(stream);
}

/** Headers HTTP/2 forbids (RFC 9113 §8.2.2): a response carrying one is malformed. */
export const CONNECTION_HEADERS = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'];

/** Resolves within `ms`, or rejects naming what it waited for. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
