import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { CHROMIUM, ask, collectPageErrors, expectedAnswer, hasChromium, launchBrowser, outputPath } from '../helpers/browser.js';
import { JwksServer, jwksConfig, makeKey, sign, type TestKey } from '../helpers/jwks.js';

/**
 * Browser auth in a real Chromium: a page on another origin that holds only
 * a JWT from the (test) identity provider streams an answer with fetch +
 * EventSource, and the gateway's chat page takes a token in its key field.
 * No static key exists anywhere in these gateways.
 */

const QUICK_MOCK = { tokensPerSecond: 200, firstTokenDelayMs: 0 };
const broken = (errors: string[]) => errors.filter((e) => /Content.Security.Policy|Uncaught|TypeError|SyntaxError/i.test(e));

/**
 * The app's page: `auth.getToken()` stands in for the provider SDK's call
 * (Auth0's getAccessTokenSilently, Clerk's session.getToken…); the rest is
 * the README's "Browser auth" example as it stands.
 */
const appPage = (gateway: string, token: string) => `<!doctype html>
<meta charset="utf-8"><title>app</title>
<pre id="out" data-state="idle"></pre>
<script>
const auth = { getToken: async () => ${JSON.stringify(token)} };
const GATEWAY = ${JSON.stringify(gateway)};
const out = document.getElementById('out');
async function ask(prompt) {
  const token = await auth.getToken();
  const res = await fetch(GATEWAY + '/v1/streams', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
    body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: prompt }] }),
  });
  if (!res.ok) { out.dataset.state = 'refused ' + res.status; return; }
  const { url } = await res.json();
  out.dataset.state = 'streaming';
  const es = new EventSource(GATEWAY + url);
  es.onmessage = (e) => (out.textContent += JSON.parse(e.data).choices[0]?.delta?.content ?? '');
  es.addEventListener('done', () => { es.close(); out.dataset.state = 'done'; });
  es.addEventListener('error', (e) => { if (e.data) { es.close(); out.dataset.state = 'error'; } });
}
window.ask = ask;
</script>`;

/** A static server on its own origin serving one HTML page. */
async function serveHtml(t: Test, html: () => string): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url !== '/') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** `METHOD path origin? +auth?` of every /v1 request the gateway received. */
function recordV1(server: { on(event: 'request', fn: (req: IncomingMessage) => void): unknown }): { line: string; authorization?: string }[] {
  const seen: { line: string; authorization?: string }[] = [];
  server.on('request', (req) => {
    if (!req.url?.startsWith('/v1/')) return;
    const auth = req.headers.authorization;
    seen.push({ line: `${req.method} ${req.url.replace(/str_[^/?]+/, ':id')}${auth ? ' +auth' : ''}`, ...(auth ? { authorization: auth } : {}) });
  });
  return seen;
}

if (!hasChromium()) {
  t.comment(`${CHROMIUM} not found: install it with \`apt-get install -y chromium\` to run the browser tests`);
  t.plan(0, `no Chromium at ${CHROMIUM}`);
} else {
  let browser: Browser;
  let idp: JwksServer;
  let key: TestKey;
  t.before(async () => {
    browser = await launchBrowser();
    idp = await new JwksServer().start();
    key = await makeKey('ES256');
    idp.keys = [key];
  });
  t.teardown(async () => {
    await browser?.close();
    await idp?.close();
  });

  async function open(t: Test, url: string): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    t.teardown(() => context.close());
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    const errors = collectPageErrors(page);
    await page.goto(url);
    return { page, errors };
  }

  async function gateway(t: Test, corsOrigins?: string[]): Promise<RunningGateway> {
    const gw = await startGateway({ mock: QUICK_MOCK, ...jwksConfig(idp.url), ...(corsOrigins ? { corsOrigins } : {}) });
    t.teardown(() => gw.close());
    return gw;
  }

  t.test('a page on another origin, holding only a JWT, streams through POST /v1/streams + EventSource', async (t) => {
    let html = '';
    const origin = await serveHtml(t, () => html);
    const gw = await gateway(t, [origin]);
    const token = await sign(key, { sub: 'browser-user' });
    html = appPage(gw.url, token);
    const v1 = recordV1(gw.app.server);
    const { page, errors } = await open(t, origin + '/');

    const prompt = 'from another origin [mock:tokens=40]';
    await page.evaluate((p) => (window as unknown as { ask: (p: string) => Promise<void> }).ask(p), prompt);
    await page.waitForFunction(() => document.getElementById('out')?.dataset.state === 'done');
    t.equal(await page.textContent('#out'), expectedAnswer([{ role: 'user', content: prompt }]), 'the whole answer, in Chromium');
    const traffic = v1.filter((r) => !r.line.startsWith('OPTIONS '));
    t.same(traffic.map((r) => r.line), ['POST /v1/streams +auth', 'GET /v1/streams/:id'], 'the JWT on the POST, none on the EventSource read');
    t.equal(traffic[0]!.authorization, `Bearer ${token}`, 'exactly the token the page holds');
    t.same(broken(errors), [], 'no script errors');
    const line = await gw.logs.waitForRequest((l) => l.url === '/v1/streams' && l.method === 'POST');
    t.match(line.key_id, /^sub_[0-9a-f]{16}$/, 'counted against the user');
    await page.screenshot({ path: outputPath('jwt-cross-origin.png') });
  });

  t.test('the same page with an expired token is refused (401) and streams nothing', async (t) => {
    let html = '';
    const origin = await serveHtml(t, () => html);
    const gw = await gateway(t, [origin]);
    html = appPage(gw.url, await sign(key, { sub: 'browser-user' }, { expiresIn: -3600 }));
    const { page } = await open(t, origin + '/');
    await page.evaluate(() => (window as unknown as { ask: (p: string) => Promise<void> }).ask('x'));
    await page.waitForFunction(() => document.getElementById('out')?.dataset.state?.startsWith('refused'));
    t.equal(await page.getAttribute('#out', 'data-state'), 'refused 401', 'a 401 the page can read (CORS headers on the error too)');
  });

  t.test('the chat page, with only JWT auth configured, asks for a token and streams with it', async (t) => {
    const gw = await gateway(t);
    const v1 = recordV1(gw.app.server);
    const { page, errors } = await open(t, gw.url + '/');
    await page.waitForSelector('#model[data-loaded="true"]', { state: 'attached' });
    t.ok(await page.isVisible('#key'), 'the "API key or token" field is shown');
    t.equal(await page.textContent('label[for="key"]'), 'API key or token');
    t.same(v1, [], 'nothing sent to /v1 before there is a token');

    await page.fill('#key', await sign(key, { sub: 'page-user' }, { expiresIn: -3600 }));
    await page.press('#key', 'Enter');
    await page.waitForSelector('#auth-note[data-kind="bad"]');
    t.match(await page.textContent('#auth-note'), /^The gateway refused this key: Invalid token: expired/, 'an expired token is named as such');

    await page.fill('#key', await sign(key, { sub: 'page-user', models: ['mock-1'] }));
    await page.press('#key', 'Enter');
    await page.waitForSelector('#auth-note[data-kind="ok"]');
    t.same(await page.locator('#model option').allTextContents(), ['mock-1'], 'the models the token allows');
    const prompt = 'with a token [mock:tokens=50]';
    t.equal(await ask(page, prompt), expectedAnswer([{ role: 'user', content: prompt }]), 'the full answer streams in');
    t.same(broken(errors), [], 'no CSP violations or script errors');
    await page.screenshot({ path: outputPath('chat-page-jwt.png') });
  });
}
