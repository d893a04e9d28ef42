import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { CHROMIUM, hasChromium, launchBrowser } from '../helpers/browser.js';
import { hasOpenssl, makeCert } from '../helpers/http2.js';
import type { Config } from '../../src/config.js';

/**
 * Why HTTP/2: a browser opens at most 6 HTTP/1.1 connections per origin and
 * every open EventSource holds one, so a 7th stream waits. Over HTTP/2 all
 * streams share one connection. Ten EventSources from one page, both ways.
 */

const WAIT = 10_000;

interface PageStreams {
  urls: string[];
  msgs: number[];
  done: boolean[];
  errors: number;
  sources: EventSource[];
}

/** Starts one generation per prompt (POST /v1/streams), then opens one EventSource per generation. */
async function openStreams(page: Page, prompts: string[]): Promise<void> {
  await page.evaluate(async (prompts) => {
    const state: PageStreams = { urls: [], msgs: prompts.map(() => 0), done: prompts.map(() => false), errors: 0, sources: [] };
    (window as unknown as { sse: PageStreams }).sse = state;
    // All POSTs first: in the HTTP/1.1 run they must not queue behind open streams.
    const urls = await Promise.all(
      prompts.map(async (content) => {
        const res = await fetch('/v1/streams', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content }] }),
        });
        return ((await res.json()) as { url: string }).url;
      }),
    );
    state.urls = urls;
    urls.forEach((url, i) => {
      const es = new EventSource(url);
      state.sources.push(es);
      es.onmessage = () => state.msgs[i]!++;
      es.addEventListener('done', () => {
        state.done[i] = true;
        es.close();
      });
      es.onerror = () => state.errors++;
    });
  }, prompts);
}

const snapshot = (page: Page) =>
  page.evaluate(() => {
    const s = (window as unknown as { sse: PageStreams }).sse;
    return { msgs: [...s.msgs], done: [...s.done], errors: s.errors };
  });

/** Closes every EventSource, then deletes the generations (Stop in the chat page): none runs on without a reader. */
const stopAll = (page: Page) =>
  page.evaluate(async () => {
    const s = (window as unknown as { sse: PageStreams }).sse;
    s.sources.forEach((es) => es.close());
    await Promise.all(s.urls.map((url) => fetch(url, { method: 'DELETE' })));
  });

const protocol = (page: Page) => page.evaluate(() => (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).nextHopProtocol);

if (!hasChromium()) {
  t.comment(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` to run the browser tests`);
  t.plan(0, `no Chromium at ${CHROMIUM}`);
} else if (!hasOpenssl()) {
  t.comment('openssl not found: install it (apt-get install -y openssl) to run the HTTP/2 tests');
  t.plan(0, 'no openssl to make a test certificate');
} else {
  const cert = makeCert();
  let browser: Browser;
  t.before(async () => {
    browser = await launchBrowser(['--ignore-certificate-errors']);
  });
  t.teardown(async () => {
    await browser?.close();
    cert.remove();
  });

  /** The gateway, and a page it served; `connections` counts TCP connections the browser made to it. */
  async function open(t: Test, overrides: Partial<Config>): Promise<{ gw: RunningGateway; page: Page; connections: () => number }> {
    const gw = await startGateway({ rateLimit: { max: 1000, windowMs: 60_000 }, maxConcurrentStreams: 20, logLevel: 'info', ...overrides });
    t.teardown(() => gw.close());
    let connections = 0;
    gw.app.server.on('connection', () => connections++);
    const context = await browser.newContext();
    t.teardown(() => context.close());
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    // The gateway serves the page itself (GET /): its streams are same-origin, on the gateway's connection(s).
    await page.goto(gw.url + '/');
    return { gw, page, connections: () => connections };
  }

  t.test('HTTPS + HTTP/2: ten EventSources from one page all stream at once', async (t) => {
    const { page, connections } = await open(t, { tls: { cert: cert.cert, key: cert.key } });
    t.equal(await protocol(page), 'h2', 'the page came over HTTP/2');

    await openStreams(page, Array.from({ length: 10 }, (_, i) => `h2 stream ${i} [mock:tokens=40] [mock:tps=10]`));
    await page.waitForFunction(() => (window as unknown as { sse: PageStreams }).sse.msgs.every((n) => n >= 2), undefined, { timeout: WAIT });
    const during = await snapshot(page);
    t.ok(during.msgs.every((n) => n >= 2), `all 10 streams received messages: ${during.msgs.join(', ')}`);
    t.same(during.done, Array(10).fill(false), '…while none of them had finished (40 tokens at 10/s take 4 s)');

    await page.waitForFunction(() => (window as unknown as { sse: PageStreams }).sse.done.every(Boolean), undefined, { timeout: 15_000 });
    const end = await snapshot(page);
    t.same(end.msgs, Array(10).fill(42), 'each got its whole answer: role chunk, 40 tokens, finish chunk');
    t.equal(end.errors, 0, 'no EventSource errors or reconnects');
    t.equal(connections(), 1, 'the page, its fetches and its ten streams: one connection');
  });

  t.test('control, plain HTTP/1.1: the 7th to 10th EventSource wait for a free connection', async (t) => {
    const { page, connections } = await open(t, {});
    t.equal(await protocol(page), 'http/1.1', 'the page came over HTTP/1.1');

    // 1–6 long (never finish during the check), 7–10 short.
    const prompts = Array.from({ length: 10 }, (_, i) => (i < 6 ? `long ${i} [mock:tokens=400] [mock:tps=10]` : `short ${i} [mock:tokens=40] [mock:tps=10]`));
    await openStreams(page, prompts);
    await page.waitForFunction(() => (window as unknown as { sse: PageStreams }).sse.msgs.slice(0, 6).every((n) => n >= 3), undefined, { timeout: WAIT });
    const during = await snapshot(page);
    t.ok(during.msgs.slice(0, 6).every((n) => n >= 3), `streams 1–6 each got several messages: ${during.msgs.slice(0, 6).join(', ')}`);
    t.same(during.msgs.slice(6), [0, 0, 0, 0], 'streams 7–10 got nothing meanwhile: all 6 connections were taken');
    t.ok(connections() <= 6, `the browser opened ${connections()} connections (6 at most)`);

    // They were queued, not broken: closing four of the long streams frees four connections.
    await page.evaluate(() => (window as unknown as { sse: PageStreams }).sse.sources.slice(0, 4).forEach((es) => es.close()));
    await page.waitForFunction(() => (window as unknown as { sse: PageStreams }).sse.msgs.slice(6).every((n) => n >= 1), undefined, { timeout: WAIT });
    t.pass('streams 7–10 started once connections were free');
    await stopAll(page);
  });
}
