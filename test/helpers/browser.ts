import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHAT_PAGE_FILE, chatPageCsp } from '../../src/routes/chat-page.js';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { planCompletion } from '../../src/upstream/mock/model.js';

/** Debian's Chromium (apt-get install chromium); CI installs it, never `npx playwright install`. */
export const CHROMIUM = '/usr/bin/chromium';

export const hasChromium = (): boolean => existsSync(CHROMIUM);

/** `extraArgs`, e.g. `--ignore-certificate-errors` for a gateway with a self-signed certificate. */
export function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: 20_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      ...extraArgs,
    ],
  });
}

/** Git-ignored folder for screenshots (test-output/). */
export function outputPath(name: string): string {
  const dir = fileURLToPath(new URL('../../test-output/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  return dir + name;
}

export type Turn = { role: 'user' | 'assistant'; content: string };

/** The mock's deterministic answer to exactly the request the page sends. */
export function expectedAnswer(messages: Turn[], model = 'mock-1'): string {
  const plan = planCompletion({ model, messages } as ChatRequest, { tokensPerSecond: 0, firstTokenDelayMs: 0 });
  return plan.content;
}

/** public/index.html from a second origin, with the same CSP the gateway sends. */
export async function servePage(): Promise<{ origin: string; close: () => Promise<void> }> {
  const html = await readFile(CHAT_PAGE_FILE, 'utf8');
  const csp = chatPageCsp(html);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp }).end(html);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface StreamGet {
  streamId: string;
  lastEventId: string | undefined;
  origin: string | undefined;
}

/** Records every GET /v1/streams/:id the server receives, with its Last-Event-ID. */
export function recordStreamGets(server: { on(event: 'request', fn: (req: IncomingMessage) => void): unknown }): StreamGet[] {
  const seen: StreamGet[] = [];
  server.on('request', (req) => {
    const m = req.method === 'GET' ? /^\/v1\/streams\/([^/?]+)/.exec(req.url ?? '') : null;
    if (!m) return;
    const h = req.headers['last-event-id'];
    seen.push({ streamId: m[1]!, lastEventId: Array.isArray(h) ? h[0] : h, origin: req.headers.origin });
  });
  return seen;
}

/** Every text #status showed, recorded in the page (so short-lived states are not missed). */
export async function recordStatus(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const el = document.getElementById('status')!;
    const log: string[] = [el.textContent ?? ''];
    (window as unknown as { statusLog: string[] }).statusLog = log;
    new MutationObserver(() => log.push(el.textContent ?? '')).observe(el, { childList: true, characterData: true, subtree: true });
  });
  return () => page.evaluate(() => (window as unknown as { statusLog: string[] }).statusLog);
}

/** Types a prompt, sends it, waits for the latest answer to finish; returns its text. */
export async function ask(page: Page, prompt: string, timeout = 15_000): Promise<string> {
  const before = await page.locator('[data-role="answer"]').count();
  await page.fill('#prompt', prompt);
  await page.click('#send');
  await page.waitForFunction(
    (n) => document.querySelectorAll('[data-role="answer"]').length > n && document.getElementById('answer')?.dataset.state === 'done',
    before,
    { timeout },
  );
  return page.locator('#answer').evaluate((el) => el.textContent ?? '');
}

/** Console errors and page errors (CSP violations land here): a page that works shows none. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return errors;
}
