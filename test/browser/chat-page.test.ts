import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import type { IncomingMessage } from 'node:http';
import { FAST_MOCK, startGateway, type RunningGateway } from '../helpers/gateway.js';
import {
  CHROMIUM,
  ask,
  collectPageErrors,
  expectedAnswer,
  hasChromium,
  launchBrowser,
  outputPath,
  recordStatus,
  recordStreamGets,
  servePage,
  type Turn,
} from '../helpers/browser.js';

/** The chat page (GET /) in a real Chromium: native EventSource, its reconnects, CORS. */

const QUICK_MOCK = { tokensPerSecond: 200, firstTokenDelayMs: 0 };
const WAIT = 10_000;

/** Errors that mean the page is broken (CSP refusals, uncaught exceptions); network noise is not. */
const broken = (errors: string[]) => errors.filter((e) => /Content.Security.Policy|Uncaught|TypeError|SyntaxError/i.test(e));

/** Every request to /v1 the server received: `METHOD path`, plus ` +auth` when it carried a bearer. */
function recordV1(server: { on(event: 'request', fn: (req: IncomingMessage) => void): unknown }): string[] {
  const seen: string[] = [];
  server.on('request', (req) => {
    if (!req.url?.startsWith('/v1/')) return;
    seen.push(`${req.method} ${req.url.replace(/str_[^/?]+/, ':id')}${req.headers.authorization ? ' +auth' : ''}`);
  });
  return seen;
}

if (!hasChromium()) {
  t.comment(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` (.ci/run does) to run the browser tests`);
  t.plan(0, `no Chromium at ${CHROMIUM}`);
} else {
  let browser: Browser;
  t.before(async () => {
    browser = await launchBrowser();
  });
  t.teardown(() => browser?.close());

  /** `warnings`: console errors and warnings, failed requests included (Chromium logs each as an error). */
  async function open(t: Test, url: string): Promise<{ page: Page; errors: string[]; warnings: string[] }> {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    t.teardown(() => context.close());
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    const warnings: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') warnings.push(`${m.type()}: ${m.text()}`);
    });
    await page.goto(url);
    await page.waitForSelector('#model[data-loaded="true"]', { state: 'attached' });
    return { page, errors, warnings };
  }

  async function gateway(t: Test, overrides: Parameters<typeof startGateway>[0] = {}): Promise<RunningGateway> {
    const gw = await startGateway({ mock: QUICK_MOCK, ...overrides });
    t.teardown(() => gw.close());
    return gw;
  }

  t.test('GET / streams an answer over EventSource and keeps the conversation', async (t) => {
    const gw = await gateway(t);
    const { page, errors, warnings } = await open(t, gw.url + '/');
    t.equal(await page.title(), 'sse-gateway · chat');
    t.same(await page.locator('#model option').allTextContents(), ['mock-1', 'mock-1-mini'], 'models from GET /v1/models');
    t.notOk(await page.isVisible('#key'), 'no auth configured: no key field');

    const history: Turn[] = [{ role: 'user', content: 'hello [mock:tokens=30]' }];
    const first = await ask(page, history[0]!.content);
    t.equal(first, expectedAnswer(history), 'first answer is the mock’s, exactly');
    t.equal(first.split(' ').length, 30);

    // The second turn carries the first question and answer: the mock's text depends on all of it.
    history.push({ role: 'assistant', content: first }, { role: 'user', content: 'and <b>more</b> [mock:tokens=12]' });
    const second = await ask(page, history[2]!.content);
    t.equal(second, expectedAnswer(history), 'second answer follows the whole conversation');
    t.equal(await page.locator('[data-role="answer"]').count(), 2);
    t.equal(await page.locator('[data-role="user"]').nth(1).textContent(), 'and <b>more</b> [mock:tokens=12]', 'user text shown as text, not HTML');
    t.equal(await page.locator('#log b').count(), 0, 'no markup injected');
    t.equal(await page.textContent('#status'), 'done');
    t.equal(await page.textContent('#reconnects'), '0');
    t.same(broken(errors), [], 'no CSP violations or script errors');
    t.same(warnings, [], 'nothing in the console');

    const shot = outputPath('chat-page.png');
    await page.screenshot({ path: shot });
    t.comment(`screenshot: ${shot}`);
  });

  t.test('a dropped EventSource connection reconnects with Last-Event-ID and resumes without loss or repeat', async (t) => {
    const gw = await gateway(t);
    const gets = recordStreamGets(gw.app.server);
    const { page, errors } = await open(t, gw.url + '/');
    const statuses = await recordStatus(page);

    const prompt = 'resume me [mock:tokens=60] [mock:tps=20]';
    await page.fill('#prompt', prompt);
    await page.click('#send');
    // Some text shown, far from done (60 tokens at 20/s take 3 s): cut the server side.
    await page.waitForFunction(() => {
      const a = document.getElementById('answer');
      return a !== null && a.dataset.state === 'streaming' && (a.textContent ?? '').split(' ').length >= 5;
    });
    const shownAtDrop = await page.textContent('#answer');
    gw.app.server.closeAllConnections();

    await page.waitForFunction(() => document.getElementById('answer')?.dataset.state === 'done', undefined, { timeout: WAIT });
    const text = await page.textContent('#answer');
    t.equal(text, expectedAnswer([{ role: 'user', content: prompt }]), 'the full answer, exactly once');
    t.ok(text!.startsWith(shownAtDrop!), 'what was shown before the drop is kept, not rewritten');
    const reconnects = Number(await page.textContent('#reconnects'));
    t.ok(reconnects >= 1, `#reconnects = ${reconnects}`);
    const seen = await statuses();
    t.ok(seen.includes('reconnecting… (1)'), 'the page showed the reconnect');
    t.ok(seen.includes('resumed'), 'and that it resumed');

    const streamId = gets[0]?.streamId;
    const resumes = gets.filter((g) => g.streamId === streamId).slice(1);
    t.equal(gets[0]?.lastEventId, undefined, 'the first GET has no Last-Event-ID');
    t.ok(resumes.length >= 1, 'EventSource came back for the same stream by itself');
    t.ok(resumes.every((g) => /^\d+$/.test(g.lastEventId ?? '') && Number(g.lastEventId) >= 5), 'each reconnect sent a Last-Event-ID');
    t.comment(
      `reconnect observed: ${reconnects} on the page (#reconnects), ${gets.length} GETs of ${streamId} at the server, ` +
        `Last-Event-ID ${JSON.stringify(gets.map((g) => g.lastEventId ?? null))}; ` +
        `${shownAtDrop!.split(' ').length} words were shown at the drop`,
    );
    t.same(broken(errors), [], 'no CSP violations or script errors');
    await page.screenshot({ path: outputPath('chat-page-resumed.png') });
  });

  t.test('the gateway’s error event ends the turn with its message; Stop deletes the stream', async (t) => {
    const gw = await gateway(t);
    const { page, errors } = await open(t, gw.url + '/');

    await page.fill('#prompt', 'break [mock:tokens=20] [mock:fail-after=4]');
    await page.click('#send');
    await page.waitForFunction(() => document.getElementById('answer')?.dataset.state === 'error');
    t.match(await page.textContent('.meta:last-of-type'), /\S/, 'the error message is shown');
    t.equal(await page.textContent('#status'), 'error');
    t.equal(await page.textContent('#reconnects'), '0', 'an error event is not a reconnect');
    t.ok(await page.isEnabled('#send'), 'ready for the next turn');

    await page.fill('#prompt', 'long [mock:tokens=400] [mock:tps=50]');
    await page.click('#send');
    await page.waitForFunction(() => (document.getElementById('answer')?.textContent ?? '').length > 0);
    const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE');
    await page.click('#stop');
    t.equal(await page.getAttribute('#answer', 'data-state'), 'stopped');
    const res = await deleted;
    t.match(new URL(res.url()).pathname, /^\/v1\/streams\/str_/);
    t.equal(res.status(), 204, 'DELETE /v1/streams/:id stopped the generation');
    t.same(broken(errors), [], 'no CSP violations or script errors');
  });

  t.test('served from another origin with ?gateway=: CORS, the API key, and a resume across origins', async (t) => {
    const site = await servePage();
    t.teardown(() => site.close());
    const gw = await gateway(t, { corsOrigins: [site.origin], gatewayApiKeys: ['sk-browser-test'] });
    const gets = recordStreamGets(gw.app.server);
    const { page, errors, warnings } = await open(t, `${site.origin}/?gateway=${encodeURIComponent(gw.url)}`);
    t.equal(await page.inputValue('#gateway'), gw.url);
    t.same(await page.locator('#model option').allTextContents(), ['mock-1'], 'no key yet: /v1/models is refused, mock-1 is the fallback');

    // A copy served elsewhere cannot know what this gateway needs: its first answer (401) says so.
    t.equal(await page.textContent('#status'), 'API key needed');
    t.ok(await page.isVisible('#key'), 'a 401 on /v1/models shows the key field');
    t.equal(warnings.length, 1, 'Chromium logs the refused request in the console');
    t.match(warnings[0], /401/);

    // The key unlocks the model list and stays for the tab.
    await page.fill('#key', 'sk-browser-test');
    await page.press('#key', 'Enter');
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
    t.equal(await page.evaluate(() => sessionStorage.getItem('sse-gateway.apiKey')), 'sk-browser-test');

    const prompt = 'across origins [mock:tokens=40] [mock:tps=40]';
    await page.fill('#prompt', prompt);
    await page.click('#send');
    await page.waitForFunction(() => (document.getElementById('answer')?.textContent ?? '').split(' ').length >= 5);
    gw.app.server.closeAllConnections();
    await page.waitForFunction(() => document.getElementById('answer')?.dataset.state === 'done');
    t.equal(await page.textContent('#answer'), expectedAnswer([{ role: 'user', content: prompt }]));
    t.ok(Number(await page.textContent('#reconnects')) >= 1, 'reconnected across origins');
    t.ok(gets.length >= 2 && gets.every((g) => g.origin === site.origin), 'EventSource GETs were cross-origin');
    t.ok(gets.slice(1).every((g) => g.lastEventId !== undefined), 'with Last-Event-ID after the drop');
    t.same(broken(errors), [], 'no CSP violations or script errors');

    // A second page load in the same tab finds the key again.
    await page.reload();
    t.equal(await page.inputValue('#key'), 'sk-browser-test', 'API key kept in sessionStorage');
  });

  t.test('GATEWAY_API_KEYS set: the page asks for a key before calling /v1, says when it is wrong, streams once it is right', async (t) => {
    const key = 'sk-page-test';
    const gw = await gateway(t, { mock: FAST_MOCK, gatewayApiKeys: [key] });
    const v1 = recordV1(gw.app.server);
    const { page, errors, warnings } = await open(t, gw.url + '/');
    const focused = () => page.evaluate(() => document.activeElement?.id);

    t.same(warnings, [], 'nothing in the console on load');
    t.same(v1, [], 'no request to /v1 on load: the page knew a key is needed');
    t.ok(await page.isVisible('#key'), 'the key field is shown');
    t.equal(await page.textContent('label[for="key"]'), 'API key or token');
    t.equal(await page.textContent('#auth-note'), 'This gateway needs an API key or token.');
    t.equal(await page.textContent('#status'), 'API key needed');
    t.equal(await focused(), 'key', 'the key field has the focus');

    await page.fill('#prompt', 'no key yet');
    await page.click('#send');
    t.equal(await focused(), 'key', 'Send without a key points at the key field');
    t.equal(await page.locator('[data-role="user"]').count(), 0, 'and sends nothing');
    t.same(v1, []);

    await page.fill('#key', 'sk-wrong');
    await page.press('#key', 'Enter');
    await page.waitForSelector('#auth-note[data-kind="bad"]');
    t.equal(await page.textContent('#auth-note'), 'The gateway refused this key: Incorrect API key provided');
    t.equal(await page.textContent('#status'), 'API key refused');
    t.equal(await focused(), 'key', 'the key field has the focus again');
    t.equal(await page.evaluate(() => sessionStorage.getItem('sse-gateway.apiKey')), null, 'a refused key is not kept');
    t.same(v1, ['GET /v1/models +auth'], 'one request: the one the wrong key caused');
    t.ok(warnings.length <= 1 && warnings.every((w) => /401/.test(w)), `the console shows that request and nothing else: ${JSON.stringify(warnings)}`);
    await page.screenshot({ path: outputPath('chat-page-key-refused.png') });

    await page.fill('#key', key);
    await page.press('#key', 'Enter');
    await page.waitForSelector('#auth-note[data-kind="ok"]');
    t.same(await page.locator('#model option').allTextContents(), ['mock-1', 'mock-1-mini'], 'the key unlocks GET /v1/models');
    t.equal(await focused(), 'prompt', 'the prompt has the focus');
    t.equal(await page.evaluate(() => sessionStorage.getItem('sse-gateway.apiKey')), key, 'the key is kept for the tab');
    t.equal(await page.evaluate(() => localStorage.getItem('sse-gateway.apiKey')), null, 'and only for the tab');

    const prompt = 'with a key [mock:tokens=60]';
    t.equal(await ask(page, prompt), expectedAnswer([{ role: 'user', content: prompt }]), 'the full answer streams in');
    t.same(v1.slice(1, 4), ['GET /v1/models +auth', 'POST /v1/streams +auth', 'GET /v1/streams/:id'], 'the key on /v1/models and POST; the stream read without it');
    const before = warnings.length;
    t.same(broken(errors), [], 'no CSP violations or script errors');

    await page.reload();
    await page.waitForSelector('#auth-note[data-kind="ok"]');
    t.equal(await page.inputValue('#key'), key, 'after a reload the key is still there');
    t.same(await page.locator('#model option').allTextContents(), ['mock-1', 'mock-1-mini'], 'and used');
    t.same(warnings.slice(before), [], 'nothing in the console after the reload');
  });
}
