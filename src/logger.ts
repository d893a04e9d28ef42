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
  'jwt.secret',
  'config.jwt.secret',
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

/**
 * The server's stdout: lines leave in writes of ~4 KB instead of one write() each — the summary
 * line is per request, and each write is a syscall (~5 % of a gateway's CPU while 2,000 streams
 * open). A line waits at most `maxDelayMs`, and whatever is pending is written before the process
 * exits (a SIGKILL loses at most that much).
 */
export function batchedStdout(maxDelayMs = 100): DestinationStream {
  const out = pino.destination({ dest: 1, sync: true, minLength: 4096 });
  let pending = false;
  const timer = setInterval(() => {
    if (!pending) return;
    pending = false;
    out.flush();
  }, maxDelayMs);
  timer.unref();
  process.once('exit', () => {
    try {
      out.flushSync();
    } catch {
      // stdout is gone (a closed pipe): there is nowhere left to write.
    }
  });
  return {
    write(line: string): void {
      pending = true;
      out.write(line);
    },
  };
}
