import { once } from 'node:events';
import http2 from 'node:http2';
import t, { type Test } from 'tap';
import type { RecordedRequest } from '../../src/upstream/mock/http-server.js';
import { chatBody } from '../helpers/gateway.js';
import { defaultConfig, type Config } from '../../src/config.js';
import { closeSession, connectH2, h2Post, testCert, startTlsGateway, within, type TestCert } from '../helpers/http2.js';

/** Heartbeats, backpressure and shutdown on HTTP/2: each works per stream, next to others on the same session. */

async function setup(t: Test, cert: TestCert, overrides: Partial<Config> = {}) {
  const { mock, gw } = await startTlsGateway(t, cert, {
    rateLimit: { max: 1000, windowMs: 60_000 },
    maxConcurrentStreams: 100,
    // The mock shares this process and runs flat out: load shedding (event-loop utilization) would answer 503.
    pressure: { ...defaultConfig().pressure, maxEventLoopDelayMs: 0, maxEventLoopUtilization: 0 },
    ...overrides,
  });
  const session = await connectH2(gw.url);
  t.teardown(() => closeSession(session));
  return { mock, gw, session };
}

const cert = testCert(t);
if (!cert) {
  t.plan(0, 'no openssl to make a test certificate');
} else {

  t.test('heartbeats reach an idle stream while another on the same session streams; RST aborts only the idle one', async (t) => {
    const { mock, session } = await setup(t, cert, { heartbeatMs: 100 });
    const idle = h2Post(session, '/v1/chat/completions', chatBody('idle [mock:tokens=10] [mock:hang-after=2]', { stream: true }));
    const busy = h2Post(session, '/v1/chat/completions', chatBody('busy [mock:tokens=30]', { stream: true }));
    await idle.until((x) => (x.text.match(/^: ping$/gm) ?? []).length >= 2, 5000, 'two heartbeats on the idle stream');
    t.equal(idle.events.length, 2, 'the idle stream holds its two chunks, then only pings');
    await busy.done(5000);
    t.equal(busy.events.at(-1)?.data, '[DONE]', 'the busy stream finished meanwhile');
    t.notOk(idle.ended, 'the idle stream is still open');
    idle.stream.close(http2.constants.NGHTTP2_CANCEL);
    await within(mock.waitForAborts(1), 5000, 'the idle stream’s upstream to be aborted');
    t.equal(mock.aborted, 1);
  });

  t.test('backpressure: a stream nobody reads stops its upstream; another on the session still streams; then the stalled one is dropped', async (t) => {
    const { mock, gw, session } = await setup(t, cert, { clientStallTimeoutMs: 2000 });
    const blocked = once(mock, 'blocked') as Promise<[RecordedRequest]>;
    const stuck = h2Post(session, '/v1/chat/completions', chatBody('stuck [mock:tokens=2000000] [mock:tps=0]', { stream: true }), { read: false });
    // Planning 2M chunks takes the mock a few seconds on a loaded machine before the first byte.
    await stuck.until((x) => x.headers !== null, 30_000, 'the stuck stream’s headers');
    const [rec] = await within(blocked, 10_000, 'the upstream to feel backpressure');
    const streamId = stuck.headers!['x-stream-id'] as string;
    const log = gw.store.get(streamId)!;
    t.ok(log.maxReaderBuffered() < 512 * 1024, `the gateway holds ${log.maxReaderBuffered()} bytes for the stuck stream (< 512 KiB)`);
    t.ok(rec.chunksSent < 2_000_000, `the upstream stopped after ${rec.chunksSent} of 2,000,000 chunks`);

    const other = h2Post(session, '/v1/chat/completions', chatBody('other [mock:tokens=20] [mock:tps=200]', { stream: true }));
    await other.done(5000);
    t.equal(other.status, 200);
    t.equal(other.events.at(-1)?.data, '[DONE]', 'a second stream on the same connection completes');
    t.notOk(stuck.ended, 'the stuck stream is still open (within CLIENT_STALL_TIMEOUT_MS)');
    t.equal(mock.aborted, 0);

    await within(mock.waitForAborts(1), 8000, 'the stalled stream to be dropped and its upstream aborted');
    await stuck.done(3000);
    t.equal(stuck.stream.rstCode, http2.constants.NGHTTP2_CANCEL, 'the client sees its stream cut (RST_STREAM CANCEL), not a clean end');
    t.match(log.end, { kind: 'error', type: 'client_disconnected' });
    t.notOk(session.destroyed, 'the session survives; only the stalled stream was reset');
  });

  t.test('app.close() cuts open HTTP/2 streams (forceCloseConnections), aborting their upstreams', async (t) => {
    const { mock, gw, session } = await setup(t, cert);
    const long = h2Post(session, '/v1/chat/completions', chatBody('long [mock:tokens=10000]', { stream: true }));
    await long.until((x) => x.events.length >= 2, 5000, 'the long stream to start');
    await within(gw.close(), 3000, 'app.close() with a stream open');
    await long.done(3000);
    await within(mock.waitForAborts(1), 3000, 'the upstream of the cut stream to be aborted');
    t.pass('closed without waiting for the stream');
  });
}
