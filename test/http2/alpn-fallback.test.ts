import { request, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { chatBody } from '../helpers/gateway.js';
import { closeSession, connectH2, h2Get, testCert, startTlsGateway, within } from '../helpers/http2.js';
import { StreamHandle } from '../helpers/sse.js';

/** The TLS port also speaks HTTP/1.1, for clients that do not offer h2 in ALPN (curl --http1.1, old proxies, SDKs). */

function openHttps(url: string, body: unknown, tls: RequestOptions = {}): Promise<StreamHandle> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/json' }, rejectUnauthorized: false, agent: false, ...tls },
      (res) => resolve(new StreamHandle(res, () => req.destroy())),
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const cert = testCert(t);
if (!cert) {
  t.plan(0, 'no openssl to make a test certificate');
} else {

  const cases: [string, RequestOptions & { ALPNProtocols?: string[] }][] = [
    ['no ALPN at all (node:https)', {}],
    ['ALPN offering only http/1.1', { ALPNProtocols: ['http/1.1'] }],
  ];
  for (const [name, tls] of cases) {
    t.test(`HTTP/1.1 over the TLS port, ${name}: a normal SSE stream`, async (t) => {
      const { gw } = await startTlsGateway(t, cert);
      const s = await openHttps(`${gw.url}/v1/chat/completions`, chatBody('over http/1.1 [mock:tokens=20]', { stream: true }), tls);
      await within(s.done(), 10_000, 'the stream to end');
      t.equal(s.res.httpVersion, '1.1', 'answered in HTTP/1.1');
      t.equal((s.res.socket as TLSSocket).alpnProtocol, 'ALPNProtocols' in tls ? 'http/1.1' : false, 'ALPN: not h2');
      t.equal(s.res.statusCode, 200);
      t.equal(s.res.headers['content-type'], 'text/event-stream; charset=utf-8');
      t.match(s.res.headers['x-stream-id'], /^str_/);
      const events = s.events;
      t.equal(events.length, 23, 'role chunk, 20 tokens, finish chunk, [DONE]');
      t.equal(events.at(-1)?.data, '[DONE]');
      t.same(
        events.slice(0, -1).map((e) => e.id),
        events.slice(0, -1).map((_, i) => String(i + 1)),
        'ids 1, 2, 3…',
      );
    });
  }

  t.test('HTTP/1.1 over TLS: a client that hangs up still aborts the upstream', async (t) => {
    const { mock, gw } = await startTlsGateway(t, cert);
    const s = await openHttps(`${gw.url}/v1/chat/completions`, chatBody('leave early [mock:tokens=500]', { stream: true }));
    await within(s.until((x) => x.events.length >= 3), 5000, 'three events');
    s.destroy();
    await within(mock.waitForAborts(1), 5000, 'the upstream request to be aborted');
    t.equal(mock.aborted, 1);
  });

  t.test('both protocols at once on one port; app.close() cuts the open streams of each', async (t) => {
    const { mock, gw } = await startTlsGateway(t, cert);
    const session = await connectH2(gw.url);
    t.teardown(() => closeSession(session));
    const h1 = await openHttps(`${gw.url}/v1/chat/completions`, chatBody('h1 [mock:tokens=10000]', { stream: true }));
    const post = await openHttps(`${gw.url}/v1/streams`, chatBody('h2 [mock:tokens=10000]'));
    const { url } = JSON.parse(await within(post.done(), 5000, 'POST /v1/streams')) as { url: string };
    const h2 = h2Get(session, url);
    await within(h1.until((x) => x.events.length >= 2), 5000, 'the HTTP/1.1 stream to run');
    await h2.until((x) => x.events.length >= 2, 5000, 'the HTTP/2 stream to run');
    t.equal(session.alpnProtocol, 'h2');
    await within(gw.close(), 3000, 'app.close() with an HTTP/1.1 and an HTTP/2 stream open');
    await within(h1.done(), 3000, 'the HTTP/1.1 stream to be cut');
    await h2.done(3000);
    // The chat stream's upstream stops at once (CHAT_RESUME_GRACE_MS=0); the /v1/streams one at the shutdown.
    await within(mock.waitForAborts(1), 3000, 'the HTTP/1.1 stream’s upstream to be aborted');
    t.pass('closed without waiting for either stream');
  });
}
