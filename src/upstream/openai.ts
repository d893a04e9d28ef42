import { APIError, APIUserAbortError, OpenAI } from 'openai';
import type { ChatCompletionCreateParams } from 'openai/resources/chat/completions';
import type { UpstreamConfig } from '../config.js';
import type { ChatRequest } from '../schema/chat-request.js';
import { toSingleLineJson } from '../sse/frame.js';
import { SseBatchReader, type BatchResult, type BatchSink as BatchSinkBase, type PushedBody } from '../sse/batch-reader.js';
import { isErrorChunk } from './chunk-fields.js';
import { ConnectTimeout, StreamRefusal, createHttpTransport, type HttpTransport } from './http-transport.js';
import { UpstreamError, type ChatUpstream } from './types.js';

/**
 * Any OpenAI-compatible upstream, through the official SDK for the request
 * (base URL, auth, error statuses) but not for the stream: the SDK would parse
 * every chunk's JSON only for us to stringify it again, so we take the raw
 * body and frame its SSE events ourselves.
 */
export class OpenAIUpstream implements ChatUpstream {
  private readonly client: OpenAI;
  private readonly transport: HttpTransport;
  private readonly chatUrl: URL;
  private readonly streamHeaders: Record<string, string>;
  readonly continuesAnswers: boolean;

  constructor(
    readonly name: string,
    cfg: UpstreamConfig,
    connectTimeoutMs = 10_000,
  ) {
    this.continuesAnswers = cfg.continuation === 'assistant_prefix';
    this.transport = createHttpTransport({ connectTimeoutMs });
    this.chatUrl = new URL(cfg.baseUrl.replace(/\/+$/, '') + '/chat/completions');
    this.streamHeaders = {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      'user-agent': 'sse-gateway',
      ...(cfg.apiKey ? { authorization: `Bearer ${cfg.apiKey}` } : {}),
    };
    this.client = new OpenAI({
      baseURL: cfg.baseUrl,
      // Explicit everything: the SDK would otherwise read OPENAI_API_KEY & co. from
      // the environment and could send a key meant for another service.
      apiKey: cfg.apiKey ?? 'unused',
      adminAPIKey: null,
      organization: null,
      project: null,
      webhookSecret: null,
      ...(cfg.apiKey ? {} : { defaultHeaders: { authorization: null } }),
      // Retries and fallback are the gateway's policy, visible in one place.
      maxRetries: 0,
      // The gateway runs its own first-byte timer; this only bounds a stuck connect.
      timeout: 24 * 3600_000,
      logLevel: 'off',
      fetch: this.transport.fetch,
      // The gateway is a server. On Node 21+ (a global navigator), any global window/document — a
      // polyfill, a test shim — makes the SDK take it for a browser and refuse to start.
      dangerouslyAllowBrowser: true,
    });
  }

  async close(): Promise<void> {
    this.transport.close();
  }

  /**
   * Streamed completions skip the SDK: it would parse every chunk only for us
   * to re-encode it, and its per-request setup costs ~55 µs. The request is
   * the same one the SDK sends; errors map the same way (see failure()). The
   * request starts with the first pull, as a generator's would.
   */
  stream(req: ChatRequest, signal: AbortSignal): AsyncIterable<string[], boolean | undefined> {
    return { [Symbol.asyncIterator]: () => new UpstreamEvents(this, req, signal) };
  }

  /** POSTs a streamed completion; resolves with the event-stream body once its headers arrived. */
  async postStream(req: ChatRequest, signal: AbortSignal): Promise<PushedBody> {
    try {
      return await this.transport.postEventStream(this.chatUrl, this.streamHeaders, JSON.stringify({ ...req, stream: true }), signal);
    } catch (e) {
      throw this.failure(e, signal);
    }
  }

  async complete(req: ChatRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    try {
      const res = await this.client.chat.completions
        .create({ ...(req as ChatCompletionCreateParams), stream: false }, { signal })
        .asResponse();
      return (await res.json()) as Record<string, unknown>;
    } catch (e) {
      throw this.failure(e, signal);
    }
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const ids: string[] = [];
    try {
      for await (const m of this.client.models.list({ signal })) ids.push(m.id);
    } catch (e) {
      throw this.failure(e, signal);
    }
    return ids;
  }

  /** The one place SDK and transport errors become UpstreamErrors. */
  failure(e: unknown, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    if (e instanceof UpstreamError) return e;
    if (e instanceof StreamRefusal) {
      const status = e.status >= 200 && e.status < 300 ? 502 : e.status;
      const message = e.status < 300 ? 'the upstream did not answer with an event stream' : (errorMessage(e.body) ?? `upstream answered ${e.status}`);
      return new UpstreamError(status, message, this.name, retryAfterSeconds(e.retryAfter));
    }
    if (e instanceof APIUserAbortError) return signal.reason ?? e;
    if (e instanceof APIError && e.status !== undefined) {
      const detail = (e.error as { message?: unknown } | undefined)?.message;
      return new UpstreamError(e.status, typeof detail === 'string' ? detail : e.message, this.name, retryAfterSeconds(e.headers?.get('retry-after')));
    }
    if (e instanceof SyntaxError) return new UpstreamError(502, e.message, this.name);
    if (e instanceof ConnectTimeout) return new UpstreamError(504, e.message, this.name);
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    return new UpstreamError(0, cause ?? (e as Error).message ?? 'connection failed', this.name);
  }
}

/** One streamed completion: the request on the first pull, then one batch of events per socket read; the end says whether [DONE] came. */
class UpstreamEvents implements AsyncIterator<string[], boolean | undefined> {
  private reader: SseBatchReader | null = null;
  private returned = false;

  constructor(
    private readonly upstream: OpenAIUpstream,
    private readonly req: ChatRequest,
    private readonly signal: AbortSignal,
  ) {}

  next(): Promise<BatchResult> {
    return this.reader ? this.reader.next() : this.start();
  }

  return(): Promise<BatchResult> {
    this.returned = true;
    return this.reader ? this.reader.return() : Promise.resolve({ value: undefined, done: true });
  }

  private async start(): Promise<BatchResult> {
    const body = await this.upstream.postStream(this.req, this.signal);
    const reader = new SseBatchReader(body, new BatchSink(this.upstream.name), (e) => this.upstream.failure(e, this.signal));
    this.reader = reader;
    if (this.returned) return reader.return();
    return reader.next();
  }
}

/** Collects one socket read's worth of events into a batch. */
export class BatchSink implements BatchSinkBase {
  batch: string[] = [];
  done = false;
  error: UpstreamError | null = null;

  constructor(private readonly upstream: string) {}

  get size(): number {
    return this.batch.length;
  }

  take(): string[] {
    const b = this.batch;
    this.batch = [];
    return b;
  }

  onEvent(data: string, event: string, multiLine: boolean): void {
    if (this.done || this.error) return;
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    // OpenAI reports mid-stream failures as a data event holding an error object (in any JSON style).
    if (event === 'error' || isErrorChunk(data)) {
      this.error = new UpstreamError(502, errorMessage(data) ?? 'upstream error', this.upstream);
      return;
    }
    try {
      this.batch.push(toSingleLineJson(data, multiLine));
    } catch (e) {
      this.error = new UpstreamError(502, (e as Error).message, this.upstream);
    }
  }
}

/** The message of an OpenAI-style (or bare) error body; null when there is none. */
function errorMessage(data: string): string | null {
  try {
    const parsed = JSON.parse(data) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const m = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message ?? parsed.detail);
    return typeof m === 'string' ? m : null;
  } catch {
    return null;
  }
}

/** A Retry-After header in seconds; undefined when absent or not a positive number (HTTP dates are not honoured). */
function retryAfterSeconds(raw: string | null | undefined): number | undefined {
  const n = Number(raw);
  return raw && Number.isFinite(n) && n > 0 ? n : undefined;
}
