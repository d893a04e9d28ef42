import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ChatRequest } from '../../schema/chat-request.js';
import { completionObject, mockModelList, planCompletion, type MockPlan, type MockSpeed } from './model.js';

/**
 * The mock model as a standalone OpenAI-compatible HTTP server. It records
 * what it saw — every request, and every request the gateway hung up on — so
 * tests assert on the upstream's side of the wire, not on the gateway's word.
 */

export interface RecordedRequest {
  body: ChatRequest;
  authorization: string | undefined;
  /** completed: answered in full; aborted: the client closed first; failed: a fault was played. */
  outcome: 'pending' | 'completed' | 'aborted' | 'failed';
  chunksSent: number;
}

export interface MockServerOptions extends Partial<MockSpeed> {
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Directives applied to every request, e.g. `[mock:fail-before=503]` for an upstream that is down. */
  directives?: string;
}

export class MockUpstreamServer extends EventEmitter {
  readonly requests: RecordedRequest[] = [];
  readonly server: Server;
  private readonly speed: MockSpeed;

  constructor(private readonly opts: MockServerOptions = {}) {
    super();
    this.speed = { tokensPerSecond: opts.tokensPerSecond ?? 0, firstTokenDelayMs: opts.firstTokenDelayMs ?? 0 };
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen({ port, host, backlog: 4096 }, resolve));
    const addr = this.server.address() as AddressInfo;
    return `http://${host}:${addr.port}/v1`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  get aborted(): number {
    return this.requests.filter((r) => r.outcome === 'aborted').length;
  }

  /** Resolves when `n` requests in all have been aborted by their client. */
  async waitForAborts(n: number): Promise<void> {
    while (this.aborted < n) await EventEmitter.once(this, 'aborted');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (this.opts.apiKey && req.headers.authorization !== `Bearer ${this.opts.apiKey}`) {
      req.resume();
      return json(res, 401, { error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } });
    }
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/v1/models') {
      req.resume();
      return json(res, 200, { object: 'list', data: mockModelList() });
    }
    if (req.method === 'GET' && path === '/_mock/stats') {
      req.resume();
      const counts = { requests: this.requests.length, aborted: this.aborted, completed: 0, failed: 0 };
      for (const r of this.requests) if (r.outcome === 'completed') counts.completed++; else if (r.outcome === 'failed') counts.failed++;
      return json(res, 200, counts);
    }
    if (req.method !== 'POST' || path !== '/v1/chat/completions') {
      req.resume();
      return json(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } });
    }
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      let body: ChatRequest;
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as ChatRequest;
      } catch {
        return json(res, 400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
      }
      const rec: RecordedRequest = { body, authorization: req.headers.authorization, outcome: 'pending', chunksSent: 0 };
      this.requests.push(rec);
      this.emit('request', rec);
      res.on('close', () => {
        if (rec.outcome === 'pending') {
          rec.outcome = res.writableFinished ? 'completed' : 'aborted';
          this.emit(rec.outcome, rec);
        }
      });
      this.answer(body, rec, res);
    });
  }

  private answer(body: ChatRequest, rec: RecordedRequest, res: ServerResponse): void {
    const plan = planCompletion(body, this.speed, this.opts.directives);
    const fault = plan.fault;
    if (fault?.kind === 'fail-before') {
      rec.outcome = 'failed';
      const headers: Record<string, string> = fault.status === 429 ? { 'retry-after': '1' } : {};
      return json(res, fault.status, { error: { message: `mock failure ${fault.status}`, type: 'mock_error', code: null } }, headers);
    }
    if (fault?.kind === 'hang') return; // until the client gives up
    if (!body.stream) {
      setTimeout(() => json(res, 200, completionObject(plan)), plan.firstTokenMs).unref();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    this.play(plan, body.stream_options?.include_usage === true, rec, res);
  }

  private play(plan: MockPlan, includeUsage: boolean, rec: RecordedRequest, res: ServerResponse): void {
    const chunks = includeUsage ? [...plan.chunks, plan.usageChunk] : plan.chunks;
    const fault = plan.fault;
    const stopAt = fault && 'after' in fault ? fault.after : Infinity;
    let i = 0;
    const step = () => {
      if (res.destroyed) return;
      if (i >= stopAt) {
        if (fault?.kind === 'fail-after') {
          rec.outcome = 'failed';
          res.end('data: {"error":{"message":"mock failure mid-stream","type":"server_error","code":null}}\n\n');
        } else if (fault?.kind === 'drop-after') {
          rec.outcome = 'failed';
          res.destroy();
        } // hang-after: stay silent until the client leaves (recorded as an abort then)
        return;
      }
      if (i >= chunks.length) {
        res.end('data: [DONE]\n\n');
        return;
      }
      // With no delay, write as a fast server would: many events per write.
      const end = plan.interTokenMs > 0 ? i + 1 : Math.min(chunks.length, stopAt, i + 16);
      let out = '';
      for (; i < end; i++) out += 'data: ' + chunks[i] + '\n\n';
      rec.chunksSent = i;
      const ok = res.write(out);
      if (plan.interTokenMs > 0) setTimeout(step, plan.interTokenMs);
      else if (ok) setImmediate(step);
      else {
        // The client stopped taking bytes: tests watch for this to prove backpressure reaches upstream.
        this.emit('blocked', rec);
        res.once('drain', step);
      }
    };
    if (plan.firstTokenMs > 0) setTimeout(step, plan.firstTokenMs);
    else step();
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
