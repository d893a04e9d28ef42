import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CircuitState } from '../relay/circuit-breaker.js';
import type { AttemptRecord } from '../relay/failover.js';
import type { Generation } from '../relay/generation.js';
import type { Usage } from '../streams/stream-log.js';
import type { RequestSummary, SummaryLine } from './request-summary.js';

/**
 * Prometheus metrics, fed from two places only: the relay's `finished`
 * callbacks (one call per generation) and the request-summary observers (one
 * call per request). Nothing runs per chunk. Every label value comes from a
 * bounded set: route patterns, never raw URLs; served model names, else
 * `other`; never a key, a user string or a stream id.
 */

export interface MetricsSources {
  /** Generations running now (relay.activeCount). */
  activeStreams: () => number;
  /** Ended streams this process keeps for resume, and the bytes of their events (the stream store). */
  storedStreams: () => number;
  storedBytes: () => number;
  draining: () => boolean;
  /** Each upstream's circuit, by upstream name. */
  circuits: () => Iterable<[string, CircuitState]>;
  /** Whether the gateway serves this model name. Unknown names are labelled `other`. */
  isServedModel: (model: string) => boolean;
}

/** LLM latencies: tens of milliseconds (cached, tiny models) to minutes (long generations). */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** StreamEnd error types (AbortReason + mid-stream upstream failure) counted by name; anything else is `other`. */
const ABORT_REASONS: ReadonlySet<string> = new Set([
  'client_disconnected',
  'client_stalled',
  'upstream_timeout',
  'upstream_idle',
  'upstream_error',
  'max_duration',
  'deleted',
  'no_reader',
  'shutdown',
  'stream_too_long',
]);

/** The 429s the gateway itself sends, by error code. */
const REJECTION_KINDS: Readonly<Record<string, 'requests' | 'concurrency' | 'tokens'>> = {
  rate_limit_exceeded: 'requests',
  too_many_streams: 'concurrency',
  token_budget_exceeded: 'tokens',
};

const CIRCUIT_VALUE: Readonly<Record<CircuitState, number>> = { closed: 0, open: 1, half_open: 2 };

const METHODS: ReadonlySet<string> = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** Model labels known to be served; capped so that even a churning upstream list stays bounded. */
const MAX_MODEL_LABELS = 500;

export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'api' | 'route' | 'method' | 'status' | 'outcome'>;
  private readonly ttft: Histogram<'model'>;
  private readonly duration: Histogram<'model' | 'outcome'>;
  private readonly tokens: Counter<'model' | 'direction'>;
  private readonly attempts: Counter<'upstream' | 'result'>;
  private readonly failures: Counter<'upstream'>;
  private readonly retries: Counter<'upstream'>;
  private readonly budgetRefusals: Counter<'upstream'>;
  private readonly aborts: Counter<'reason'>;
  private readonly rejections: Counter<'kind'>;
  private readonly models = new Set<string>();

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    // Own registry, never the global one: tests build many apps in one process.
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by client API (chat, responses, messages, or "none"), route pattern (or "unmatched"), method, status and outcome.',
      labelNames: ['api', 'route', 'method', 'status', 'outcome'],
      registers,
    });
    this.ttft = new Histogram({
      name: 'gateway_ttft_seconds',
      help: 'Time from request arrival to the first upstream chunk of a stream.',
      labelNames: ['model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.duration = new Histogram({
      name: 'gateway_stream_duration_seconds',
      help: 'Time from request arrival to the end of a generation, by how it ended.',
      labelNames: ['model', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: 'gateway_tokens_total',
      help: 'Tokens as reported by the upstream usage: direction "in" (prompt) or "out" (completion).',
      labelNames: ['model', 'direction'],
      registers,
    });
    this.attempts = new Counter({
      name: 'gateway_upstream_attempts_total',
      help: 'Upstream tries before the first byte, by result: ok, timeout, skipped (circuit open), connect_error, 429, 4xx, 5xx.',
      labelNames: ['upstream', 'result'],
      registers,
    });
    this.failures = new Counter({
      name: 'gateway_upstream_failures_total',
      help: 'Upstream failures: tries that count against the circuit breaker, and streams broken mid-way.',
      labelNames: ['upstream'],
      registers,
    });
    this.retries = new Counter({
      name: 'gateway_upstream_retries_total',
      help: 'Upstream tries after a request\'s first one failed (same or another upstream), by the upstream tried.',
      labelNames: ['upstream'],
      registers,
    });
    this.budgetRefusals = new Counter({
      name: 'gateway_retry_budget_exhausted_total',
      help: 'Retries not sent because the replica\'s retry budget (about 20 % of requests) was spent, by the upstream that would have been tried.',
      labelNames: ['upstream'],
      registers,
    });
    new Gauge({
      name: 'gateway_upstream_circuit_state',
      help: 'Circuit breaker per upstream: 0 closed, 1 open (skipped while the model has another target), 2 half-open.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const [upstream, state] of sources.circuits()) this.set({ upstream }, CIRCUIT_VALUE[state]);
      },
    });
    this.aborts = new Counter({
      name: 'gateway_aborts_total',
      help: 'Generations ended early, by the type of their final error event.',
      labelNames: ['reason'],
      registers,
    });
    this.rejections = new Counter({
      name: 'gateway_rate_limit_rejections_total',
      help: 'Requests refused with 429 by the gateway: requests (rate), concurrency (streams), tokens (budget).',
      labelNames: ['kind'],
      registers,
    });
    new Gauge({
      name: 'gateway_active_streams',
      help: 'Generations running in this process.',
      registers,
      collect() {
        this.set(sources.activeStreams());
      },
    });
    new Gauge({
      name: 'gateway_stream_store_bytes',
      help: 'Bytes of events kept in this process for ended streams (for resume); bounded by STREAM_STORE_MAX_BYTES.',
      registers,
      collect() {
        this.set(sources.storedBytes());
      },
    });
    new Gauge({
      name: 'gateway_stream_store_streams',
      help: 'Ended streams kept in this process for resume.',
      registers,
      collect() {
        this.set(sources.storedStreams());
      },
    });
    new Gauge({
      name: 'gateway_draining',
      help: '1 while the gateway drains for shutdown, else 0.',
      registers,
      collect() {
        this.set(sources.draining() ? 1 : 0);
      },
    });
  }

  /** relay.finished: one call per generation, when its log has ended. */
  readonly onGeneration = (gen: Generation): void => {
    const model = this.modelLabel(gen.model);
    if (gen.ttftMs !== null) this.ttft.observe({ model }, gen.ttftMs / 1000);
    this.duration.observe({ model, outcome: gen.outcome ?? 'upstream_error' }, (performance.now() - gen.startedAt) / 1000);
    this.countUsage(model, gen.usage);
    this.countAttempts(gen.attempts);
    const end = gen.log.end;
    let reason: string | null = null;
    if (end?.kind === 'error') {
      reason = ABORT_REASONS.has(end.type) ? end.type : end.code && ABORT_REASONS.has(end.code) ? end.code : 'other';
    } else if (end === null && gen.outcome === 'client_aborted') {
      // Left before the first token: the log was dropped, so there is no final event to read.
      reason = 'client_disconnected';
    }
    if (reason !== null) this.aborts.inc({ reason });
    if (gen.upstream !== null && (reason === 'upstream_error' || reason === 'upstream_idle') && gen.ttftMs !== null) {
      this.failures.inc({ upstream: gen.upstream });
    }
  };

  /** request-summary observer: one call per request, after its line is logged. */
  readonly onRequest = (line: SummaryLine, summary: RequestSummary, route: string | undefined): void => {
    this.requests.inc({
      api: summary.api ?? 'none',
      route: route ?? 'unmatched',
      method: METHODS.has(line.method) ? line.method : 'other',
      status: String(line.status),
      outcome: line.outcome,
    });
    if (line.status === 429 && summary.errorCode) {
      const kind = REJECTION_KINDS[summary.errorCode];
      if (kind) this.rejections.inc({ kind });
    }
    // Streams are counted once, from their generation; these are the non-streamed completions.
    if (summary.generation === null) {
      if (summary.usage && summary.model !== null) this.countUsage(this.modelLabel(summary.model), summary.usage);
      this.countAttempts(summary.attempts);
    }
  };

  /** GET /metrics at the root: no auth, no rate limit, never shed. */
  register(app: FastifyInstance): void {
    app.get('/metrics', async (_request, reply) => {
      const text = await this.registry.metrics();
      return reply.type(this.registry.contentType).send(text);
    });
  }

  private countUsage(model: string, usage: Usage | null): void {
    if (!usage) return;
    if (usage.prompt_tokens > 0) this.tokens.inc({ model, direction: 'in' }, usage.prompt_tokens);
    if (usage.completion_tokens > 0) this.tokens.inc({ model, direction: 'out' }, usage.completion_tokens);
  }

  private countAttempts(attempts: readonly AttemptRecord[]): void {
    let sent = 0;
    for (const a of attempts) {
      if (a.result === 'no_retry_budget') {
        this.budgetRefusals.inc({ upstream: a.upstream });
        continue;
      }
      if (a.result !== 'skipped' && sent++ > 0) this.retries.inc({ upstream: a.upstream });
      const result = attemptResult(a.result);
      this.attempts.inc({ upstream: a.upstream, result });
      if (result !== 'ok' && result !== 'skipped' && result !== '4xx') this.failures.inc({ upstream: a.upstream });
    }
  }

  /** A served model's name, else `other`: the client's `model` string is user input. */
  private modelLabel(model: string): string {
    if (this.models.has(model)) return model;
    if (!this.sources.isServedModel(model)) return 'other';
    if (this.models.size < MAX_MODEL_LABELS) this.models.add(model);
    return model;
  }
}

/** Bounded label for one try: the HTTP status class, not the status itself. */
export function attemptResult(result: AttemptRecord['result']): string {
  if (typeof result === 'string') return result;
  if (result === 0) return 'connect_error';
  if (result === 429) return '429';
  if (result === 408) return 'timeout';
  if (result >= 500 && result < 600) return '5xx';
  if (result >= 400 && result < 500) return '4xx';
  return 'other';
}
