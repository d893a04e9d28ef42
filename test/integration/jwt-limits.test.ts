import t, { type Test } from 'tap';
import { userIdOf } from '../../src/auth/identity.js';
import type { Config } from '../../src/config.js';
import { FAST_MOCK, chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { openAIError, send, waitUntil } from '../helpers/http.js';
import { JwksServer, bearer, jwksConfig, makeKey, sign, type TestKey } from '../helpers/jwks.js';
import { answerText, getStream, openStream, type StreamHandle } from '../helpers/sse.js';
import { planCompletion } from '../../src/upstream/mock/model.js';

/**
 * With JWTs, limits and ownership count per `sub`: each signed-in user has
 * their own request rate, open streams and token budget, and only they can
 * stop what they started. A stream outlives the token that started it.
 */

const JSON_CT = { 'content-type': 'application/json' };
const STATIC_KEY = 'sk-limits-static';

let idp: JwksServer;
let key: TestKey;
t.before(async () => {
  idp = await new JwksServer().start();
  key = await makeKey('ES256');
  idp.keys = [key];
});
t.teardown(() => idp?.close());

async function started(t: Test, overrides: Partial<Config> = {}): Promise<RunningGateway> {
  const gw = await startGateway({ mock: FAST_MOCK, gatewayApiKeys: [STATIC_KEY], ...jwksConfig(idp.url), ...overrides });
  t.teardown(() => gw.close());
  return gw;
}

const tokenOf = (sub: string, opts: Parameters<typeof sign>[2] = {}) => sign(key, { sub }, opts);
const codeOf = (body: string) => {
  const e = openAIError(body);
  return typeof e === 'string' ? e : e.error.code;
};

t.test('request rate per sub: a fresh token of the same user does not reset it; another user has their own', async (t) => {
  const gw = await started(t, { rateLimit: { max: 3, windowMs: 60_000 } });
  const models = async (token: string) => send(`${gw.url}/v1/models`, { headers: bearer(token) });
  const alice = await tokenOf('alice');
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await models(alice)).status);
  t.same(statuses, [200, 200, 200], 'alice: three requests pass');
  const over = await models(alice);
  t.equal(over.status, 429, 'the fourth is refused');
  t.equal(codeOf(over.body), 'rate_limit_exceeded');
  t.ok(over.headers['retry-after'], 'with Retry-After');

  const aliceAgain = await tokenOf('alice', { expiresIn: 900 });
  t.not(aliceAgain, alice, 'a new token for alice');
  t.equal((await models(aliceAgain)).status, 429, 'counts against the same sub');
  const bob = await models(await tokenOf('bob'));
  t.equal(bob.status, 200, 'bob is counted apart');
  t.equal(bob.headers['x-ratelimit-remaining'], '2');
  t.equal((await models(STATIC_KEY)).status, 200, 'and so is the static key');
});

t.test('open streams per sub', async (t) => {
  const gw = await started(t, { maxConcurrentStreams: 1 });
  const open: StreamHandle[] = [];
  t.teardown(() => open.forEach((h) => h.destroy()));
  const hold = async (token: string) => {
    const h = await openStream(`${gw.url}/v1/chat/completions`, chatBody('hold [mock:hang-after=1]', { stream: true }), bearer(token));
    open.push(h);
    return h;
  };
  const [alice, bob] = [await tokenOf('alice'), await tokenOf('bob')];
  const a1 = await hold(alice);
  await a1.until((h) => h.events.length >= 1);
  t.equal(gw.slots.count(userIdOf('alice')), 1, "alice's stream holds a slot under her sub's id");

  const a2 = await hold(await tokenOf('alice', { expiresIn: 300 }));
  t.equal(a2.res.statusCode, 429, 'a second stream for alice, with another of her tokens: 429');
  t.equal(codeOf(await a2.done()), 'too_many_streams');

  const b1 = await hold(bob);
  t.equal(b1.res.statusCode, 200, 'bob streams');
  await b1.until((h) => h.events.length >= 1);
  t.equal(gw.slots.count(userIdOf('bob')), 1);
  a1.destroy();
  b1.destroy();
  await waitUntil(() => gw.slots.total === 0, 'slots released');
});

t.test('token budget per sub', async (t) => {
  const gw = await started(t, { tokensPerMinute: 30 });
  const chat = async (token: string, tokens: number) =>
    send(`${gw.url}/v1/chat/completions`, { body: chatBody(`spend [mock:tokens=${tokens}]`), headers: { ...JSON_CT, ...bearer(token) } });
  const [alice, bob] = [await tokenOf('alice'), await tokenOf('bob')];
  t.equal((await chat(alice, 40)).status, 200, 'alice spends past her budget');
  const refused = await chat(alice, 1);
  t.equal(refused.status, 429);
  t.equal(codeOf(refused.body), 'token_budget_exceeded', 'then her next request is refused');
  t.equal((await chat(bob, 1)).status, 200, "bob's budget is his own");
});

t.test('only the sub (or key) that started a stream or a response can stop it', async (t) => {
  const gw = await started(t);
  const [alice, bob] = [await tokenOf('alice'), await tokenOf('bob')];
  const created = await send(`${gw.url}/v1/streams`, { body: chatBody('long [mock:hang-after=2]'), headers: { ...JSON_CT, ...bearer(alice) } });
  t.equal(created.status, 201);
  const { id } = JSON.parse(created.body) as { id: string };
  const del = (token: string) => send(`${gw.url}/v1/streams/${id}`, { method: 'DELETE', headers: bearer(token) });

  const byBob = await del(bob);
  t.equal(byBob.status, 403, 'bob cannot DELETE alice’s stream');
  t.equal(codeOf(byBob.body), 'forbidden');
  t.equal((await del(STATIC_KEY)).status, 403, 'nor can a static key');
  t.equal((await del(await tokenOf('alice', { expiresIn: 120 }))).status, 204, 'alice can, with any of her tokens');

  const resp = await send(`${gw.url}/v1/responses`, {
    body: { model: 'mock-1', input: 'long [mock:hang-after=2]', background: true },
    headers: { ...JSON_CT, ...bearer(alice) },
  });
  t.equal(resp.status, 200, 'a background response for alice');
  const respId = (JSON.parse(resp.body) as { id: string }).id;
  const cancel = (token: string) => send(`${gw.url}/v1/responses/${respId}/cancel`, { method: 'POST', headers: bearer(token) });
  const bobCancel = await cancel(bob);
  t.equal(bobCancel.status, 403, 'bob cannot cancel alice’s response');
  const aliceCancel = await cancel(alice);
  t.equal(aliceCancel.status, 200, 'alice can');
  t.equal((JSON.parse(aliceCancel.body) as { status: string }).status, 'cancelled');
});

t.test('a stream started with a valid token runs to its end after the token expired; reading needs none', async (t) => {
  const gw = await started(t);
  // Expired 28 s ago: valid for about 2 more seconds thanks to the 30 s leeway. The answer takes 4 s.
  const token = await tokenOf('carol', { expiresIn: -28 });
  const created = await send(`${gw.url}/v1/streams`, { body: chatBody('slow [mock:tokens=40] [mock:tps=10]'), headers: { ...JSON_CT, ...bearer(token) } });
  t.equal(created.status, 201, 'started while the token was valid');
  const { url } = JSON.parse(created.body) as { url: string };
  const reader = await getStream(`${gw.url}${url}`);
  t.equal(reader.res.statusCode, 200, 'GET /v1/streams/:id with no credential (EventSource sends none)');

  // Bounded: the token lapses within ~2 s.
  let refused = 0;
  for (let i = 0; i < 60 && refused === 0; i++) {
    if ((await send(`${gw.url}/v1/models`, { headers: bearer(token) })).status === 401) refused = 1;
    else await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(refused, 1, 'the token has expired since');
  const ended = reader.events.at(-1);
  t.not(ended?.event, 'done', 'while the stream was still running');
  await reader.done();
  const last = reader.events.at(-1)!;
  t.equal(last.event, 'done', 'the stream ran to its end');
  const prompt = 'slow [mock:tokens=40] [mock:tps=10]';
  t.equal(answerText(reader.events), planCompletion({ model: 'mock-1', messages: [{ role: 'user', content: prompt }] }, FAST_MOCK).content, 'the whole answer');
  t.equal((await send(`${gw.url}/v1/streams/${url.split('/').at(-1)}`, { method: 'DELETE', headers: bearer(token) })).status, 401, 'stopping it needs a valid token');
});
