import { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import type { Identity } from '../auth/identity.js';
import type { ErrorCode, GatewayError } from '../errors.js';
import type { AttemptRecord } from '../relay/failover.js';
import type { Generation, Outcome } from '../relay/generation.js';
import type { Usage } from '../streams/stream-log.js';

/** The client APIs the gateway speaks. */
export type Api = 'chat' | 'responses' | 'messages';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Which API a route speaks: named in its log line and metrics. */
    api?: Api;
    /** The API's own error body for an error answered before any stream (default: OpenAI's shape). */
    errorBody?: (err: GatewayError) => unknown;
  }
}

const NO_ONE: Identity = { kind: 'ip', id: '' };

/** What the one log line per request says about it; filled in along the request path. */
export class RequestSummary {
  readonly startedAt = performance.now();
  /** The client API the route speaks (route config `api`); null for routes outside the three. */
  api: Api | null = null;
  /** Who the request is (plugins/auth.ts decides; the client IP without auth). */
  identity: Identity = NO_ONE;
  /** Hash-derived id of the key or user ("anonymous" without auth): safe to log. */
  get keyId(): string {
    return this.identity.kind === 'ip' ? 'anonymous' : this.identity.id;
  }
  /** Whom limits (rate, slots, tokens) and ownership count against: the key or user id, or the IP without auth. */
  get limitKey(): string {
    return this.identity.id;
  }
  model: string | null = null;
  upstream: string | null = null;
  generation: Generation | null = null;
  /** Usage of a non-streamed completion (streams carry theirs on the generation). */
  usage: Usage | null = null;
  errorCode: ErrorCode | null = null;
  /** Tries before the first byte, for a non-streamed request (streams keep theirs on the generation). */
  readonly attempts: AttemptRecord[] = [];
}

declare module 'fastify' {
  interface FastifyRequest {
    summary: RequestSummary;
  }
}

function outcomeOf(status: number, finished: boolean, summary: RequestSummary): Outcome {
  const gen = summary.generation;
  if (!finished) return 'client_aborted';
  if (gen?.outcome) return gen.outcome;
  if (status < 400) return 'completed';
  if (summary.errorCode?.startsWith('upstream_') || status >= 500) return 'upstream_error';
  return 'rejected';
}

/**
 * One structured line per request, written when the response is over (or the
 * client left). Never one per chunk. Health probes log at debug.
 */
/** The request's line, as logged; metrics read the same facts. */
export type SummaryLine = Record<string, unknown> & { method: string; url: string; status: number; outcome: Outcome };

export function registerRequestSummary(
  app: FastifyInstance,
  /** Called with every request's line and summary after it is logged (metrics). */
  observers: ((line: SummaryLine, summary: RequestSummary, route: string | undefined) => void)[] = [],
): void {
  app.decorateRequest('summary', null as unknown as RequestSummary);
  // The line holds no secrets (no headers, no body, no config; every field is listed below), so it skips
  // the redaction every other log call goes through: that walk costs more than the rest of the line.
  // reqId leads the line, where the request's own child logger would have put it.
  const lineLog = app.log.child({}, { redact: [] });
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    const summary = new RequestSummary();
    summary.identity = { kind: 'ip', id: request.ip };
    request.summary = summary;
    summary.api = request.routeOptions.config.api ?? null;
    reply.header('x-request-id', request.id);
    reply.raw.once('close', () => {
      const res = reply.raw;
      const gen = summary.generation;
      const attempts = gen?.attempts ?? summary.attempts;
      const line = {
        reqId: request.id,
        method: request.method,
        url: request.url,
        api: summary.api ?? undefined,
        key_id: summary.keyId,
        model: summary.model,
        upstream: gen?.upstream ?? summary.upstream,
        attempts: attempts.length > 1 ? attempts : undefined,
        status: res.statusCode,
        // HTTP/2: an RST_STREAM ends the stream's writable side itself, so writableFinished alone can be
        // true for a client that left; writableEnded is only set by our end(). On HTTP/1 finished implies ended.
        // Without a real socket (app.inject) nothing is ever flushed: ended is all there is.
        outcome: outcomeOf(res.statusCode, res.writableEnded && (res.writableFinished || !(res.socket instanceof Socket)), summary),
        error_code: summary.errorCode ?? gen?.error?.code ?? null,
        stream_id: gen?.log.id ?? null,
        ttft_ms: gen?.ttftMs != null ? Math.round(gen.ttftMs * 100) / 100 : null,
        duration_ms: Math.round((performance.now() - summary.startedAt) * 100) / 100,
        chunks: gen?.chunks ?? null,
        finish_reason: gen?.finishReason ?? null,
        prompt_tokens: (gen?.usage ?? summary.usage)?.prompt_tokens ?? null,
        completion_tokens: (gen?.usage ?? summary.usage)?.completion_tokens ?? null,
      };
      const probe = request.url === '/healthz' || request.url === '/readyz' || request.url === '/metrics';
      if (probe) lineLog.debug(line, 'request');
      else lineLog.info(line, 'request');
      for (const observe of observers) observe(line, summary, request.routeOptions.url);
    });
    done();
  });
}
