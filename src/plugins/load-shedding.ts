import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';

/** Probes and scrapes: an overloaded replica must still say it is alive and show why it sheds. */
const NEVER_SHED: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Sheds new requests with 503 `overloaded` (and Retry-After) while the event
 * loop is saturated or memory is past its limit (CONFIG_FILE `pressure`).
 * Registered on the root, so `app.isUnderPressure()` is there for everyone;
 * the probe routes are let through by the pressure handler.
 */
export async function registerLoadShedding(app: FastifyInstance, config: Config): Promise<void> {
  const p = config.pressure;
  const shed = new GatewayError('overloaded', 'The gateway is overloaded; retry shortly', {
    headers: { 'retry-after': String(p.retryAfterSeconds) },
  });
  await app.register(underPressure, {
    maxEventLoopDelay: p.maxEventLoopDelayMs,
    maxEventLoopUtilization: p.maxEventLoopUtilization,
    // Utilization over the last sample, not since start: a long-lived process must still react.
    eventLoopUtilizationMode: 'interval',
    maxHeapUsedBytes: p.maxHeapUsedBytes,
    maxRssBytes: p.maxRssBytes,
    sampleInterval: p.sampleIntervalMs,
    exposeStatusRoute: false,
    // A rejected promise goes to next(err): the app's error handler answers in OpenAI's shape,
    // and the request's one log line carries error_code "overloaded" (no extra line per shed request).
    pressureHandler: (request: FastifyRequest) => {
      if (request.routeOptions.url !== undefined && NEVER_SHED.has(request.routeOptions.url)) return;
      // Resume reads (EventSource) are cheap, and a 503 would make the browser stop for good.
      if (request.routeOptions.config.public) return;
      return Promise.reject(shed);
    },
  });
}
