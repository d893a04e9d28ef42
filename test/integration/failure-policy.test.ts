import { performance } from 'node:perf_hooks';
import t from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';
import { defaultConfig } from '../../src/config.js';
import { scrape, valueOf, waitForMetric } from '../helpers/metrics.js';

/** CONTRACT "Failure policy": what one long-lived gateway with a single upstream does when a few requests go bad. */

t.test('a few requests that make the only upstream fail never take the model offline for the others', async (t) => {
  const { mock, baseUrl } = await startMock();
  t.teardown(() => mock.close());
  // The defaults a new user runs with: breaker threshold 5, three attempts.
  const gw = await startGateway({ ...viaUpstream(baseUrl), failover: { ...defaultConfig().failover, backoffMs: 1, maxBackoffMs: 2 } });
  t.teardown(() => gw.close());
  for (let i = 0; i < 4; i++) {
    const bad = await post(`${gw.url}/v1/chat/completions`, chatBody('poison [mock:fail-before=500]', { stream: i % 2 === 0 }));
    t.equal(bad.status, 502, `bad request ${i + 1} gets the upstream's failure`);
  }
  t.equal(mock.requests.length, 8, 'each failing request cost exactly two upstream calls');
  const good = await post(`${gw.url}/v1/chat/completions`, chatBody('hello [mock:tokens=3]', { stream: true }));
  t.equal(good.status, 200, 'the next good request is served, not refused by an open circuit');
  t.equal(parseSse(good.body).events.at(-1)!.data, '[DONE]');
  const line = await gw.logs.waitForRequest((l) => l.status === 200);
  t.equal(line.attempts, undefined, 'one attempt, no skip');
  // Eight failures in a row opened the breaker: /metrics says so, and it still refused nobody.
  await waitForMetric(gw.app, 'gateway_upstream_retries_total', { upstream: 'default' }, 4);
  const samples = await scrape(gw.app);
  t.equal(valueOf(samples, 'gateway_upstream_retries_total', { upstream: 'default' }), 4, 'one retry per failing request');
  t.equal(valueOf(samples, 'gateway_upstream_circuit_state', { upstream: 'default' }), 0, 'closed again after the good request');
});

t.test('UPSTREAM_TIMEOUT_MS is one deadline for the whole first-byte wait, every attempt included', async (t) => {
  const { mock, baseUrl } = await startMock({ directives: '[mock:hang]' });
  t.teardown(() => mock.close());
  const gw = await startGateway({ ...viaUpstream(baseUrl), upstreamTimeoutMs: 500 });
  t.teardown(() => gw.close());
  for (const stream of [true, false]) {
    const started = performance.now();
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi', { stream }));
    const took = performance.now() - started;
    t.equal(res.status, 504, `stream=${stream}: 504`);
    t.ok(took >= 450 && took <= 750, `stream=${stream}: answered ${Math.round(took)} ms after the request (deadline 500 ms + 250)`);
  }
  t.ok(mock.requests.length <= 4, `at most two upstream calls per request (${mock.requests.length} for two)`);
  await mock.waitForAborts(mock.requests.length);
  t.pass('every timed-out upstream request was aborted');
});
