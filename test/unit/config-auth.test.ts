import t from 'tap';
import { resolve } from 'node:path';
import { ConfigError, JWKS_TIMINGS, loadConfig } from '../../src/config.js';

/** AUTH_* (browser auth): parsed into `config.jwt`, or a one-line error naming the variable. */

const ROOT = resolve(import.meta.dirname, '../..');
const SECRET = 'x'.repeat(31) + 'Q-secret-tail';

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env, ROOT);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return '(no error)';
}

t.test('unset: no JWT auth', async (t) => {
  t.equal(loadConfig({}, ROOT).jwt, undefined);
  t.equal(loadConfig({ AUTH_JWKS_URL: '', AUTH_JWT_SECRET: ' ' }, ROOT).jwt, undefined, 'empty counts as unset');
});

t.test('AUTH_JWKS_URL with issuer and audiences', async (t) => {
  const c = loadConfig(
    { AUTH_JWKS_URL: 'https://tenant.example/.well-known/jwks.json', AUTH_JWT_ISSUER: 'https://tenant.example/', AUTH_JWT_AUDIENCE: 'api-a, api-b' },
    ROOT,
  );
  t.strictSame(c.jwt, {
    ...JWKS_TIMINGS,
    jwksUrl: 'https://tenant.example/.well-known/jwks.json',
    issuer: 'https://tenant.example/',
    audience: ['api-a', 'api-b'],
  });
  t.equal(c.jwt!.jwksCooldownMs, 30_000, 'an unknown kid refetches at most once per 30 s');
});

t.test('AUTH_JWT_SECRET', async (t) => {
  t.strictSame(loadConfig({ AUTH_JWT_SECRET: SECRET }, ROOT).jwt, { ...JWKS_TIMINGS, secret: SECRET });
  const short = errorOf({ AUTH_JWT_SECRET: 'too-short-secret-value' });
  t.match(short, /^AUTH_JWT_SECRET: must be at least 32 characters/);
  t.notOk(short.includes('too-short-secret-value'), 'the secret is not echoed');
});

t.test('bad combinations stop the start with one line', async (t) => {
  t.match(errorOf({ AUTH_JWKS_URL: 'https://a.example/jwks', AUTH_JWT_SECRET: SECRET }), /^AUTH_JWT_SECRET: cannot be combined with AUTH_JWKS_URL/);
  t.match(errorOf({ AUTH_JWT_ISSUER: 'https://a.example/' }), /^AUTH_JWT_ISSUER: needs AUTH_JWKS_URL or AUTH_JWT_SECRET/);
  t.match(errorOf({ AUTH_JWT_AUDIENCE: 'api' }), /^AUTH_JWT_AUDIENCE: needs AUTH_JWKS_URL or AUTH_JWT_SECRET/);
  t.match(errorOf({ AUTH_JWKS_URL: 'ftp://a.example/jwks' }), /^AUTH_JWKS_URL: must be an http\(s\) URL$/, 'the URL is not echoed');
});
