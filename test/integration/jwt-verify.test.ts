import t, { type Test } from 'tap';
import { exportSPKI } from 'jose';
import { userIdOf } from '../../src/auth/identity.js';
import { keyIdOf } from '../../src/plugins/auth.js';
import { FAST_MOCK, chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { STACK_TRACE, openAIError, send, waitUntil } from '../helpers/http.js';
import { JwksServer, bearer, hmacToken, jwksConfig, makeKey, sign, unsignedToken, type TestKey } from '../helpers/jwks.js';
import { closeSession, connectH2, h2Get } from '../helpers/http2.js';
import { parseSse } from '../helpers/sse.js';

/**
 * Browser auth (CONTRACT.md "Browser auth (JWT)"): which tokens pass, which
 * are refused and how the refusal reads. Every refusal is a 401 that names
 * the failed check and never carries the token back, in the body or the log.
 */

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'sse-gateway';
const STATIC_KEY = 'sk-server-side-key';
const JSON_CT = { 'content-type': 'application/json' };

let idp: JwksServer;
const keys: Record<string, TestKey> = {};
let gw: RunningGateway;

t.before(async () => {
  idp = await new JwksServer().start();
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) keys[alg] = await makeKey(alg);
  idp.keys = Object.values(keys);
  gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [STATIC_KEY], ...jwksConfig(idp.url, { issuer: ISSUER, audience: [AUDIENCE] }) });
});
t.teardown(async () => {
  await gw?.close();
  await idp?.close();
});

const good = { issuer: ISSUER, audience: AUDIENCE };
const chat = (headers: Record<string, string>, body = chatBody('hi [mock:tokens=3]')) =>
  send(`${gw.url}/v1/chat/completions`, { body, headers: { ...JSON_CT, ...headers } });

/** Every token a test presented, to grep responses and logs for. */
const presented: string[] = [];

/** The parts of a token (header, claims, signature) found in `text`. */
const partsIn = (text: string, token: string) => token.split('.').filter((part) => part.length >= 8 && text.includes(part));

function assertRefused(t: Test, res: { status: number; body: string }, token: string, message: RegExp): void {
  presented.push(token);
  t.equal(res.status, 401, 'status 401');
  const err = openAIError(res.body);
  if (typeof err === 'string') return void t.fail(err);
  t.equal(err.error.code, 'unauthorized');
  t.equal(err.error.type, 'authentication_error');
  t.match(err.error.message, message, `message says why: ${err.error.message}`);
  t.same(partsIn(res.body, token), [], 'neither the token nor any part of it is echoed');
  t.notMatch(res.body, STACK_TRACE, 'no stack trace');
}

t.test('RS256, ES256 and EdDSA tokens from the JWKS are accepted, on every route that takes a key', async (t) => {
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const token = await sign(keys[alg]!, { sub: `user-${alg}` }, good);
    presented.push(token);
    const res = await chat(bearer(token));
    t.equal(res.status, 200, `${alg}: 200`);
    t.equal((JSON.parse(res.body) as { object: string }).object, 'chat.completion');
  }
  const token = await sign(keys.ES256!, { sub: 'user-stream' }, good);
  presented.push(token);
  const streamed = await chat(bearer(token), chatBody('hi [mock:tokens=3]', { stream: true }));
  t.equal(parseSse(streamed.body).events.at(-1)?.data, '[DONE]', 'streamed with a JWT');
  const models = await send(`${gw.url}/v1/models`, { headers: bearer(token) });
  t.equal(models.status, 200, 'GET /v1/models with a JWT');
  const viaApiKey = await send(`${gw.url}/v1/models`, { headers: { 'x-api-key': token } });
  t.equal(viaApiKey.status, 200, 'x-api-key: <JWT> (how Anthropic clients send it)');
  const noAuth = await send(`${gw.url}/v1/models`);
  t.equal(noAuth.status, 401, 'still nothing without a credential');
  t.match(noAuth.body, /key or JWT/);
});

t.test('a static key keeps working beside JWTs; a bearer that is neither is refused', async (t) => {
  const res = await chat(bearer(STATIC_KEY));
  t.equal(res.status, 200, 'GATEWAY_API_KEYS key → 200');
  const wrong = await chat(bearer('sk-not-a-key'));
  assertRefused(t, wrong, 'sk-not-a-key', /not a key of this gateway, and not a JWT/);
});

t.test('each bad token gets a 401 that says what is wrong', async (t) => {
  const rs = keys.RS256!;
  const stranger = await makeKey('RS256', 'not-published');
  const cases: [string, Promise<string> | string, RegExp][] = [
    ['expired', sign(rs, { sub: 'u' }, { ...good, expiresIn: -120 }), /expired/],
    ['not yet valid', sign(rs, { sub: 'u' }, { ...good, notBefore: 120 }), /not valid yet/],
    ['wrong issuer', sign(rs, { sub: 'u' }, { ...good, issuer: 'https://evil.test/' }), /wrong issuer/],
    ['wrong audience', sign(rs, { sub: 'u' }, { ...good, audience: 'another-api' }), /wrong audience/],
    ['unknown key', sign(stranger, { sub: 'u' }, good), /unknown kid/],
    ['a key of another provider under a published kid', sign({ ...stranger, kid: rs.kid }, { sub: 'u' }, good), /signature does not verify/],
    ['alg: none', unsignedToken({ sub: 'u', iss: ISSUER, aud: AUDIENCE }), /algorithm not accepted/],
    [
      'HS256 signed with the public key (algorithm confusion)',
      exportSPKI(rs.publicKey).then((pem) => hmacToken({ kid: rs.kid }, { sub: 'u', iss: ISSUER, aud: AUDIENCE }, new TextEncoder().encode(pem))),
      /algorithm not accepted/,
    ],
    ['truncated', sign(rs, { sub: 'u' }, good).then((tok) => tok.slice(0, -12)), /signature does not verify/],
    ['cut before its signature', sign(rs, { sub: 'u' }, good).then((tok) => tok.slice(0, tok.lastIndexOf('.'))), /not a JWT/],
    ['without sub', sign(rs, {}, good), /no sub claim/],
    ['without exp', sign(rs, { sub: 'u' }, good).then(() => noExp(rs)), /no exp claim/],
    ['a models claim that is not a list of ids', sign(rs, { sub: 'u', models: 'mock-1' }, good), /models claim/],
  ];
  for (const [name, pending, message] of cases) {
    const token = await pending;
    await t.test(name, async (t) => assertRefused(t, await chat(bearer(token)), token, message));
  }
});

/** A token signed properly but with no `exp`: it would never expire. */
async function noExp(key: TestKey): Promise<string> {
  const { SignJWT } = await import('jose');
  return new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: key.alg, kid: key.kid }).setIssuer(ISSUER).setAudience(AUDIENCE).sign(key.privateKey);
}

t.test('30 s of leeway on exp and nbf', async (t) => {
  const rs = keys.RS256!;
  const justExpired = await sign(rs, { sub: 'u' }, { ...good, expiresIn: -10 });
  const almostValid = await sign(rs, { sub: 'u' }, { ...good, notBefore: 10 });
  presented.push(justExpired, almostValid);
  t.equal((await chat(bearer(justExpired))).status, 200, 'expired 10 s ago: still accepted');
  t.equal((await chat(bearer(almostValid))).status, 200, 'valid in 10 s: already accepted');
});

t.test('logs name a user only by a hash of sub; no token reaches a log line', async (t) => {
  const sub = 'auth0|alice-5f1e2d';
  const token = await sign(keys.EdDSA!, { sub }, good);
  presented.push(token);
  t.equal((await chat(bearer(token))).status, 200);
  const line = await gw.logs.waitForRequest((l) => l.key_id === userIdOf(sub));
  t.match(line.key_id, /^sub_[0-9a-f]{16}$/, `key_id ${String(line.key_id)}`);
  t.ok(await gw.logs.waitForRequest((l) => l.key_id === keyIdOf(STATIC_KEY)), 'static keys keep their key_ id');
  t.notOk(gw.logs.raw.includes(sub), 'the raw sub is never logged');
  await waitUntil(() => gw.logs.requests().length >= 20, 'request lines');
  t.same(presented.flatMap((token) => partsIn(gw.logs.raw, token)), [], `none of the ${presented.length} tokens presented (nor a part of one) is in the log`);
  t.notOk(gw.logs.raw.includes(STATIC_KEY), 'nor the static key');
});

t.test('AUTH_JWT_SECRET: HS256 tokens signed with the secret pass; asymmetric ones and other secrets do not', async (t) => {
  const secret = new TextEncoder().encode('a-shared-secret-of-at-least-32-characters!');
  const hs = await startGateway({ mock: FAST_MOCK, jwt: { ...jwksConfig('http://unused').jwt, jwksUrl: undefined, secret: 'a-shared-secret-of-at-least-32-characters!' } });
  t.teardown(() => hs.close());
  const post = (token: string) => send(`${hs.url}/v1/chat/completions`, { body: chatBody('hi [mock:tokens=2]'), headers: { ...JSON_CT, ...bearer(token) } });

  const ok = await hmacToken({}, { sub: 'hs-user' }, secret);
  t.equal((await post(ok)).status, 200, 'HS256 with the secret → 200');
  const other = await hmacToken({}, { sub: 'hs-user' }, new TextEncoder().encode('another-secret-of-at-least-32-characters'));
  assertRefused(t, await post(other), other, /signature does not verify/);
  const rs = await sign(keys.RS256!, { sub: 'hs-user' });
  assertRefused(t, await post(rs), rs, /algorithm not accepted \(accepted: HS256\)/);
  const none = unsignedToken({ sub: 'hs-user' });
  assertRefused(t, await post(none), none, /algorithm not accepted/);
  const ready = await send(`${hs.url}/readyz`);
  t.same(JSON.parse(ready.body), { status: 'ready' }, 'no key set to report in HS256 mode');
});

t.test('over HTTP/2 (h2c) alike', async (t) => {
  const h2 = await startGateway({ mock: FAST_MOCK, http2Cleartext: true, ...jwksConfig(idp.url, { issuer: ISSUER, audience: [AUDIENCE] }) });
  const session = await connectH2(h2.url);
  t.teardown(async () => {
    await closeSession(session);
    await h2.close();
  });
  const token = await sign(keys.ES256!, { sub: 'h2-user', models: ['mock-1-mini'] }, good);
  const models = h2Get(session, '/v1/models', bearer(token));
  t.same((JSON.parse(await models.done(5000)) as { data: { id: string }[] }).data.map((m) => m.id), ['mock-1-mini'], 'a JWT over h2c, its models claim applied');
  const expired = await sign(keys.ES256!, { sub: 'h2-user' }, { ...good, expiresIn: -120 });
  const refused = h2Get(session, '/v1/models', { 'x-api-key': expired });
  t.match(await refused.done(5000), /expired/);
  t.equal(refused.status, 401);
});
