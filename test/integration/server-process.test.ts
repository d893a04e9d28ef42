import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import t from 'tap';
import { chatBody } from '../helpers/gateway.js';
import { openStream, parseSse, post } from '../helpers/sse.js';

function get(url: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode! }));
    })
      .on('error', reject)
      .end();
  });
}

/** The built server (what `npm start` runs), as a child process. */
const SERVER = new URL('../../dist/server.js', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [SERVER], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  return { child, stderr: () => stderr, stdout: () => stdout };
}

for (const [name, value] of [
  ['PORT', 'abc'],
  ['PORT', '70000'],
  ['LOG_LEVEL', 'loud'],
  ['UPSTREAM_BASE_URL', 'not a url'],
  ['RATE_LIMIT_MAX', '-5'],
  ['CONFIG_FILE', 'config/missing.json'],
] as const) {
  t.test(`a bad ${name} stops the start with one line naming it`, async (t) => {
    const { child, stderr } = run({ [name]: value });
    const [code] = await once(child, 'exit');
    t.not(code, 0);
    const lines = stderr().trim().split('\n');
    t.equal(lines.length, 1, 'one line');
    t.match(lines[0], new RegExp(`^config error: ${name}`));
    t.notMatch(stderr(), /\n\s+at /, 'no stack trace');
  });
}

async function started(child: ReturnType<typeof run>['child']): Promise<{ address: string; warnedNoAuth: boolean }> {
  let warnedNoAuth = false;
  for await (const line of createInterface({ input: child.stdout })) {
    const entry = JSON.parse(line) as { msg: string; address?: string };
    if (entry.msg.startsWith('GATEWAY_API_KEYS is not set')) warnedNoAuth = true;
    if (entry.address) {
      child.stdout.resume();
      return { address: entry.address, warnedNoAuth };
    }
  }
  throw new Error('the server exited before listening');
}

t.test('SIGTERM drains: readyz 503, new work 503, streams in flight finish, exit 0, every log line out', async (t) => {
  const { child, stdout } = run({ PORT: '0', DRAIN_TIMEOUT_MS: '10000' });
  t.teardown(() => child.kill('SIGKILL'));
  const { address } = await started(child);
  const s = await openStream(`${address}/v1/chat/completions`, chatBody('[mock:tokens=8] [mock:tps=20] [mock:first-token-ms=0]', { stream: true }));
  await s.until((h) => h.events.length >= 1);
  child.kill('SIGTERM');
  // Wait for the drain to be visible rather than guessing when the signal landed.
  let ready = await get(`${address}/readyz`);
  for (let i = 0; i < 2000 && ready.status === 200; i++) ready = await get(`${address}/readyz`);
  t.equal(ready.status, 503);
  const refused = await post(`${address}/v1/chat/completions`, chatBody('hi', { stream: true }));
  t.equal(refused.status, 503);
  t.equal(JSON.parse(refused.body).error.code, 'draining');
  const text = await s.done();
  t.equal(parseSse(text).events.at(-1)!.data, '[DONE]', 'the stream in flight finished');
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
  // Lines leave in batches: those logged in the last moments before exit must still get out.
  if (child.stdout.readableEnded === false) await once(child.stdout, 'end');
  const lines = stdout()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { msg: string; url?: string; outcome?: string });
  t.ok(lines.some((l) => l.msg === 'request' && l.url === '/v1/chat/completions' && l.outcome === 'completed'), "the stream's line, logged during the drain");
  t.ok(lines.some((l) => l.msg === 'drained, closing'), 'the line logged just before exit');
});

t.test('SIGTERM with 50 streams in flight: those that fit finish with [DONE], the rest get the reconnect event, exit 0', async (t) => {
  const { child } = run({ PORT: '0', DRAIN_TIMEOUT_MS: '2500', MAX_CONCURRENT_STREAMS: '100', RATE_LIMIT_MAX: '1000' });
  t.teardown(() => child.kill('SIGKILL'));
  const { address } = await started(child);
  const open = (tokens: number, i: number) =>
    openStream(`${address}/v1/chat/completions`, chatBody(`n${i} [mock:tokens=${tokens}] [mock:tps=20] [mock:first-token-ms=0]`, { stream: true }));
  const short = await Promise.all(Array.from({ length: 40 }, (_, i) => open(10, i)));
  const long = await Promise.all(Array.from({ length: 10 }, (_, i) => open(1000, i)));
  await Promise.all([...short, ...long].map((s) => s.until((h) => h.events.length >= 1)));
  child.kill('SIGTERM');
  const texts = await Promise.all([...short, ...long].map((s) => s.done()));
  const last = texts.map((x) => parseSse(x).events.at(-1)!);
  t.equal(last.slice(0, 40).filter((e) => e.data === '[DONE]').length, 40, 'the 40 that fit in the drain time finished');
  const cut = last.slice(40).map((e) => JSON.parse(e.data).error?.type);
  t.same(cut, Array(10).fill('shutdown'), 'the 10 that did not got the reconnect error event');
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
});

t.test('streams still open at the drain deadline end with a shutdown error event', async (t) => {
  const { child } = run({ PORT: '0', DRAIN_TIMEOUT_MS: '200' });
  t.teardown(() => child.kill('SIGKILL'));
  const { address } = await started(child);
  const s = await openStream(`${address}/v1/chat/completions`, chatBody('[mock:tokens=1000] [mock:tps=10] [mock:first-token-ms=0]', { stream: true }));
  await s.until((h) => h.events.length >= 1);
  child.kill('SIGTERM');
  const text = await s.done();
  const last = parseSse(text).events.at(-1)!;
  t.equal(JSON.parse(last.data).error.type, 'shutdown');
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
});

t.test('npm start serves the mock model and stops cleanly on SIGTERM', async (t) => {
  const { child } = run({ PORT: '0' });
  t.teardown(() => child.kill('SIGKILL'));
  const { address, warnedNoAuth } = await started(child);
  t.ok(warnedNoAuth, 'warns that auth is off');
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await post(`${address}/v1/chat/completions`, chatBody('hello [mock:tokens=4] [mock:tps=0] [mock:first-token-ms=0]', { stream: true }));
  t.equal(res.status, 200);
  t.equal(parseSse(res.body).events.at(-1)!.data, '[DONE]');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
});
