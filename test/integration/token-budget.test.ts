import { randomBytes } from 'node:crypto';
import { REDIS_URL, redisReachable } from '../helpers/redis.js';
import t from 'tap';
import { TokenBudget, MemoryBudgetStore, tokensUsed } from '../../src/relay/token-budget.js';
import { FAST_MOCK, chatBody, startGateway } from '../helpers/gateway.js';
import { post } from '../helpers/sse.js';


t.test('unit: the budget refuses a spent minute and forgives the next one', async (t) => {
  let now = 60_000 * 1000 + 5_000;
  const budget = new TokenBudget(100, new MemoryBudgetStore(), () => now);
  await budget.check('k');
  await budget.record('k', 100);
  const err = await budget.check('k').then(
    () => null,
    (e: { status: number; headers: Record<string, string> }) => e,
  );
  t.equal(err?.status, 429);
  t.equal(err?.headers['retry-after'], '55', 'seconds until the window turns');
  await budget.check('other');
  now += 55_000;
  await budget.check('k');
  t.equal(tokensUsed(null, 400, 7), 107, 'estimated from text without usage');
  t.equal(tokensUsed({ prompt_tokens: 3, completion_tokens: 4 }, 999, 999), 7);
});

t.test('TOKENS_PER_MINUTE counts usage per key, streamed or not', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK, tokensPerMinute: 60, gatewayApiKeys: ['key-a', 'key-b'] });
  t.teardown(() => gw.close());
  const a = { authorization: 'Bearer key-a' };
  // ~40 tokens each (prompt + 35 completion): the second one spends the minute.
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('one [mock:tokens=35]', { stream: true }), a)).status, 200);
  await gw.logs.waitForRequest((l) => l.status === 200);
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('two [mock:tokens=35]'), a)).status, 200);
  const refused = await post(`${gw.url}/v1/chat/completions`, chatBody('three', { stream: true }), a);
  t.equal(refused.status, 429);
  t.equal(JSON.parse(refused.body).error.code, 'token_budget_exceeded');
  t.ok(Number(refused.headers['retry-after']) >= 1);
  t.equal((await post(`${gw.url}/v1/streams`, chatBody('four'), a)).status, 429, 'the EventSource path counts too');
  t.equal((await post(`${gw.url}/v1/chat/completions`, chatBody('hi'), { authorization: 'Bearer key-b' })).status, 200, 'keys count apart');
});


const haveRedis = await redisReachable();
if (!haveRedis) t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the shared-budget test needs one (CI starts it)`);
t.test('two apps sharing Redis enforce one token budget', { skip: haveRedis ? false : `no Redis at ${REDIS_URL}` }, async (t) => {
  const redisNamespace = `test-${randomBytes(6).toString('hex')}:`;
  const cfg = { mock: FAST_MOCK, tokensPerMinute: 60, redisUrl: REDIS_URL, gatewayApiKeys: ['key-shared'] };
  const a = await startGateway(cfg, { redisNamespace });
  const b = await startGateway(cfg, { redisNamespace });
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const h = { authorization: 'Bearer key-shared' };
  t.equal((await post(`${a.url}/v1/chat/completions`, chatBody('x [mock:tokens=35]'), h)).status, 200);
  t.equal((await post(`${b.url}/v1/chat/completions`, chatBody('y [mock:tokens=35]'), h)).status, 200);
  // The second answer's tokens were recorded by b; both replicas now refuse.
  const ra = await post(`${a.url}/v1/chat/completions`, chatBody('z'), h);
  const rb = await post(`${b.url}/v1/chat/completions`, chatBody('z'), h);
  t.same([ra.status, rb.status], [429, 429]);
});
