import { UpstreamError } from './upstream/types.js';

/**
 * The one catalogue of errors the gateway answers with. Every response error
 * has an HTTP status and an OpenAI-shaped body; tests assert on `code`.
 */
export const ErrorCodes = {
  invalid_body: { status: 400, type: 'invalid_request_error' },
  invalid_json: { status: 400, type: 'invalid_request_error' },
  unauthorized: { status: 401, type: 'authentication_error' },
  forbidden: { status: 403, type: 'permission_error' },
  /** A JWT's `models` claim does not list the requested model. */
  model_not_allowed: { status: 403, type: 'permission_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  stream_not_found: { status: 404, type: 'invalid_request_error' },
  response_not_found: { status: 404, type: 'invalid_request_error' },
  route_not_found: { status: 404, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  idempotency_key_reused: { status: 409, type: 'invalid_request_error' },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  unsupported_media_type: { status: 415, type: 'invalid_request_error' },
  rate_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  too_many_streams: { status: 429, type: 'rate_limit_error' },
  token_budget_exceeded: { status: 429, type: 'rate_limit_error' },
  upstream_rate_limited: { status: 429, type: 'rate_limit_error' },
  upstream_rejected: { status: 400, type: 'invalid_request_error' },
  previous_response_not_found: { status: 400, type: 'invalid_request_error' },
  upstream_error: { status: 502, type: 'upstream_error' },
  upstream_timeout: { status: 504, type: 'timeout_error' },
  draining: { status: 503, type: 'service_unavailable_error' },
  overloaded: { status: 503, type: 'service_unavailable_error' },
  /** The identity provider's key set cannot be fetched, and the token's key is not cached. */
  jwks_unavailable: { status: 503, type: 'service_unavailable_error' },
  internal_error: { status: 500, type: 'server_error' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorBody {
  error: { message: string; type: string; code: ErrorCode; param: string | null };
}

export class GatewayError extends Error {
  override name = 'GatewayError';
  readonly status: number;
  readonly type: string;
  readonly headers: Record<string, string>;

  constructor(
    readonly code: ErrorCode,
    message: string,
    opts: { param?: string; status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = opts.status ?? ErrorCodes[code].status;
    this.type = ErrorCodes[code].type;
    this.param = opts.param ?? null;
    this.headers = opts.headers ?? {};
  }

  readonly param: string | null;

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }
}

/** Secrets an error message must never carry back to a client or a log. */
const secretPatterns = [/\bsk-[A-Za-z0-9_-]{8,}/g, /Bearer\s+[A-Za-z0-9._~+/=-]+/gi];

export function scrubSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  for (const re of secretPatterns) out = out.replace(re, '[redacted]');
  return out.length > 2000 ? `${out.slice(0, 2000)}…` : out;
}

/** Why the gateway itself aborted an upstream request; carried as the AbortSignal's reason. */
export type AbortReason =
  | 'client_disconnected'
  | 'client_stalled'
  | 'upstream_timeout'
  | 'upstream_idle'
  | 'max_duration'
  | 'deleted'
  | 'no_reader'
  | 'shutdown'
  | 'stream_too_long';

export class GatewayAbort extends Error {
  override name = 'GatewayAbort';
  constructor(readonly reason: AbortReason) {
    super(reason);
  }
}

/**
 * The one mapping from an upstream failure (before any byte reached the
 * client) to what the client sees. Upstream 4xx pass through with their
 * status; the gateway's own upstream credentials being refused is the
 * gateway's fault (502), not the client's.
 */
export function fromUpstreamFailure(err: unknown, secrets: readonly string[] = []): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof GatewayAbort && err.reason === 'upstream_timeout') {
    return new GatewayError('upstream_timeout', 'the upstream did not start its response in time');
  }
  if (err instanceof UpstreamError) {
    const msg = scrubSecrets(err.message, secrets);
    const where = `upstream ${err.upstream}`;
    if (err.status === 0) return new GatewayError('upstream_error', `${where} unreachable: ${msg}`);
    if (err.status === 401 || err.status === 403) {
      return new GatewayError('upstream_error', `${where} refused the gateway's credentials (${err.status})`);
    }
    if (err.status === 429) {
      const headers: Record<string, string> = err.retryAfterSeconds ? { 'retry-after': String(err.retryAfterSeconds) } : {};
      return new GatewayError('upstream_rate_limited', `${where} is rate limiting: ${msg}`, { headers });
    }
    if (err.status === 408 || err.status === 504) return new GatewayError('upstream_timeout', `${where} timed out: ${msg}`);
    if (err.status >= 400 && err.status < 500) return new GatewayError('upstream_rejected', msg, { status: err.status });
    return new GatewayError('upstream_error', `${where} failed (${err.status}): ${msg}`);
  }
  return new GatewayError('upstream_error', 'upstream request failed');
}

/** The error object written into a stream once headers are out. */
export function streamErrorPayload(err: { type: string; message: string; code?: string }): string {
  return JSON.stringify({ error: { type: err.type, code: err.code, message: err.message } });
}
