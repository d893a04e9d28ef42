import type { ChatRequest } from '../schema/chat-request.js';

/**
 * What every upstream (the openai-SDK client, the built-in mock) offers the relay.
 * Chunks travel as JSON text, one `chat.completion.chunk` per string, batched
 * per upstream read: the relay frames them without parsing each one.
 */
export interface ChatUpstream {
  readonly name: string;
  /**
   * Continues a last assistant message sent with `continue_final_message: true`
   * instead of answering anew: what lets another replica finish a dead replica's stream.
   */
  readonly continuesAnswers?: boolean;
  /**
   * Resolves once the upstream accepted the request; iterating pulls batches of chunk JSON.
   * The iterator's final value is true when the upstream sent its own end marker (`data: [DONE]`):
   * the answer is whole even if no chunk carried a finish_reason. One without such a marker
   * (the in-process mock) returns nothing, and only a finish_reason tells its end from a cut.
   */
  stream(req: ChatRequest, signal: AbortSignal): AsyncIterable<string[], boolean | void>;
  /** A whole `chat.completion` object. */
  complete(req: ChatRequest, signal: AbortSignal): Promise<Record<string, unknown>>;
  /** The upstream's own model ids. */
  listModels(signal: AbortSignal): Promise<string[]>;
  close?(): Promise<void>;
}

/**
 * An upstream said no, or could not be reached. `status` is the upstream's
 * HTTP status, 0 when no response came (connect error, reset).
 */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly status: number,
    message: string,
    readonly upstream: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}
