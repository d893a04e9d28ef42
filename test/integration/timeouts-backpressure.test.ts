import { once } from 'node:events';
import { connect } from 'node:net';
import { defaultConfig } from '../../src/config.js';
import t from 'tap';
import { chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';

const NO_RETRY = { ...defaultConfig().failover, maxAttempts: 1, backoffMs: 0, maxBackoffMs: 0, retryAfterCapMs: 0, breakerThreshold: 1_000_000, breakerCoolDownMs: 0 };

t.test('idle gap: an upstream that goes silent mid-stream → error event, upstream aborted', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), idleTimeoutMs: 200, failover: NO_RETRY });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:hang-after=3]', { stream: true }));
  const events = parseSse(res.body).events;
  t.equal(events.length, 4, '3 chunks, then the error');
  t.equal(JSON.parse(events[3]!.data).error.type, 'upstream_idle');
  await mock.waitForAborts(1);
});

t.test('total duration: a stream past STREAM_MAX_DURATION_MS ends with an error event, upstream aborted', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 50, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), maxDurationMs: 300, failover: NO_RETRY });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=10000]', { stream: true }));
  const last = parseSse(res.body).events.at(-1)!;
  t.equal(JSON.parse(last.data).error.type, 'max_duration');
  await mock.waitForAborts(1);
});

t.test('first byte: no answer within UPSTREAM_TIMEOUT_MS → 504, upstream aborted', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), upstreamTimeoutMs: 150, failover: NO_RETRY });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:first-token-ms=5000]', { stream: true }));
  t.equal(res.status, 504);
  await mock.waitForAborts(1);
});

t.test('backpressure: a client that stops reading stops the upstream, bounded buffers, then is dropped', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), clientStallTimeoutMs: 400 });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  // A raw socket, so the test decides when bytes are read: here, never after the headers.
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const payload = JSON.stringify(chatBody('[mock:tokens=2000000]', { stream: true }));
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
  const [first] = (await once(socket, 'data')) as [Buffer];
  const streamId = /x-stream-id: (\S+)/i.exec(first.toString('latin1'))?.[1];
  t.ok(streamId, 'the stream started');
  socket.pause();
  socket.on('error', () => {});

  // The upstream feels it: its socket to the gateway fills, because the gateway stopped reading.
  const [rec] = (await once(mock, 'blocked')) as [{ chunksSent: number }];
  const log = gw.store.get(streamId!)!;
  const bound = 512 * 1024;
  t.ok(log.maxReaderBuffered() < bound, `the gateway holds ${log.maxReaderBuffered()} bytes for the client (< ${bound})`);
  const sentWhenBlocked = rec.chunksSent;
  t.ok(sentWhenBlocked < 2_000_000, `the upstream stopped after ${sentWhenBlocked} of 2,000,000 chunks`);

  // After CLIENT_STALL_TIMEOUT_MS the stalled client is dropped, and with it the upstream request.
  await mock.waitForAborts(1);
  t.ok(log.end, 'the stream ended');
  t.equal(log.end?.kind === 'error' && log.end.type, 'client_disconnected');
  t.ok(rec.chunksSent - sentWhenBlocked < 200_000, 'the upstream did not run on while the client stalled');
  socket.destroy();
});

t.test('idle gap after backpressure: a client that stalled, then read on, still gets the idle timeout', async (t) => {
  const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
  const gw = await startGateway({ ...viaUpstream(baseUrl), idleTimeoutMs: 300, clientStallTimeoutMs: 30_000, failover: NO_RETRY });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  await once(socket, 'connect');
  const payload = JSON.stringify(chatBody('[mock:tokens=99000] [mock:hang-after=90000]', { stream: true }));
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(payload)}\r\nconnection: close\r\n\r\n${payload}`);
  await once(socket, 'data');
  socket.pause();
  // The gateway waited on the full client socket: the upstream feels it.
  await once(mock, 'blocked');
  // Read on, to the end; the upstream goes silent after 90,000 chunks (under the 100,000 events a stream may have).
  let tail = '';
  socket.on('data', (c: Buffer) => (tail = (tail + c.toString('latin1')).slice(-2000)));
  socket.resume();
  await once(socket, 'end');
  // The tail of a chunked body: the last event is the error.
  t.match(tail, /data: \{"error":\{[^\n]*"type":"upstream_idle"[^\n]*\}\}\n\n\r\n0\r\n\r\n$/, 'the silence after the stall was noticed');
  await mock.waitForAborts(1);
});

t.test('connect: an upstream that never completes the TCP handshake → 504 after UPSTREAM_CONNECT_TIMEOUT_MS', async (t) => {
  // A listener whose process is stopped, with its accept queue (backlog 1) filled: the kernel
  // then drops further SYNs, so the gateway's connect hangs the way a dead host's does.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['-e', "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })"], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const sockets: import('node:net').Socket[] = [];
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    child.kill('SIGKILL');
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  process.kill(child.pid!, 'SIGSTOP');
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
  }
  const gw = await startGateway({ ...viaUpstream(`http://127.0.0.1:${port}/v1`), connectTimeoutMs: 200, upstreamTimeoutMs: 10_000, failover: NO_RETRY });
  t.teardown(() => gw.close());
  const started = Date.now();
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('hi', { stream: true }));
  t.equal(res.status, 504);
  t.match(JSON.parse(res.body).error.message, /connect timeout/);
  t.ok(Date.now() - started < 5_000, 'well before the first-byte timeout');
});
