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

/** GET / — the small chat page (public/index.html): plain HTML and JS, no build step. */
export const chatPageRoutes: FastifyPluginAsync = async (app) => {
  const html = await readFile(CHAT_PAGE_FILE, 'utf8');
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
