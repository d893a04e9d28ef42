import t, { type Test } from 'tap';
import { FAST_MOCK, chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { openAIError, send } from '../helpers/http.js';
import { JwksServer, bearer, deadUrl, jwksConfig, makeKey, sign } from '../helpers/jwks.js';
import type { JwtConfig } from '../../src/config.js';

/**
 * The identity provider's key set: cached, refetched for an unknown kid at
 * most once per cooldown, refreshed on a timer, and an outage that never
 * stops the start and never lets a token through (503 for tokens whose key
 * is not cached; cached keys keep working; /readyz says why).
 */

const JSON_CT = { 'content-type': 'application/json' };
const STATIC_KEY = 'sk-jwks-test';

async function setup(t: Test, extra: Partial<JwtConfig> = {}, url?: string): Promise<{ idp: JwksServer; gw: RunningGateway }> {
  const idp = await new JwksServer().start();
  t.teardown(() => idp.close());
  const gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [STATIC_KEY], ...jwksConfig(url ?? idp.url, extra) });
  t.teardown(() => gw.close());
  return { idp, gw };
}

const chat = (gw: RunningGateway, token: string) =>
  send(`${gw.url}/v1/chat/completions`, { body: chatBody('hi [mock:tokens=2]'), headers: { ...JSON_CT, ...bearer(token) } });

const errorOf = (body: string) => {
  const e = openAIError(body);
  return typeof e === 'string' ? { code: e, message: e } : e.error;
};

type Ready = { status: string; jwks?: { status: string; keys_cached: number; fetched_at: string | null; reason?: string } };
const readyz = async (gw: RunningGateway): Promise<{ code: number; body: Ready }> => {
  const res = await gw.app.inject({ method: 'GET', url: '/readyz' });
  return { code: res.statusCode, body: res.json() as Ready };
};

/** /readyz once `pred` holds: the gateway applies a fetch in its own time (bounded: 5 s). */
async function readyWhen(gw: RunningGateway, pred: (r: Ready) => boolean, what: string): Promise<Ready> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { body } = await readyz(gw);
    if (pred(body)) return body;
    if (Date.now() > deadline) throw new Error(`timed out waiting for /readyz: ${what} (last: ${JSON.stringify(body)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('fetched once at start; an unknown kid refetches at most once per 30 s', async (t) => {
  const a = await makeKey('RS256');
  const { idp, gw } = await setup(t);
  idp.keys = [a];
  await idp.fetched(1);
  t.equal(idp.fetches, 1, 'the key set is fetched at start, in the background');
  t.equal((await chat(gw, await sign(a, { sub: 'u1' }))).status, 200, 'a token of a cached key: 200, no fetch');
  for (const kid of ['x1', 'x2', 'x3']) {
    const res = await chat(gw, await sign(await makeKey('ES256', kid), { sub: 'u1' }));
    t.equal(res.status, 401, `unknown kid ${kid}: 401`);
    t.match(errorOf(res.body).message, /unknown kid/);
  }
  t.equal(idp.fetches, 1, 'within 30 s of the last fetch, unknown kids cause no refetch');
  const ready = await readyz(gw);
  t.equal(ready.code, 200);
  t.match(ready.body, { status: 'ready', jwks: { status: 'ok', keys_cached: 1 } }, '/readyz shows the cached set');
});

t.test('rotation: a new key is picked up on first sight, a withdrawn one stops passing', async (t) => {
  const [a, b, c] = [await makeKey('RS256'), await makeKey('ES256'), await makeKey('EdDSA')];
  // A cooldown of 0: every unknown kid refetches, so the test needs no 30 s wait.
  const { idp, gw } = await setup(t, { jwksCooldownMs: 0 });
  idp.keys = [a];
  const tokenA = await sign(a, { sub: 'u' });
  t.equal((await chat(gw, tokenA)).status, 200, 'key A');
  const before = idp.fetches;

  idp.keys = [b]; // the provider rotates: B in, A out
  t.equal((await chat(gw, await sign(b, { sub: 'u' }))).status, 200, 'key B, published after the last fetch: picked up');
  t.equal(idp.fetches, before + 1, 'by one refetch');
  // The very token accepted before: a key set that changed drops the tokens verified with it.
  const withdrawn = await chat(gw, tokenA);
  t.equal(withdrawn.status, 401, 'key A, withdrawn: refused');
  t.match(errorOf(withdrawn.body).message, /unknown kid/);

  idp.keys = [b, c];
  t.equal((await chat(gw, await sign(c, { sub: 'u' }))).status, 200, 'key C (EdDSA) after a second rotation');
});

t.test('the periodic refresh drops a withdrawn key even when no unknown kid comes along', async (t) => {
  const [a, b] = [await makeKey('RS256'), await makeKey('RS256')];
  const { idp, gw } = await setup(t, { jwksRefreshMs: 100 });
  idp.keys = [a, b];
  const tokenA = await sign(a, { sub: 'u' });
  t.equal((await chat(gw, tokenA)).status, 200, 'key A while published');
  const { jwks } = await readyWhen(gw, (r) => r.jwks?.status === 'ok', 'first fetch');
  idp.keys = [b];
  await readyWhen(gw, (r) => r.jwks?.fetched_at !== jwks?.fetched_at, 'a refresh after the withdrawal');
  const res = await chat(gw, tokenA);
  t.equal(res.status, 401, 'the same token after the refresh that withdrew its key');
  t.equal((await chat(gw, await sign(b, { sub: 'u' }))).status, 200, 'key B still passes');
});

t.test('JWKS down: cached keys pass, other tokens get 503 with Retry-After, the provider is not hammered', async (t) => {
  const [a, later] = [await makeKey('RS256'), await makeKey('ES256')];
  const { idp, gw } = await setup(t, { jwksCooldownMs: 0 });
  idp.keys = [a];
  const tokenA = await sign(a, { sub: 'u' });
  t.equal((await chat(gw, tokenA)).status, 200, 'key A cached');

  idp.failing = true;
  idp.keys = [a, later];
  const tokenLater = await sign(later, { sub: 'u' });
  const res = await chat(gw, tokenLater);
  t.equal(res.status, 503, 'a key not cached while the JWKS cannot be fetched: 503');
  t.equal(errorOf(res.body).code, 'jwks_unavailable');
  t.match(errorOf(res.body).message, /signing keys cannot be fetched/);
  const retryAfter = Number(res.headers['retry-after']);
  t.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After: ${res.headers['retry-after']}`);
  t.notOk(res.body.includes(tokenLater.split('.')[2]!), 'no token echoed');

  const fetchesAfterFailure = idp.fetches;
  for (let i = 0; i < 5; i++) t.equal((await chat(gw, tokenLater)).status, 503);
  t.equal(idp.fetches, fetchesAfterFailure, 'retries within the back-off ask the provider nothing');
  t.equal((await chat(gw, tokenA)).status, 200, 'a token verified before still passes');
  t.equal((await chat(gw, await sign(a, { sub: 'someone-else' }))).status, 200, 'so does a new token signed with key A (cached)');
  t.equal((await chat(gw, STATIC_KEY)).status, 200, 'static keys are untouched');

  const messages = await send(`${gw.url}/v1/messages`, {
    body: { model: 'mock-1', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] },
    headers: { ...JSON_CT, 'x-api-key': tokenLater },
  });
  t.equal(messages.status, 503, 'the Messages API too');
  t.match(JSON.parse(messages.body), { type: 'error', error: { type: 'overloaded_error', details: { error_code: 'jwks_unavailable' } } }, "in Anthropic's shape");

  const ready = await readyz(gw);
  t.equal(ready.code, 200, '/readyz stays 200: every replica shares the provider');
  t.match(ready.body, { status: 'ready', jwks: { status: 'unavailable', keys_cached: 1, reason: /cannot fetch AUTH_JWKS_URL/ } }, '/readyz says why');
  t.ok(ready.body.jwks?.fetched_at, 'and when the set was last fetched');
});

t.test('the gateway starts with the JWKS down and recovers when it is back', async (t) => {
  const a = await makeKey('EdDSA');
  const idp = await new JwksServer().start();
  t.teardown(() => idp.close());
  idp.failing = true;
  idp.keys = [a];
  const gw = await startGateway({ mock: FAST_MOCK, ...jwksConfig(idp.url, { jwksRefreshMs: 150 }) });
  t.teardown(() => gw.close());
  t.pass('listening while the provider answers 503');
  const down = await readyWhen(gw, (r) => r.jwks?.status !== 'pending', 'the first fetch to fail');
  t.match(down, { status: 'ready', jwks: { status: 'unavailable', keys_cached: 0, fetched_at: null, reason: /cannot fetch/ } }, '/readyz: unavailable');

  const token = await sign(a, { sub: 'u' });
  const refused = await chat(gw, token);
  t.equal(refused.status, 503, 'a token before any key was fetched: 503');
  t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After');

  idp.failing = false;
  const up = await readyWhen(gw, (r) => r.jwks?.status === 'ok', 'a refresh after the provider came back');
  t.match(up, { jwks: { status: 'ok', keys_cached: 1 } }, 'the timer fetched it once it was back');
  t.equal((await chat(gw, token)).status, 200, 'and the token passes');
});

t.test('a JWKS URL nothing listens on: the start goes on, /readyz names the connection error', async (t) => {
  const url = await deadUrl();
  const gw = await startGateway({ mock: FAST_MOCK, ...jwksConfig(url) });
  t.teardown(() => gw.close());
  const token = await sign(await makeKey('RS256'), { sub: 'u' });
  const res = await chat(gw, token);
  t.equal(res.status, 503, '503, not a token let through');
  const ready = await readyz(gw);
  t.equal(ready.code, 200);
  t.match(ready.body, { jwks: { status: 'unavailable', reason: /ECONNREFUSED/ } });
  t.notOk(gw.logs.raw.includes(token.split('.')[2]!), 'the token is not logged');
  t.equal(gw.logs.lines.filter((l) => /cannot fetch AUTH_JWKS_URL/.test(String(l.msg))).length, 1, 'one warning for the outage, not one per request');
});
