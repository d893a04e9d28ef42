import { APIError, APIUserAbortError, OpenAI } from 'openai';
import type { ChatCompletionCreateParams } from 'openai/resources/chat/completions';
import type { UpstreamConfig } from '../config.js';
import type { ChatRequest } from '../schema/chat-request.js';
import { toSingleLineJson } from '../sse/frame.js';
import { SseParser, type SseSink } from '../sse/parser.js';
import { createNodeFetch, rawBody } from './node-fetch.js';
import { UpstreamError, type ChatUpstream } from './types.js';
import type { IncomingMessage } from 'node:http';

/**
 * Any OpenAI-compatible upstream, through the official SDK for the request
 * (base URL, auth, error statuses) but not for the stream: the SDK would parse
 * every chunk's JSON only for us to stringify it again, so we take the raw
 * body and frame its SSE events ourselves.
 */
export class OpenAIUpstream implements ChatUpstream {
  private readonly client: OpenAI;
  private readonly transport = createNodeFetch();

  constructor(
    readonly name: string,
    cfg: UpstreamConfig,
  ) {
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
    });
  }

  async close(): Promise<void> {
    this.transport.close();
  }

  async *stream(req: ChatRequest, signal: AbortSignal): AsyncGenerator<string[]> {
    let res: Response;
    try {
      res = await this.client.chat.completions
        .create({ ...(req as ChatCompletionCreateParams), stream: true }, { signal })
        .asResponse();
    } catch (e) {
      throw this.failure(e, signal);
    }
    const raw = rawBody(res);
    if (raw) return yield* this.readNode(raw, signal);
    if (!res.body) throw new UpstreamError(502, 'upstream answered without a body', this.name);
    return yield* this.readWeb(res.body, signal);
  }

  /** The fast path: the node stream behind nodeFetch, one batch per socket read. */
  private async *readNode(raw: IncomingMessage, signal: AbortSignal): AsyncGenerator<string[]> {
    const sink = new BatchSink(this.name);
    const parser = new SseParser(sink);
    try {
      // Leaving the loop early must not destroy the socket: after [DONE] it goes back to the pool.
      for await (const buf of raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        parser.push(buf);
        if (sink.batch.length > 0) yield sink.take();
        if (sink.error) throw sink.error;
        if (sink.done) return;
      }
      parser.end();
      if (sink.batch.length > 0) yield sink.take();
      if (sink.error) throw sink.error;
      if (!sink.done && !sink.sawFinish) throw new UpstreamError(502, 'upstream ended the stream early', this.name);
    } catch (e) {
      throw this.failure(e, signal);
    } finally {
      if (sink.done && !raw.readableEnded) raw.resume();
      else if (!raw.readableEnded) raw.destroy();
    }
  }

  private async *readWeb(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<string[]> {
    const sink = new BatchSink(this.name);
    const parser = new SseParser(sink);
    const reader = body.getReader();
    let ended = false;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          ended = true;
          parser.end();
          break;
        }
        parser.push(value);
        if (sink.batch.length > 0) yield sink.take();
        if (sink.error) throw sink.error;
        if (sink.done) return;
      }
      if (sink.batch.length > 0) yield sink.take();
      if (sink.error) throw sink.error;
      if (!sink.done && !sink.sawFinish) throw new UpstreamError(502, 'upstream ended the stream early', this.name);
    } catch (e) {
      throw this.failure(e, signal);
    } finally {
      if (!ended) reader.cancel().catch(() => {});
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
  private failure(e: unknown, signal: AbortSignal): unknown {
    if (signal.aborted) return signal.reason;
    if (e instanceof UpstreamError) return e;
    if (e instanceof APIUserAbortError) return signal.reason ?? e;
    if (e instanceof APIError && e.status !== undefined) {
      const detail = (e.error as { message?: unknown } | undefined)?.message;
      const retryAfter = Number(e.headers?.get('retry-after'));
      return new UpstreamError(
        e.status,
        typeof detail === 'string' ? detail : e.message,
        this.name,
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      );
    }
    if (e instanceof SyntaxError) return new UpstreamError(502, e.message, this.name);
    const cause = (e as { cause?: { code?: string } }).cause?.code;
    return new UpstreamError(0, cause ?? (e as Error).message ?? 'connection failed', this.name);
  }
}

/** Collects one socket read's worth of events into a batch. */
class BatchSink implements SseSink {
  batch: string[] = [];
  done = false;
  sawFinish = false;
  error: UpstreamError | null = null;

  constructor(private readonly upstream: string) {}

  take(): string[] {
    const b = this.batch;
    this.batch = [];
    return b;
  }

  onEvent(data: string, event: string): void {
    if (this.done || this.error) return;
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    // OpenAI reports mid-stream failures as a data event holding an error object.
    if (event === 'error' || data.startsWith('{"error"')) {
      this.error = new UpstreamError(502, errorMessage(data), this.upstream);
      return;
    }
    try {
      this.batch.push(toSingleLineJson(data));
    } catch (e) {
      this.error = new UpstreamError(502, (e as Error).message, this.upstream);
      return;
    }
    if (!this.sawFinish && data.includes('"finish_reason":"')) this.sawFinish = true;
  }
}

function errorMessage(data: string): string {
  try {
    const parsed = JSON.parse(data) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message);
    return typeof m === 'string' ? m : 'upstream error';
  } catch {
    return 'upstream error';
  }
}
