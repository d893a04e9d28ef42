import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Redaction is compiled once here. Keys and authorization headers never reach
 * a log line, whatever object someone logs.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'authorization',
  'apiKey',
  'api_key',
  '*.apiKey',
  '*.api_key',
  '*.authorization',
  'upstreams.*.apiKey',
  'config.upstreams.*.apiKey',
  'gatewayApiKeys',
  'config.gatewayApiKeys',
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: 'sse-gateway' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
