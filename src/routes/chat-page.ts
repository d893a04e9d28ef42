import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';

export const CHAT_PAGE_FILE = new URL('../../public/index.html', import.meta.url);

const hashes = (html: string, tag: 'script' | 'style'): string =>
  [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
    .map((m) => `'sha256-${createHash('sha256').update(m[1]!, 'utf8').digest('base64')}'`)
    .join(' ');

/**
 * The page's CSP: only its own inline <script> and <style> run (pinned by
 * hash, so no 'unsafe-inline'), nothing is loaded from anywhere. connect-src
 * stays open because the page may talk to a gateway on another origin
 * (`?gateway=`), which CORS_ORIGINS then has to allow.
 */
export function chatPageCsp(html: string): string {
  return [
    "default-src 'none'",
    `script-src ${hashes(html, 'script') || "'none'"}`,
    `style-src ${hashes(html, 'style') || "'none'"}`,
    'img-src data:',
    'connect-src *',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export interface ChatPageOptions {
  /** Whether /v1 wants a credential: the page then asks for one before calling it. */
  authRequired: boolean;
}

/** The file carries this empty tag; the copy served here says whether this gateway needs a key. */
const AUTH_META = '<meta name="gateway-auth" content="">';

/**
 * The page as this gateway serves it. Telling the page in the HTML lets it
 * know before any request whether a key is needed, so it never tries a
 * protected route just to be refused. Only a <meta> changes: the CSP hashes
 * cover script and style contents, which stay as they are.
 */
export function renderChatPage(html: string, { authRequired }: ChatPageOptions): string {
  if (!html.includes(AUTH_META)) throw new Error(`public/index.html: ${AUTH_META} is missing`);
  return html.replace(AUTH_META, `<meta name="gateway-auth" content="${authRequired ? 'required' : 'none'}">`);
}

/** GET / — the small chat page (public/index.html): plain HTML and JS, no build step. */
export const chatPageRoutes: FastifyPluginAsync<ChatPageOptions> = async (app, options) => {
  const html = renderChatPage(await readFile(CHAT_PAGE_FILE, 'utf8'), options);
  const csp = chatPageCsp(html);
  app.get('/', async (_request, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(html),
  );
};
