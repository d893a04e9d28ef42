import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { buildGateway, type AppDeps, type Gateway } from '../../src/app.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { MockUpstreamServer, type MockServerOptions } from '../../src/upstream/mock/http-server.js';

/** Every log line the app wrote, parsed, plus the raw text for secret greps. */
export class LogSink extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  raw = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    const text = chunk.toString('utf8');
    this.raw += text;
    for (const l of text.split('\n')) if (l.trim()) this.lines.push(JSON.parse(l) as Record<string, unknown>);
    cb();
    this.emit('line');
  }

  /** Resolves with the first request line matching `pred`, waiting for it to be written. */
  async waitForRequest(pred: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    for (;;) {
      const hit = this.requests().find(pred);
      if (hit) return hit;
      await new Promise((r) => this.once('line', r));
    }
  }
  requests(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === 'request');
  }
}

export interface RunningGateway extends Gateway {
  url: string;
  logs: LogSink;
  config: Config;
  close(): Promise<void>;
}

/** The production app (buildGateway), on a real socket on port 0, logging into memory. */
export async function startGateway(overrides: Partial<Config> = {}, deps: AppDeps = {}): Promise<RunningGateway> {
  const config = defaultConfig({ logLevel: 'debug', ...overrides });
  const logs = new LogSink();
  const gw = await buildGateway(config, { logger: createLogger(config.logLevel, logs), ...deps });
  await gw.app.listen({ host: '127.0.0.1', port: 0 });
  const port = (gw.app.server.address() as AddressInfo).port;
  const scheme = config.tls ? 'https' : 'http';
  return { ...gw, url: `${scheme}://127.0.0.1:${port}`, logs, config, close: () => gw.app.close() };
}

/** The mock model as a real HTTP upstream on port 0; no delays unless asked. */
export async function startMock(opts: MockServerOptions = {}): Promise<{ mock: MockUpstreamServer; baseUrl: string }> {
  const mock = new MockUpstreamServer(opts);
  const baseUrl = await mock.listen();
  return { mock, baseUrl };
}

/** Gateway config pointing at an HTTP upstream, the way UPSTREAM_BASE_URL does. */
export function viaUpstream(baseUrl: string, apiKey?: string): Partial<Config> {
  return { upstreams: { default: apiKey ? { baseUrl, apiKey } : { baseUrl } } };
}

/** The mock's speed in tests: as fast as possible unless a test asks otherwise. */
export const FAST_MOCK = { tokensPerSecond: 0, firstTokenDelayMs: 0 };

export function chatBody(content: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: 'mock-1', messages: [{ role: 'user', content }], ...extra };
}
