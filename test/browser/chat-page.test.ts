import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
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

if (!hasChromium()) {
  t.comment(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` (.ci/run does) to run the browser tests`);
  t.plan(0, `no Chromium at ${CHROMIUM}`);
} else {
  let browser: Browser;
  t.before(async () => {
    browser = await launchBrowser();
  });
  t.teardown(() => browser?.close());

  async function open(t: Test, url: string): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    t.teardown(() => context.close());
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(url);
    await page.waitForSelector('#model[data-loaded="true"]', { state: 'attached' });
    return { page, errors };
  }

  async function gateway(t: Test, overrides: Parameters<typeof startGateway>[0] = {}): Promise<RunningGateway> {
    const gw = await startGateway({ mock: QUICK_MOCK, ...overrides });
    t.teardown(() => gw.close());
    return gw;
  }

  t.test('GET / streams an answer over EventSource and keeps the conversation', async (t) => {
    const gw = await gateway(t);
    const { page, errors } = await open(t, gw.url + '/');
    t.equal(await page.title(), 'sse-gateway · chat');
    t.same(await page.locator('#model option').allTextContents(), ['mock-1', 'mock-1-mini'], 'models from GET /v1/models');

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
    const { page, errors } = await open(t, `${site.origin}/?gateway=${encodeURIComponent(gw.url)}`);
    t.equal(await page.inputValue('#gateway'), gw.url);
    t.same(await page.locator('#model option').allTextContents(), ['mock-1'], 'no key yet: /v1/models is refused, mock-1 is the fallback');

    t.equal(await page.textContent('#status'), 'API key needed');
    t.ok(await page.isVisible('#key'), 'a 401 on /v1/models opens the settings');

    // The key goes to localStorage and unlocks the model list.
    await page.fill('#key', 'sk-browser-test');
    await page.press('#key', 'Tab');
    await page.waitForFunction(() => document.querySelectorAll('#model option').length === 2);
    t.equal(await page.evaluate(() => localStorage.getItem('sse-gateway.apiKey')), 'sk-browser-test');

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

    // A second page load from the same origin finds the key again.
    await page.reload();
    t.equal(await page.inputValue('#key'), 'sk-browser-test', 'API key kept in localStorage');
  });
}
