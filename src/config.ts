import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { resolve, relative, isAbsolute } from 'node:path';
import { z } from 'zod';

/**
 * One schema for everything the gateway can be told. Environment wins over
 * CONFIG_FILE; a bad value stops the start with one line naming the key.
 */

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be an integer' })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` });

const url = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

const upstreamSchema = z.strictObject({
  baseUrl: url,
  /** Name of the environment variable that holds this upstream's key: keys never live in config files. */
  apiKeyEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, { error: 'must be an environment variable name' }).optional(),
  /** Whether it can continue a partial answer (relay/takeover.ts): only then can another replica finish a dead replica's stream. */
  continuation: z.enum(['assistant_prefix', 'none'], { error: 'must be assistant_prefix or none' }).default('none'),
});

const modelTargetSchema = z.strictObject({
  upstream: z.string().min(1),
  model: z.string().min(1),
});
/** One target, or several in priority order (failover goes down the list). */
const modelAliasSchema = z.union([modelTargetSchema, z.array(modelTargetSchema).min(1)]);

const limitsSchema = z.strictObject({
  bodyLimitBytes: int(1024).default(1_048_576),
  maxMessages: int(1).default(512),
  maxPromptChars: int(1).default(1_000_000),
  maxTokens: int(1).default(131_072),
  /** Events kept per stream for resume; a longer generation is stopped with an error event. */
  maxEventsPerStream: int(1).default(100_000),
  /** Streams kept in process (running and finished); the one that finished first goes first; running ones are never evicted. */
  maxStreams: int(1).default(10_000),
  /** How long a finished stream stays readable. */
  streamTtlMs: int(1000).default(600_000),
});

const failoverSchema = z.strictObject({
  /** Tries per request before the first byte, over the model's upstreams in priority order (each upstream at most twice). */
  maxAttempts: int(1, 10).default(3),
  backoffMs: int(0).default(100),
  maxBackoffMs: int(0).default(2000),
  /** A Retry-After longer than this is not waited for. */
  retryAfterCapMs: int(0).default(5000),
  /** Failures in a row that open an upstream's circuit, and for how long. */
  breakerThreshold: int(1).default(5),
  breakerCoolDownMs: int(0).default(30_000),
  /** Retries per replica: at most this share of its requests (last 10 s), plus the floor below. */
  retryBudgetRatio: z.coerce.number({ error: 'must be a number' }).min(0, { error: 'must be >= 0' }).max(1, { error: 'must be <= 1' }).default(0.2),
  retryBudgetMinRetries: int(0).default(10),
});

const mockSchema = z.strictObject({
  tokensPerSecond: z.coerce.number().positive().default(40),
  firstTokenDelayMs: int(0).default(150),
});

// --- load shedding (plugins/load-shedding.ts) ---
/** Past any threshold new requests get 503 `overloaded`; 0 turns that check off. */
const pressureSchema = z.strictObject({
  /** Mean event-loop delay over the last sample (env MAX_EVENT_LOOP_DELAY_MS). */
  maxEventLoopDelayMs: int(0).default(1000),
  /**
   * Event-loop utilization (0..1) over the last sample. Off by default: a busy
   * but responsive relay sits near 1; the loop delay above is what clients feel.
   */
  maxEventLoopUtilization: z.coerce
    .number({ error: 'must be a number' })
    .min(0, { error: 'must be >= 0' })
    .max(1, { error: 'must be <= 1' })
    .default(0),
  maxHeapUsedBytes: int(0).default(0),
  maxRssBytes: int(0).default(0),
  /** How often the process is sampled. */
  sampleIntervalMs: int(10).default(1000),
  /** Retry-After of a shed request. */
  retryAfterSeconds: int(1).default(10),
});
// --- end load shedding ---

/** The JSON file's shape: deployment structure (upstreams, aliases) plus defaults. */
export const fileSchema = z.strictObject({
  upstreams: z.record(z.string().min(1), upstreamSchema).default({}),
  models: z.record(z.string().min(1), modelAliasSchema).default({}),
  limits: limitsSchema.default(limitsSchema.parse({})),
  mock: mockSchema.default(mockSchema.parse({})),
  failover: failoverSchema.default(failoverSchema.parse({})),
  pressure: pressureSchema.default(pressureSchema.parse({})), // load shedding
  modelsRefreshMs: int(1000).default(60_000),
  rateLimit: z.strictObject({ max: int(1).optional(), windowMs: int(1).optional() }).default({}),
  maxConcurrentStreams: int(1).optional(),
  upstreamTimeoutMs: int(1).optional(),
  streamResumeGraceMs: int(0).optional(),
  chatResumeGraceMs: int(0).optional(),
  streamLeaseMs: int(100).optional(),
  streamStoreMaxBytes: int(0).optional(),
  heartbeatMs: int(10).optional(),
  drainTimeoutMs: int(0).optional(),
  tokensPerMinute: int(0).optional(),
  connectTimeoutMs: int(1).optional(),
  idleTimeoutMs: int(1).optional(),
  maxDurationMs: int(1).optional(),
  clientStallTimeoutMs: int(1).optional(),
});

const csv = z
  .string()
  .transform((s) => s.split(',').map((p) => p.trim()).filter((p) => p.length > 0));

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
  error: 'must be one of fatal, error, warn, info, debug, trace, silent',
});

/** The environment's shape. Every key here is documented in .env.example. */
export const envSchema = z.object({
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(0, 65535).default(8080),
  UPSTREAM_BASE_URL: url.optional(),
  UPSTREAM_API_KEY: z.string().min(1).optional(),
  UPSTREAM_CONTINUATION: z.enum(['assistant_prefix', 'none'], { error: 'must be assistant_prefix or none' }).optional(),
  CONFIG_FILE: z.string().min(1).default('config/default.json'),
  GATEWAY_API_KEYS: csv.optional(),
  CORS_ORIGINS: csv.optional(),
  RATE_LIMIT_MAX: int(1).optional(),
  RATE_LIMIT_WINDOW_MS: int(1).optional(),
  MAX_CONCURRENT_STREAMS: int(1).optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  UPSTREAM_TIMEOUT_MS: int(1).optional(),
  STREAM_RESUME_GRACE_MS: int(0).optional(),
  CHAT_RESUME_GRACE_MS: int(0).optional(),
  STREAM_LEASE_MS: int(100).optional(),
  STREAM_STORE_MAX_BYTES: int(0).optional(),
  HEARTBEAT_MS: int(10).optional(),
  DRAIN_TIMEOUT_MS: int(0).optional(),
  TOKENS_PER_MINUTE: int(0).optional(),
  TRUST_PROXY: z
    .string()
    .regex(/^(true|false|\d{1,2}|[0-9a-fA-F.:/]+(\s*,\s*[0-9a-fA-F.:/]+)*)$/, {
      error: 'must be true, false, a hop count, or a comma list of proxy IPs/CIDRs',
    })
    .optional(),
  UPSTREAM_CONNECT_TIMEOUT_MS: int(1).optional(),
  UPSTREAM_IDLE_TIMEOUT_MS: int(1).optional(),
  STREAM_MAX_DURATION_MS: int(1).optional(),
  CLIENT_STALL_TIMEOUT_MS: int(1).optional(),
  // --- browser auth (JWT) ---
  AUTH_JWKS_URL: url.optional(),
  AUTH_JWT_SECRET: z.string().min(32, { error: 'must be at least 32 characters (256 bits) for HS256' }).optional(),
  AUTH_JWT_ISSUER: z.string().min(1).optional(),
  AUTH_JWT_AUDIENCE: csv.optional(),
  // --- end browser auth ---
  MAX_EVENT_LOOP_DELAY_MS: int(0).optional(), // load shedding
  // --- HTTP/2 ---
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  HTTP2_CLEARTEXT: z.enum(['true', 'false'], { error: 'must be true or false' }).optional(),
  // --- end HTTP/2 ---
  LOG_LEVEL: logLevel.default('info'),
});

export interface UpstreamConfig {
  baseUrl: string;
  apiKey?: string;
  /**
   * `assistant_prefix`: the upstream continues a last assistant message when asked with
   * `continue_final_message: true` (vLLM, SGLang and the mock do), so a stream whose replica
   * died can be finished by another. `none`: such a stream ends with a `generation_lost` error.
   */
  continuation?: 'assistant_prefix' | 'none';
}

/** Browser auth (CONTRACT.md "Browser auth (JWT)"): the identity provider's JWTs beside the static keys. */
export interface JwtConfig {
  /** AUTH_JWKS_URL: the provider's key set; RS256, ES256 and EdDSA tokens signed by one of its keys pass. */
  jwksUrl?: string;
  /** AUTH_JWT_SECRET: an HS256 shared secret, instead of a JWKS. */
  secret?: string;
  /** AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE: required `iss` / one of the accepted `aud`, when set. */
  issuer?: string;
  audience?: string[];
  /** A token whose `kid` is not cached refetches the key set at most this often. */
  jwksCooldownMs: number;
  /** The key set is refetched this often anyway, so a key the provider withdrew stops being accepted. */
  jwksRefreshMs: number;
  jwksTimeoutMs: number;
  /** After a failed fetch, tokens whose key is not cached get 503 (Retry-After) this long before the next try. */
  jwksRetryMs: number;
}

/** The JWKS timings behind AUTH_JWKS_URL (not variables: the contract fixes the 30 s cooldown). */
export const JWKS_TIMINGS = { jwksCooldownMs: 30_000, jwksRefreshMs: 600_000, jwksTimeoutMs: 5_000, jwksRetryMs: 5_000 } as const;

export interface Config {
  host: string;
  port: number;
  /** Upstreams by name; empty means the built-in mock model serves. */
  upstreams: Record<string, UpstreamConfig>;
  /** Alias → upstream name + that upstream's model (or several, in priority order). Empty: the upstream's own list (or the mock's). */
  models: Record<string, z.infer<typeof modelAliasSchema>>;
  failover: z.infer<typeof failoverSchema>;
  /**
   * Which proxies' X-Forwarded-For to believe (request.ip, per-IP limits): false (default),
   * true, a hop count, or a comma list of addresses/CIDRs — Fastify's trustProxy.
   */
  trustProxy: boolean | string | ((address: string, hop: number) => boolean);
  /** Tokens (prompt + completion) per key per minute; 0 = no token budget. */
  tokensPerMinute: number;
  /** Time allowed to open a TCP connection to an upstream. */
  connectTimeoutMs: number;
  /** Longest silence between two upstream chunks once streaming. */
  idleTimeoutMs: number;
  /** Longest a generation may run. */
  maxDurationMs: number;
  /** How long a client may leave its socket full before it is dropped. */
  clientStallTimeoutMs: number;
  modelsRefreshMs: number;
  gatewayApiKeys: string[];
  /** Set when AUTH_JWKS_URL or AUTH_JWT_SECRET is: JWTs are accepted beside the keys. */
  jwt?: JwtConfig;
  corsOrigins: string[] | '*' | undefined;
  rateLimit: { max: number; windowMs: number };
  maxConcurrentStreams: number;
  redisUrl?: string;
  upstreamTimeoutMs: number;
  streamResumeGraceMs: number;
  chatResumeGraceMs: number;
  /**
   * With Redis: how long a replica's claim on a running generation lasts unrenewed. A stream
   * whose claim lapsed (its replica died) is taken over by a replica one of its readers is on.
   */
  streamLeaseMs: number;
  /**
   * Bytes of events kept per replica for streams that have ended (for resume), in memory and
   * in Redis alike; past it the stream that ended first is dropped first. 0 keeps none.
   */
  streamStoreMaxBytes: number;
  heartbeatMs: number;
  /** How long streams in flight may run after SIGTERM. */
  drainTimeoutMs: number;
  logLevel: z.infer<typeof logLevel>;
  limits: z.infer<typeof limitsSchema>;
  mock: z.infer<typeof mockSchema>;
  /** Load-shedding thresholds (503 `overloaded` past any of them). */
  pressure: z.infer<typeof pressureSchema>;
  /** TLS_CERT_FILE + TLS_KEY_FILE, read at start (PEM): HTTPS with HTTP/2, HTTP/1.1 by ALPN on the same port. */
  tls?: { cert: string; key: string };
  /** HTTP2_CLEARTEXT: h2c (prior knowledge) with no TLS, for a proxy in front; no HTTP/1 on that port. */
  http2Cleartext?: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function firstIssue(err: z.ZodError, prefix: string, input: unknown): string {
  const issue = err.issues[0]!;
  const path = issue.path.join('.');
  const key = [prefix, path].filter(Boolean).join(': ');
  let got = input;
  for (const p of issue.path) got = (got as Record<PropertyKey, unknown> | undefined)?.[p];
  // URLs and keys may hold credentials: never echo them to the start-up log.
  const secretish = /KEY|URL|SECRET|apiKey|baseUrl/i.test(path);
  const shown = got === undefined || secretish || typeof got === 'object' ? '' : ` (got ${JSON.stringify(got)?.slice(0, 60)})`;
  return `${key}: ${issue.message}${shown}`;
}

function readConfigFile(file: string, cwd: string): unknown {
  const path = isAbsolute(file) ? file : resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(`CONFIG_FILE: cannot read ${relative(cwd, path) || path}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`CONFIG_FILE: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** Builds the config from an environment. Throws ConfigError with one line naming the bad key. */
export function loadConfig(rawEnv: Env, cwd = process.cwd()): Config {
  // Empty variables count as unset: `FOO=` in an env file means "not configured".
  const env: Env = {};
  for (const k of Object.keys(envSchema.shape)) {
    const v = rawEnv[k];
    if (v !== undefined && v.trim() !== '') env[k] = v.trim();
  }
  const e = envSchema.safeParse(env);
  if (!e.success) throw new ConfigError(firstIssue(e.error, '', env));

  const rawFile = readConfigFile(e.data.CONFIG_FILE, cwd);
  const f = fileSchema.safeParse(rawFile);
  if (!f.success) throw new ConfigError(firstIssue(f.error, `CONFIG_FILE ${e.data.CONFIG_FILE}`, rawFile));

  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, u] of Object.entries(f.data.upstreams)) {
    const apiKey = u.apiKeyEnv ? rawEnv[u.apiKeyEnv] : undefined;
    upstreams[name] = { baseUrl: u.baseUrl, continuation: u.continuation, ...(apiKey ? { apiKey } : {}) };
  }
  if (e.data.UPSTREAM_BASE_URL) {
    upstreams.default = {
      baseUrl: e.data.UPSTREAM_BASE_URL,
      continuation: e.data.UPSTREAM_CONTINUATION ?? 'none',
      ...(e.data.UPSTREAM_API_KEY ? { apiKey: e.data.UPSTREAM_API_KEY } : {}),
    };
  }
  for (const [alias, route] of Object.entries(f.data.models)) {
    for (const m of Array.isArray(route) ? route : [route]) {
      // "mock" always names the built-in model, so a config can alias it next to real upstreams.
      if (m.upstream !== 'mock' && !upstreams[m.upstream]) {
        throw new ConfigError(`CONFIG_FILE ${e.data.CONFIG_FILE}: models.${alias}.upstream: no upstream named "${m.upstream}"`);
      }
    }
  }

  const cors = e.data.CORS_ORIGINS;
  const jwt = jwtConfig(e.data);
  const tls = readTls(e.data.TLS_CERT_FILE, e.data.TLS_KEY_FILE, cwd);
  if (tls && e.data.HTTP2_CLEARTEXT === 'true') throw new ConfigError('HTTP2_CLEARTEXT: cannot be combined with TLS_CERT_FILE (TLS already serves HTTP/2)');
  return {
    host: e.data.HOST,
    port: e.data.PORT,
    upstreams,
    models: f.data.models,
    failover: f.data.failover,
    tokensPerMinute: e.data.TOKENS_PER_MINUTE ?? f.data.tokensPerMinute ?? 0,
    trustProxy: parseTrustProxy(e.data.TRUST_PROXY),
    connectTimeoutMs: e.data.UPSTREAM_CONNECT_TIMEOUT_MS ?? f.data.connectTimeoutMs ?? 10_000,
    idleTimeoutMs: e.data.UPSTREAM_IDLE_TIMEOUT_MS ?? f.data.idleTimeoutMs ?? 120_000,
    maxDurationMs: e.data.STREAM_MAX_DURATION_MS ?? f.data.maxDurationMs ?? 1_800_000,
    clientStallTimeoutMs: e.data.CLIENT_STALL_TIMEOUT_MS ?? f.data.clientStallTimeoutMs ?? 30_000,
    modelsRefreshMs: f.data.modelsRefreshMs,
    gatewayApiKeys: e.data.GATEWAY_API_KEYS ?? [],
    ...(jwt ? { jwt } : {}),
    corsOrigins: cors === undefined ? undefined : cors.includes('*') ? '*' : cors,
    rateLimit: {
      max: e.data.RATE_LIMIT_MAX ?? f.data.rateLimit.max ?? 60,
      windowMs: e.data.RATE_LIMIT_WINDOW_MS ?? f.data.rateLimit.windowMs ?? 60_000,
    },
    maxConcurrentStreams: e.data.MAX_CONCURRENT_STREAMS ?? f.data.maxConcurrentStreams ?? 8,
    ...(e.data.REDIS_URL ? { redisUrl: e.data.REDIS_URL } : {}),
    upstreamTimeoutMs: e.data.UPSTREAM_TIMEOUT_MS ?? f.data.upstreamTimeoutMs ?? 60_000,
    streamResumeGraceMs: e.data.STREAM_RESUME_GRACE_MS ?? f.data.streamResumeGraceMs ?? 15_000,
    chatResumeGraceMs: e.data.CHAT_RESUME_GRACE_MS ?? f.data.chatResumeGraceMs ?? 0,
    streamLeaseMs: e.data.STREAM_LEASE_MS ?? f.data.streamLeaseMs ?? 5000,
    streamStoreMaxBytes: e.data.STREAM_STORE_MAX_BYTES ?? f.data.streamStoreMaxBytes ?? 134_217_728,
    heartbeatMs: e.data.HEARTBEAT_MS ?? f.data.heartbeatMs ?? 15_000,
    drainTimeoutMs: e.data.DRAIN_TIMEOUT_MS ?? f.data.drainTimeoutMs ?? 25_000,
    logLevel: e.data.LOG_LEVEL,
    limits: f.data.limits,
    mock: f.data.mock,
    pressure: { ...f.data.pressure, maxEventLoopDelayMs: e.data.MAX_EVENT_LOOP_DELAY_MS ?? f.data.pressure.maxEventLoopDelayMs }, // load shedding
    ...(tls ? { tls } : {}),
    ...(e.data.HTTP2_CLEARTEXT === 'true' ? { http2Cleartext: true } : {}),
  };
}

function jwtConfig(env: z.infer<typeof envSchema>): JwtConfig | undefined {
  const { AUTH_JWKS_URL: jwksUrl, AUTH_JWT_SECRET: secret, AUTH_JWT_ISSUER: issuer, AUTH_JWT_AUDIENCE: audience } = env;
  if (jwksUrl && secret) throw new ConfigError('AUTH_JWT_SECRET: cannot be combined with AUTH_JWKS_URL (set one of them)');
  if (!jwksUrl && !secret) {
    if (issuer) throw new ConfigError('AUTH_JWT_ISSUER: needs AUTH_JWKS_URL or AUTH_JWT_SECRET');
    if (audience) throw new ConfigError('AUTH_JWT_AUDIENCE: needs AUTH_JWKS_URL or AUTH_JWT_SECRET');
    return undefined;
  }
  return {
    ...JWKS_TIMINGS,
    ...(jwksUrl ? { jwksUrl } : { secret: secret! }),
    ...(issuer ? { issuer } : {}),
    ...(audience && audience.length > 0 ? { audience } : {}),
  };
}

/** Reads and checks the certificate pair now, so a bad file stops the start instead of the first handshake. */
function readTls(certFile: string | undefined, keyFile: string | undefined, cwd: string): { cert: string; key: string } | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile) throw new ConfigError('TLS_CERT_FILE: must be set together with TLS_KEY_FILE');
  if (!keyFile) throw new ConfigError('TLS_KEY_FILE: must be set together with TLS_CERT_FILE');
  const read = (name: string, file: string): string => {
    try {
      return readFileSync(isAbsolute(file) ? file : resolve(cwd, file), 'utf8');
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const cert = read('TLS_CERT_FILE', certFile);
  const key = read('TLS_KEY_FILE', keyFile);
  try {
    new X509Certificate(cert);
  } catch {
    throw new ConfigError(`TLS_CERT_FILE: ${certFile} is not a PEM certificate`);
  }
  try {
    createPrivateKey(key);
  } catch {
    throw new ConfigError(`TLS_KEY_FILE: ${keyFile} is not a PEM private key (or it is encrypted)`);
  }
  try {
    createSecureContext({ cert, key });
  } catch {
    throw new ConfigError(`TLS_KEY_FILE: ${keyFile} does not match the certificate in TLS_CERT_FILE`);
  }
  return { cert, key };
}

function parseTrustProxy(v: string | undefined): Config['trustProxy'] {
  if (v === undefined || v === 'false') return false;
  if (v === 'true') return true;
  if (!/^\d+$/.test(v)) return v;
  // A hop count: trust that many proxies nearest to us.
  const hops = Number(v);
  return (_address, hop) => hop < hops;
}

/** A config for tests and embedding: the defaults, overridden field by field. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  const base = loadConfig({ CONFIG_FILE: resolve(import.meta.dirname ?? '.', '../config/default.json') });
  return { ...base, ...overrides };
}
