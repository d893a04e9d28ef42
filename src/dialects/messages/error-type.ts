import { ErrorCodes, type ErrorCode } from '../../errors.js';

/**
 * Anthropic's error types (https://docs.claude.com/en/api/errors), chosen by
 * HTTP status as Anthropic does: 400 invalid_request_error (also for other
 * 4xx it has no type for), 401 authentication_error, 403 permission_error,
 * 404 not_found_error, 409 conflict_error, 413 request_too_large, 429
 * rate_limit_error, 500 api_error, 504 timeout_error, 529 overloaded_error.
 * The gateway's 502 (an upstream failed) is api_error, and its 503
 * (draining, shedding load) is overloaded_error: capacity that will come
 * back, which clients retry.
 */
export type AnthropicErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'request_too_large'
  | 'rate_limit_error'
  | 'api_error'
  | 'timeout_error'
  | 'overloaded_error';

export function errorTypeForStatus(status: number): AnthropicErrorType {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 409:
      return 'conflict_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
  }
  return status >= 400 && status < 500 ? 'invalid_request_error' : 'api_error';
}

/**
 * The type of the error event that ends a stream, from the stream log's end:
 * an upstream failure carries the gateway's error code (the status it would
 * have had before the stream started); the gateway's own reasons to stop
 * (AbortReason, generation_lost) are timeouts, a shutdown, or api_error.
 */
export function errorTypeForStreamEnd(end: { type: string; code?: string }): AnthropicErrorType {
  if (end.code !== undefined && end.code in ErrorCodes) return errorTypeForStatus(ErrorCodes[end.code as ErrorCode].status);
  switch (end.type) {
    case 'upstream_timeout':
    case 'upstream_idle':
    case 'max_duration':
      return 'timeout_error';
    case 'shutdown':
      return 'overloaded_error';
  }
  return 'api_error';
}

/**
 * Anthropic's error body. `details.error_code` carries the gateway's own code
 * (model_not_found, upstream_timeout, client_disconnected…): the official SDK
 * exposes it as `errorCode`, and clients that do not know it fall back on `type`.
 */
export function anthropicError(type: AnthropicErrorType, message: string, code: string): {
  type: 'error';
  error: { type: AnthropicErrorType; message: string; details: { error_code: string } };
} {
  return { type: 'error', error: { type, message, details: { error_code: code } } };
}
