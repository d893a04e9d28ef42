import t from 'tap';
import { ErrorCodes, GatewayAbort, GatewayError, fromUpstreamFailure, scrubSecrets, streamErrorPayload } from '../../src/errors.js';
import { UpstreamError } from '../../src/upstream/types.js';

const up = (status: number, message = 'upstream said no', retryAfter?: number) => new UpstreamError(status, message, 'openai', retryAfter);

t.test('status 0 (no response) → 502 upstream_error', async (t) => {
  const e = fromUpstreamFailure(up(0, 'connect ECONNREFUSED 127.0.0.1:9'));
  t.type(e, GatewayError);
  t.equal(e.status, 502);
  t.equal(e.code, 'upstream_error');
  t.equal(e.type, 'upstream_error');
  t.match(e.message, /openai/, 'names the upstream');
  t.match(e.message, /ECONNREFUSED/);
});

t.test("401/403 → 502: the gateway's credentials, never the client's fault", async (t) => {
  for (const status of [401, 403]) {
    const e = fromUpstreamFailure(up(status, 'Incorrect API key provided: sk-abc***xyz'));
    t.equal(e.status, 502, `${status}`);
    t.equal(e.code, 'upstream_error');
    t.notMatch(e.message, /Incorrect API key|sk-/, 'the upstream text about the key is not passed on');
    t.strictSame(e.headers, {});
  }
});

t.test('429 → 429 upstream_rate_limited, with retry-after when the upstream gave one', async (t) => {
  const withRetry = fromUpstreamFailure(up(429, 'slow down', 12));
  t.equal(withRetry.status, 429);
  t.equal(withRetry.code, 'upstream_rate_limited');
  t.equal(withRetry.type, 'rate_limit_error');
  t.strictSame(withRetry.headers, { 'retry-after': '12' });
  t.match(withRetry.message, /slow down/);

  const without = fromUpstreamFailure(up(429, 'slow down'));
  t.equal(without.status, 429);
  t.strictSame(without.headers, {}, 'no retry-after when none was given');
});

t.test('400/404/413/422 → the same status, upstream_rejected, message passed through', async (t) => {
  for (const status of [400, 404, 413, 422]) {
    const msg = `Invalid value for 'temperature' (${status})`;
    const e = fromUpstreamFailure(up(status, msg));
    t.equal(e.status, status, `${status} status`);
    t.equal(e.code, 'upstream_rejected');
    t.equal(e.type, 'invalid_request_error');
    t.equal(e.message, msg, 'message as the upstream wrote it');
  }
});

t.test('5xx → 502 upstream_error', async (t) => {
  for (const status of [500, 502, 503]) {
    const e = fromUpstreamFailure(up(status, 'overloaded'));
    t.equal(e.status, 502, `${status}`);
    t.equal(e.code, 'upstream_error');
    t.match(e.message, String(status), 'the upstream status is in the message');
  }
});

t.test('408/504 and our own timeout abort → 504 upstream_timeout', async (t) => {
  for (const status of [408, 504]) {
    const e = fromUpstreamFailure(up(status, 'timed out'));
    t.equal(e.status, 504, `${status}`);
    t.equal(e.code, 'upstream_timeout');
    t.equal(e.type, 'timeout_error');
  }
  const abort = fromUpstreamFailure(new GatewayAbort('upstream_timeout'));
  t.equal(abort.status, 504);
  t.equal(abort.code, 'upstream_timeout');
});

t.test('anything else → 502 with a generic message', async (t) => {
  const secretish = 'ECONNRESET at /srv/app/internal.js with token sk-live-abcdefgh12345';
  for (const err of [new Error(secretish), new TypeError(secretish), secretish, undefined, null, { status: 400 }, new GatewayAbort('client_disconnected')]) {
    const e = fromUpstreamFailure(err);
    t.equal(e.status, 502);
    t.equal(e.code, 'upstream_error');
    t.equal(e.message, 'upstream request failed');
    t.notMatch(e.message, /ECONNRESET|internal|sk-/, 'none of the original text');
  }
});

t.test('a GatewayError passes through as it is', async (t) => {
  const g = new GatewayError('model_not_found', 'no such model');
  t.equal(fromUpstreamFailure(g), g);
});

t.test('upstream messages are scrubbed of secrets before they reach the client', async (t) => {
  const key = 'my-upstream-key-0001';
  const cases = [
    up(400, `bad request for key ${key}`),
    up(0, `connect failed, Authorization: Bearer abc.def-ghi`),
    up(429, 'quota of sk-proj-ABCDEFGH12345678 exceeded'),
    up(500, `crashed ${key}`),
    up(504, `timed out sk-abcdefghijklmnop`),
  ];
  for (const err of cases) {
    const e = fromUpstreamFailure(err, [key]);
    t.notMatch(e.message, key);
    t.notMatch(e.message, /sk-[A-Za-z0-9]{8}|abc\.def/);
    t.match(e.message, '[redacted]');
  }
});

t.test('scrubSecrets', async (t) => {
  t.equal(scrubSecrets('the key is hunter2-secret, again hunter2-secret', ['hunter2-secret']), 'the key is [redacted], again [redacted]');
  t.equal(scrubSecrets('nothing here'), 'nothing here');
  t.equal(scrubSecrets('abc def', ['abc']), 'abc def', 'secrets shorter than 4 characters are not scrubbed (too likely to hit ordinary text)');
  t.equal(scrubSecrets('Incorrect API key provided: sk-proj-Ab_12-cdEFgh'), 'Incorrect API key provided: [redacted]');
  t.equal(scrubSecrets('sk-short'), 'sk-short', 'too short to be a key');
  t.equal(scrubSecrets('risk-assessment-document'), 'risk-assessment-document', '"sk-" inside a word is not a key');
  t.equal(scrubSecrets('Authorization: Bearer eyJhbGciOi.JIUzI1NiJ9-_~+/='), 'Authorization: [redacted]');
  t.equal(scrubSecrets('bearer   abcdef'), '[redacted]', 'any case, any spacing');
  const both = scrubSecrets('sent Bearer tok123 and sk-abcdefghijkl with custom-secret-9', ['custom-secret-9']);
  t.notMatch(both, /tok123|sk-abc|custom-secret-9/);
  const long = scrubSecrets('x'.repeat(5000));
  t.equal(long.length, 2001, 'long texts are cut at 2000 characters plus an ellipsis');
  t.ok(long.endsWith('…'));
});

t.test('GatewayError', async (t) => {
  const e = new GatewayError('invalid_body', 'messages[0].role: is required', { param: 'messages[0].role' });
  t.type(e, Error);
  t.equal(e.name, 'GatewayError');
  t.equal(e.status, 400);
  t.strictSame(e.toBody(), {
    error: { message: 'messages[0].role: is required', type: 'invalid_request_error', code: 'invalid_body', param: 'messages[0].role' },
  });
  t.strictSame(new GatewayError('unauthorized', 'missing key').toBody(), {
    error: { message: 'missing key', type: 'authentication_error', code: 'unauthorized', param: null },
  });
  const custom = new GatewayError('upstream_rejected', 'too big', { status: 413, headers: { 'x-a': '1' } });
  t.equal(custom.status, 413, 'status can be overridden');
  t.strictSame(custom.headers, { 'x-a': '1' });
  t.equal(custom.toBody().error.type, 'invalid_request_error');
  t.notOk(JSON.stringify(custom.toBody()).includes('stack'), 'no stack in the body');
});

t.test('the catalogue: every code has an HTTP error status and a type', async (t) => {
  for (const [code, { status, type }] of Object.entries(ErrorCodes)) {
    t.ok(status >= 400 && status < 600, `${code} → ${status}`);
    t.match(type, /^[a-z_]+$/);
    t.equal(new GatewayError(code as keyof typeof ErrorCodes, 'm').status, status);
  }
});

t.test('streamErrorPayload is single-line JSON in the error shape', async (t) => {
  const p = streamErrorPayload(new GatewayError('upstream_error', 'line one\nline two'));
  t.notMatch(p, /\n/);
  t.strictSame(JSON.parse(p), { error: { type: 'upstream_error', code: 'upstream_error', message: 'line one\nline two' } });
  t.strictSame(JSON.parse(streamErrorPayload({ type: 'client_disconnected', message: 'gone' })), {
    error: { type: 'client_disconnected', message: 'gone' },
  });
});
