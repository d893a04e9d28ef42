import { resolve } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, defaultConfig, loadConfig, type Config } from '../../src/config.js';
import { FAST_MOCK, chatBody, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { post } from '../helpers/sse.js';

const DEFAULT_FILE = resolve(import.meta.dirname, '../../config/default.json');

async function started(t: Test, pressure: Partial<Config['pressure']>): Promise<RunningGateway> {
  const gw = await startGateway({ mock: FAST_MOCK, pressure: { ...defaultConfig().pressure, ...pressure } });
  t.teardown(() => gw.close());
  return gw;
}

/** Resolves once the plugin's last sample says "under pressure"; bounded, so a broken sampler fails instead of hanging. */
async function untilUnderPressure(gw: RunningGateway, tries = 200): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (gw.app.isUnderPressure()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

t.test('config: pressure defaults, the file, and MAX_EVENT_LOOP_DELAY_MS winning over it', async (t) => {
  const base = loadConfig({ CONFIG_FILE: DEFAULT_FILE });
  t.strictSame(base.pressure, {
    maxEventLoopDelayMs: 1000,
    maxEventLoopUtilization: 0,
    maxHeapUsedBytes: 0,
    maxRssBytes: 0,
    sampleIntervalMs: 1000,
    retryAfterSeconds: 10,
  });
  t.equal(loadConfig({ CONFIG_FILE: DEFAULT_FILE, MAX_EVENT_LOOP_DELAY_MS: '250' }).pressure.maxEventLoopDelayMs, 250);
  t.equal(loadConfig({ CONFIG_FILE: DEFAULT_FILE, MAX_EVENT_LOOP_DELAY_MS: '0' }).pressure.maxEventLoopDelayMs, 0, '0 turns the check off');
  t.throws(() => loadConfig({ CONFIG_FILE: DEFAULT_FILE, MAX_EVENT_LOOP_DELAY_MS: 'soon' }), new ConfigError('MAX_EVENT_LOOP_DELAY_MS: must be a number (got "soon")'));
  t.throws(() => loadConfig({ CONFIG_FILE: DEFAULT_FILE, MAX_EVENT_LOOP_DELAY_MS: '-1' }), /^MAX_EVENT_LOOP_DELAY_MS: must be >= 0/);
});

t.test('over a memory threshold: 503 overloaded with Retry-After on /v1, while probes and /metrics answer', async (t) => {
  // Any heap is over 1 byte: under pressure from the first sample on, deterministically.
  const gw = await started(t, { maxHeapUsedBytes: 1, sampleIntervalMs: 10, retryAfterSeconds: 7 });
  t.ok(await untilUnderPressure(gw), 'the plugin reports pressure');

  const models = await gw.app.inject({ method: 'GET', url: '/v1/models' });
  t.equal(models.statusCode, 503);
  t.equal(models.headers['retry-after'], '7');
  t.strictSame(models.json(), {
    error: { message: 'The gateway is overloaded; retry shortly', type: 'service_unavailable_error', code: 'overloaded', param: null },
  });
  const chat = await post(`${gw.url}/v1/chat/completions`, chatBody('hi', { stream: true }));
  t.equal(chat.status, 503, 'new streams are shed too');
  t.equal(JSON.parse(chat.body).error.code, 'overloaded');
  const line = await gw.logs.waitForRequest((l) => l.url === '/v1/chat/completions');
  t.equal(line.error_code, 'overloaded', 'the request line names why');
  t.equal(line.model, null, 'shed before the body was even looked at');

  for (const url of ['/healthz', '/readyz', '/metrics']) {
    const res = await gw.app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, `${url} is never shed`);
  }
  const unknown = await gw.app.inject({ method: 'GET', url: '/nope' });
  t.equal(unknown.statusCode, 503, 'unmatched routes are shed like any other');
});

t.test('a blocked event loop over maxEventLoopDelayMs sheds /v1/models but not /healthz', async (t) => {
  // The plugin samples the mean loop delay; 100 ms of blocking against a 1 ms limit marks the next sample.
  // The state lasts one sample (200 ms); should a slow machine let it lapse mid-check, block again (bounded).
  const gw = await started(t, { maxEventLoopDelayMs: 1, sampleIntervalMs: 200 });
  t.equal((await gw.app.inject({ method: 'GET', url: '/v1/models' })).statusCode, 200, 'not shed before the loop is blocked');
  let shown = false;
  for (let round = 0; round < 5 && !shown; round++) {
    busy(100);
    if (!(await untilUnderPressure(gw, 50))) continue;
    const models = await gw.app.inject({ method: 'GET', url: '/v1/models' });
    const health = await gw.app.inject({ method: 'GET', url: '/healthz' });
    if (!gw.app.isUnderPressure()) continue;
    t.equal(models.statusCode, 503, '/v1/models is shed');
    t.equal(models.headers['retry-after'], '10');
    t.equal(models.json().error.code, 'overloaded');
    t.equal(health.statusCode, 200, '/healthz is not');
    shown = true;
  }
  t.ok(shown, 'pressure was seen and requests shed within 5 rounds');
});

t.test('the defaults shed nothing in a normal test run', async (t) => {
  const gw = await startGateway({ mock: FAST_MOCK });
  t.teardown(() => gw.close());
  t.equal(gw.app.isUnderPressure(), false);
  t.equal((await gw.app.inject({ method: 'GET', url: '/v1/models' })).statusCode, 200);
  t.equal((await gw.app.inject({ method: 'GET', url: '/status' })).statusCode, 404, 'exposeStatusRoute is off: no /status route');
});
