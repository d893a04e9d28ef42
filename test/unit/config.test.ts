import t from 'tap';
import { resolve } from 'node:path';
import { ConfigError, defaultConfig, loadConfig } from '../../src/config.js';

/** The project root: where config/default.json lives. */
const ROOT = resolve(import.meta.dirname, '../..');

/** A subtest's `t`. */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** The ConfigError loadConfig throws for this env (and cwd), failing the test if it does not throw one. */
function configError(t: Test, env: Record<string, string | undefined>, cwd = ROOT): ConfigError {
  try {
    loadConfig(env, cwd);
  } catch (e) {
    t.type(e, ConfigError, 'a ConfigError');
    return e as ConfigError;
  }
  t.fail(`no error for ${JSON.stringify(env)}`);
  return new ConfigError('(none)');
}

/** One line, naming the variable first, no stack trace. */
function assertOneLine(t: Test, err: ConfigError, variable: string): void {
  t.ok(err.message.startsWith(`${variable}`), `"${err.message}" starts with ${variable}`);
  t.notMatch(err.message, /[\r\n]/, 'one line');
  t.notMatch(err.message, /\bat .+:\d+:\d+/, 'no stack frames');
  t.equal(err.name, 'ConfigError');
}

t.test('defaults when the environment is empty', async (t) => {
  const c = loadConfig({}, ROOT);
  t.equal(c.host, '127.0.0.1');
  t.equal(c.port, 8080);
  t.strictSame(c.rateLimit, { max: 60, windowMs: 60_000 });
  t.equal(c.maxConcurrentStreams, 8);
  t.equal(c.upstreamTimeoutMs, 60_000);
  t.equal(c.streamResumeGraceMs, 15_000);
  t.equal(c.chatResumeGraceMs, 0);
  t.equal(c.heartbeatMs, 15_000);
  t.equal(c.logLevel, 'info');
  t.strictSame(c.upstreams, {}, 'no upstreams: the built-in mock serves');
  t.strictSame(c.models, {});
  t.strictSame(c.gatewayApiKeys, []);
  t.equal(c.corsOrigins, undefined);
  t.notOk('redisUrl' in c, 'no redis');
  t.strictSame(c.limits, {
    bodyLimitBytes: 1_048_576,
    maxMessages: 512,
    maxPromptChars: 1_000_000,
    maxTokens: 131_072,
    maxEventsPerStream: 100_000,
    maxStreams: 10_000,
    streamTtlMs: 600_000,
  });
  t.equal(c.modelsRefreshMs, 60_000);
});

t.test('defaultConfig reads the shipped default.json and applies overrides', async (t) => {
  t.strictSame(defaultConfig(), loadConfig({}, ROOT));
  const c = defaultConfig({ port: 0, heartbeatMs: 50 });
  t.equal(c.port, 0);
  t.equal(c.heartbeatMs, 50);
  t.equal(c.host, '127.0.0.1');
});

t.test('environment values are read and coerced', async (t) => {
  const c = loadConfig(
    {
      HOST: '0.0.0.0',
      PORT: '0',
      RATE_LIMIT_MAX: '100',
      RATE_LIMIT_WINDOW_MS: '1000',
      MAX_CONCURRENT_STREAMS: '2',
      REDIS_URL: 'redis://cache:6379/0',
      UPSTREAM_TIMEOUT_MS: '5000',
      STREAM_RESUME_GRACE_MS: '0',
      CHAT_RESUME_GRACE_MS: '2500',
      HEARTBEAT_MS: '10',
      LOG_LEVEL: 'debug',
    },
    ROOT,
  );
  t.equal(c.host, '0.0.0.0');
  t.equal(c.port, 0);
  t.strictSame(c.rateLimit, { max: 100, windowMs: 1000 });
  t.equal(c.maxConcurrentStreams, 2);
  t.equal(c.redisUrl, 'redis://cache:6379/0');
  t.equal(c.upstreamTimeoutMs, 5000);
  t.equal(c.streamResumeGraceMs, 0);
  t.equal(c.chatResumeGraceMs, 2500);
  t.equal(c.heartbeatMs, 10);
  t.equal(c.logLevel, 'debug');
  t.equal(loadConfig({ REDIS_URL: 'rediss://h:6380' }, ROOT).redisUrl, 'rediss://h:6380');
  t.equal(loadConfig({ PORT: ' 9090 ' }, ROOT).port, 9090, 'surrounding spaces are trimmed');
});

t.test('bad values are rejected with one line that starts with the variable', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['PORT', 'abc', /number/],
    ['PORT', '70000', /65535/],
    ['PORT', '-1', />= 0/],
    ['RATE_LIMIT_MAX', '0', />= 1/],
    ['RATE_LIMIT_MAX', '1.5', /integer/],
    ['RATE_LIMIT_WINDOW_MS', 'soon', /number/],
    ['MAX_CONCURRENT_STREAMS', '0', />= 1/],
    ['UPSTREAM_BASE_URL', 'not-a-url', /http\(s\) URL/],
    ['UPSTREAM_BASE_URL', 'ftp://x', /http\(s\) URL/],
    ['REDIS_URL', 'http://x', /redis/],
    ['LOG_LEVEL', 'loud', /info/],
    ['HEARTBEAT_MS', '-1', />= 10/],
    ['UPSTREAM_TIMEOUT_MS', '0', />= 1/],
    ['STREAM_RESUME_GRACE_MS', '-5', />= 0/],
    ['CHAT_RESUME_GRACE_MS', '1e-3', /integer/],
  ];
  for (const [variable, value, why] of cases) {
    t.test(`${variable}=${value}`, async (t) => {
      const err = configError(t, { [variable]: value });
      assertOneLine(t, err, `${variable}:`);
      t.match(err.message, why, 'says why');
    });
  }
});

t.test('CORS_ORIGINS: a comma list, or *', async (t) => {
  t.strictSame(loadConfig({ CORS_ORIGINS: 'a, b' }, ROOT).corsOrigins, ['a', 'b']);
  t.strictSame(loadConfig({ CORS_ORIGINS: 'https://app.example.com' }, ROOT).corsOrigins, ['https://app.example.com']);
  t.strictSame(loadConfig({ CORS_ORIGINS: ' https://a.example ,, https://b.example ' }, ROOT).corsOrigins, [
    'https://a.example',
    'https://b.example',
  ], 'blank entries dropped, entries trimmed');
  t.equal(loadConfig({ CORS_ORIGINS: '*' }, ROOT).corsOrigins, '*');
  t.equal(loadConfig({ CORS_ORIGINS: 'https://a.example, *' }, ROOT).corsOrigins, '*', '* anywhere in the list means any origin');
});

t.test('GATEWAY_API_KEYS: a comma list', async (t) => {
  t.strictSame(loadConfig({ GATEWAY_API_KEYS: 'k1,k2 , k3,' }, ROOT).gatewayApiKeys, ['k1', 'k2', 'k3']);
  t.strictSame(loadConfig({ GATEWAY_API_KEYS: 'only-one' }, ROOT).gatewayApiKeys, ['only-one']);
});

t.test('UPSTREAM_BASE_URL creates the upstream "default", with UPSTREAM_API_KEY', async (t) => {
  const c = loadConfig({ UPSTREAM_BASE_URL: 'https://api.example.com/v1', UPSTREAM_API_KEY: 'sk-test-123' }, ROOT);
  t.strictSame(c.upstreams, { default: { baseUrl: 'https://api.example.com/v1', continuation: 'none', apiKey: 'sk-test-123' } });
  const noKey = loadConfig({ UPSTREAM_BASE_URL: 'http://127.0.0.1:8000/v1' }, ROOT);
  t.strictSame(noKey.upstreams, { default: { baseUrl: 'http://127.0.0.1:8000/v1', continuation: 'none' } });
  const vllm = loadConfig({ UPSTREAM_BASE_URL: 'http://127.0.0.1:8000/v1', UPSTREAM_CONTINUATION: 'assistant_prefix' }, ROOT);
  t.equal(vllm.upstreams.default?.continuation, 'assistant_prefix', 'UPSTREAM_CONTINUATION says it can continue a partial answer');
  t.notOk('apiKey' in (noKey.upstreams.default ?? {}), 'no apiKey property at all');
  t.strictSame(loadConfig({ UPSTREAM_API_KEY: 'sk-test-123' }, ROOT).upstreams, {}, 'a key alone makes no upstream');
});

t.test('empty-string variables count as unset', async (t) => {
  const env: Record<string, string> = {};
  for (const k of [
    'HOST', 'PORT', 'UPSTREAM_BASE_URL', 'UPSTREAM_API_KEY', 'CONFIG_FILE', 'GATEWAY_API_KEYS', 'CORS_ORIGINS',
    'RATE_LIMIT_MAX', 'RATE_LIMIT_WINDOW_MS', 'MAX_CONCURRENT_STREAMS', 'REDIS_URL', 'UPSTREAM_TIMEOUT_MS',
    'STREAM_RESUME_GRACE_MS', 'CHAT_RESUME_GRACE_MS', 'HEARTBEAT_MS', 'LOG_LEVEL',
  ]) {
    env[k] = '';
  }
  t.strictSame(loadConfig(env, ROOT), loadConfig({}, ROOT), 'empty strings');
  t.strictSame(loadConfig({ PORT: '   ', LOG_LEVEL: ' ' }, ROOT), loadConfig({}, ROOT), 'whitespace only');
});

t.test('CONFIG_FILE problems are ConfigErrors naming CONFIG_FILE', async (t) => {
  const dir = t.testdir({
    'not-json.json': 'upstreams = {}',
    'unknown-key.json': JSON.stringify({ upstreams: {}, colour: 'blue' }),
    'unknown-nested.json': JSON.stringify({ upstreams: { a: { baseUrl: 'http://x', token: 'abc' } } }),
    'bad-alias.json': JSON.stringify({ models: { fast: { upstream: 'nowhere', model: 'm' } } }),
    'bad-url.json': JSON.stringify({ upstreams: { a: { baseUrl: 'ftp://x' } } }),
    'bad-limit.json': JSON.stringify({ limits: { maxMessages: 0 } }),
    'bad-key-env.json': JSON.stringify({ upstreams: { a: { baseUrl: 'http://x', apiKeyEnv: 'lower case' } } }),
  });

  const missing = configError(t, { CONFIG_FILE: 'missing.json' }, dir);
  assertOneLine(t, missing, 'CONFIG_FILE');
  t.match(missing.message, /missing\.json/);
  const missingAbs = configError(t, { CONFIG_FILE: resolve(dir, 'nope/missing.json') }, dir);
  assertOneLine(t, missingAbs, 'CONFIG_FILE');

  const notJson = configError(t, { CONFIG_FILE: 'not-json.json' }, dir);
  assertOneLine(t, notJson, 'CONFIG_FILE');
  t.match(notJson.message, /not-json\.json.*JSON/);

  const unknown = configError(t, { CONFIG_FILE: 'unknown-key.json' }, dir);
  assertOneLine(t, unknown, 'CONFIG_FILE');
  t.match(unknown.message, /colour/, 'names the unknown key');

  const nested = configError(t, { CONFIG_FILE: 'unknown-nested.json' }, dir);
  assertOneLine(t, nested, 'CONFIG_FILE');
  t.match(nested.message, /upstreams\.a/);
  t.match(nested.message, /token/);

  const alias = configError(t, { CONFIG_FILE: 'bad-alias.json' }, dir);
  assertOneLine(t, alias, 'CONFIG_FILE');
  t.match(alias.message, /models\.fast\.upstream/);
  t.match(alias.message, /nowhere/);

  for (const [file, path] of [
    ['bad-url.json', /upstreams\.a\.baseUrl/],
    ['bad-limit.json', /limits\.maxMessages/],
    ['bad-key-env.json', /upstreams\.a\.apiKeyEnv/],
  ] as const) {
    const err = configError(t, { CONFIG_FILE: file }, dir);
    assertOneLine(t, err, 'CONFIG_FILE');
    t.match(err.message, path, `${file} names the key`);
  }
});

t.test('a CONFIG_FILE path is read relative to cwd, or as given when absolute', async (t) => {
  const dir = t.testdir({ conf: { 'g.json': JSON.stringify({ heartbeatMs: 500 }) } });
  t.equal(loadConfig({ CONFIG_FILE: 'conf/g.json' }, dir).heartbeatMs, 500);
  t.equal(loadConfig({ CONFIG_FILE: resolve(dir, 'conf/g.json') }, ROOT).heartbeatMs, 500);
});

t.test('file values apply, and the environment wins over them', async (t) => {
  const dir = t.testdir({
    'gw.json': JSON.stringify({
      rateLimit: { max: 5, windowMs: 1000 },
      maxConcurrentStreams: 3,
      upstreamTimeoutMs: 2000,
      streamResumeGraceMs: 100,
      chatResumeGraceMs: 50,
      heartbeatMs: 500,
      upstreams: { default: { baseUrl: 'http://file.example/v1' } },
    }),
  });
  const fromFile = loadConfig({ CONFIG_FILE: 'gw.json' }, dir);
  t.strictSame(fromFile.rateLimit, { max: 5, windowMs: 1000 });
  t.equal(fromFile.maxConcurrentStreams, 3);
  t.equal(fromFile.upstreamTimeoutMs, 2000);
  t.equal(fromFile.streamResumeGraceMs, 100);
  t.equal(fromFile.chatResumeGraceMs, 50);
  t.equal(fromFile.heartbeatMs, 500);
  t.strictSame(fromFile.limits, loadConfig({}, ROOT).limits, 'limits default when the file leaves them out');

  const env = loadConfig(
    {
      CONFIG_FILE: 'gw.json',
      RATE_LIMIT_MAX: '7',
      RATE_LIMIT_WINDOW_MS: '7000',
      MAX_CONCURRENT_STREAMS: '4',
      UPSTREAM_TIMEOUT_MS: '3000',
      STREAM_RESUME_GRACE_MS: '0',
      CHAT_RESUME_GRACE_MS: '0',
      HEARTBEAT_MS: '20',
      UPSTREAM_BASE_URL: 'https://env.example/v1',
    },
    dir,
  );
  t.strictSame(env.rateLimit, { max: 7, windowMs: 7000 });
  t.equal(env.maxConcurrentStreams, 4);
  t.equal(env.upstreamTimeoutMs, 3000);
  t.equal(env.streamResumeGraceMs, 0, 'an env 0 wins over a file value');
  t.equal(env.chatResumeGraceMs, 0);
  t.equal(env.heartbeatMs, 20);
  t.strictSame(env.upstreams, { default: { baseUrl: 'https://env.example/v1', continuation: 'none' } }, 'UPSTREAM_BASE_URL wins over the file\'s "default"');

  const partial = loadConfig({ CONFIG_FILE: 'gw.json', RATE_LIMIT_MAX: '9' }, dir);
  t.strictSame(partial.rateLimit, { max: 9, windowMs: 1000 }, 'one env value, the other from the file');
});

t.test("an upstream's apiKeyEnv is resolved from the environment", async (t) => {
  const dir = t.testdir({
    'providers.json': JSON.stringify({
      upstreams: {
        openai: { baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'MY_OPENAI_KEY' },
        local: { baseUrl: 'http://127.0.0.1:8000/v1', continuation: 'assistant_prefix' },
      },
      models: { small: { upstream: 'openai', model: 'gpt-4o-mini' }, fast: { upstream: 'local', model: 'llama' } },
    }),
  });
  const c = loadConfig({ CONFIG_FILE: 'providers.json', MY_OPENAI_KEY: 'sk-from-env-0001' }, dir);
  t.strictSame(c.upstreams, {
    openai: { baseUrl: 'https://api.openai.com/v1', continuation: 'none', apiKey: 'sk-from-env-0001' },
    local: { baseUrl: 'http://127.0.0.1:8000/v1', continuation: 'assistant_prefix' },
  });
  t.strictSame(c.models, { small: { upstream: 'openai', model: 'gpt-4o-mini' }, fast: { upstream: 'local', model: 'llama' } });
  const unset = loadConfig({ CONFIG_FILE: 'providers.json' }, dir);
  t.strictSame(unset.upstreams.openai, { baseUrl: 'https://api.openai.com/v1', continuation: 'none' }, 'no key when the variable is unset');
});

t.test('model aliases may name "mock", and the "default" upstream from UPSTREAM_BASE_URL', async (t) => {
  const c = loadConfig({ CONFIG_FILE: 'config/example-providers.json', OPENAI_API_KEY: 'sk-example-key-1' }, ROOT);
  t.strictSame(c.models['mock-1'], { upstream: 'mock', model: 'mock-1' });
  t.equal(c.upstreams.openai?.apiKey, 'sk-example-key-1');

  const dir = t.testdir({ 'd.json': JSON.stringify({ models: { m: { upstream: 'default', model: 'x' } } }) });
  t.strictSame(loadConfig({ CONFIG_FILE: 'd.json', UPSTREAM_BASE_URL: 'http://u.example/v1' }, dir).models, {
    m: { upstream: 'default', model: 'x' },
  });
  const err = configError(t, { CONFIG_FILE: 'd.json' }, dir);
  assertOneLine(t, err, 'CONFIG_FILE');
  t.match(err.message, /models\.m\.upstream/);
});

t.test('CONFIG_FILE schema errors read "CONFIG_FILE <file>: <key>: <why>"', async (t) => {
  const dir = t.testdir({
    'root.json': JSON.stringify({ colour: 'blue' }),
    'nested.json': JSON.stringify({ limits: { maxMessages: 0 } }),
  });
  t.match(configError(t, { CONFIG_FILE: 'root.json' }, dir).message, /^CONFIG_FILE root\.json: [^:.]/, 'root key');
  t.match(configError(t, { CONFIG_FILE: 'nested.json' }, dir).message, /^CONFIG_FILE nested\.json: limits\.maxMessages: /, 'nested key');
});

t.test('STREAM_STORE_MAX_BYTES: 128 MiB by default, 0 allowed, from the file or the environment', async (t) => {
  t.equal(loadConfig({}, ROOT).streamStoreMaxBytes, 134_217_728);
  t.equal(loadConfig({ STREAM_STORE_MAX_BYTES: '0' }, ROOT).streamStoreMaxBytes, 0, '0 keeps none');
  const dir = t.testdir({ 's.json': JSON.stringify({ streamStoreMaxBytes: 1000 }) });
  t.equal(loadConfig({ CONFIG_FILE: 's.json' }, dir).streamStoreMaxBytes, 1000);
  t.equal(loadConfig({ CONFIG_FILE: 's.json', STREAM_STORE_MAX_BYTES: '2000' }, dir).streamStoreMaxBytes, 2000, 'the environment wins');
  for (const bad of ['-1', '1.5', 'lots']) {
    const err = configError(t, { STREAM_STORE_MAX_BYTES: bad });
    assertOneLine(t, err, 'STREAM_STORE_MAX_BYTES:');
  }
});
