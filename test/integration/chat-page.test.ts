import { createHash } from 'node:crypto';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { defaultConfig } from '../../src/config.js';
import { renderChatPage } from '../../src/routes/chat-page.js';

/**
 * GET / as the gateway serves it, without a browser (test/browser/ drives the
 * page itself): the page is told whether keys are needed, and the CSP still
 * pins exactly the inline script and style it carries.
 */

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s, 'utf8').digest('base64')}'`;
const inline = (html: string, tag: string) => [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]!);

for (const [keys, expected] of [
  [[], 'none'],
  [['sk-page'], 'required'],
] as const) {
  t.test(`GATEWAY_API_KEYS ${keys.length ? 'set' : 'unset'}: <meta name="gateway-auth" content="${expected}">`, async (t) => {
    const app = await buildApp(defaultConfig({ logLevel: 'silent', gatewayApiKeys: [...keys] }));
    t.teardown(() => app.close());
    const res = await app.inject({ method: 'GET', url: '/' });
    t.equal(res.statusCode, 200, 'public: no key needed for the page itself');
    const metas = [...res.body.matchAll(/<meta name="gateway-auth" content="([^"]*)">/g)].map((m) => m[1]);
    t.same(metas, [expected]);

    const csp = String(res.headers['content-security-policy']);
    const directive = (name: string) => csp.split('; ').find((d) => d.startsWith(name + ' '))!.split(' ').slice(1);
    for (const [tag, name] of [['script', 'script-src'], ['style', 'style-src']] as const) {
      const bodies = inline(res.body, tag);
      t.equal(bodies.length, 1, `one inline <${tag}>`);
      t.same(directive(name), bodies.map(sha256), `${name} pins the served <${tag}> by hash`);
    }
  });
}

t.test('a page without the gateway-auth tag fails at start, not in the browser', async (t) => {
  t.throws(() => renderChatPage('<!doctype html><title>x</title>', { authRequired: true }), /gateway-auth/);
});
