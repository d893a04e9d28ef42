import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import t from 'tap';
import { chatBody } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';

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
  return { child, stderr: () => stderr };
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

t.test('npm start serves the mock model and stops cleanly on SIGTERM', async (t) => {
  const { child } = run({ PORT: '0' });
  t.teardown(() => child.kill('SIGKILL'));
  let address = '';
  let warnedNoAuth = false;
  for await (const line of createInterface({ input: child.stdout })) {
    const entry = JSON.parse(line) as { msg: string; address?: string };
    if (entry.msg.startsWith('GATEWAY_API_KEYS is not set')) warnedNoAuth = true;
    if (entry.address) {
      address = entry.address;
      break;
    }
  }
  t.ok(warnedNoAuth, 'warns that auth is off');
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await post(`${address}/v1/chat/completions`, chatBody('hello [mock:tokens=4] [mock:tps=0] [mock:first-token-ms=0]', { stream: true }));
  t.equal(res.status, 200);
  t.equal(parseSse(res.body).events.at(-1)!.data, '[DONE]');
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0);
});
