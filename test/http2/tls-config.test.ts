import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { closeSession, connectH2, h2Get, testCert, within } from '../helpers/http2.js';

/** TLS_CERT_FILE / TLS_KEY_FILE / HTTP2_CLEARTEXT: checked at start, one line naming the variable. */

const ROOT = resolve(import.meta.dirname, '../..');
const SERVER = join(ROOT, 'dist/server.js');

function configError(t: Test, env: Record<string, string>): string {
  try {
    loadConfig(env, ROOT);
  } catch (e) {
    t.type(e, ConfigError);
    const msg = (e as Error).message;
    t.notMatch(msg, /[\r\n]/, 'one line');
    return msg;
  }
  t.fail(`no error for ${JSON.stringify(env)}`);
  return '';
}

t.test('HTTP2_CLEARTEXT', async (t) => {
  t.equal(loadConfig({ HTTP2_CLEARTEXT: 'true' }, ROOT).http2Cleartext, true);
  t.notOk(loadConfig({ HTTP2_CLEARTEXT: 'false' }, ROOT).http2Cleartext);
  t.notOk(loadConfig({}, ROOT).tls, 'no TLS by default');
  t.match(configError(t, { HTTP2_CLEARTEXT: 'yes' }), /^HTTP2_CLEARTEXT: must be true or false/);
});

const cert = testCert(t);
if (cert) {

  t.test('a readable pair is loaded into the config (the app never reads files or env)', async (t) => {
    const c = loadConfig({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }, ROOT);
    t.same(c.tls, { cert: cert.cert, key: cert.key });
  });

  t.test('bad TLS settings stop the start with one line naming the variable', async (t) => {
    const dir = t.testdir({ 'junk.pem': 'not a certificate\n' });
    const otherKey = join(dir, 'other-key.pem');
    writeFileSync(otherKey, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const junk = join(dir, 'junk.pem');
    const missing = join(dir, 'missing.pem');
    const cases: [Record<string, string>, RegExp][] = [
      [{ TLS_CERT_FILE: cert.certFile }, /^TLS_KEY_FILE: must be set together with TLS_CERT_FILE$/],
      [{ TLS_KEY_FILE: cert.keyFile }, /^TLS_CERT_FILE: must be set together with TLS_KEY_FILE$/],
      [{ TLS_CERT_FILE: missing, TLS_KEY_FILE: cert.keyFile }, /^TLS_CERT_FILE: cannot read .*missing\.pem \(ENOENT\)$/],
      [{ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: missing }, /^TLS_KEY_FILE: cannot read .*missing\.pem \(ENOENT\)$/],
      [{ TLS_CERT_FILE: junk, TLS_KEY_FILE: cert.keyFile }, /^TLS_CERT_FILE: .*junk\.pem is not a PEM certificate$/],
      [{ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: junk }, /^TLS_KEY_FILE: .*junk\.pem is not a PEM private key/],
      [{ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: otherKey }, /^TLS_KEY_FILE: .* does not match the certificate in TLS_CERT_FILE$/],
      [{ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2_CLEARTEXT: 'true' }, /^HTTP2_CLEARTEXT: cannot be combined with TLS_CERT_FILE/],
    ];
    for (const [env, want] of cases) t.match(configError(t, env), want, JSON.stringify(Object.keys(env)));
    t.notMatch(configError(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: junk }), /not a certificate/, 'file contents are never echoed');
  });

  t.test('the built server (npm start) with TLS: ready on https://, HTTP/2 served; a bad file: one line, exit 1', { skip: !existsSync(SERVER) && 'dist/ not built: run npm run build' }, async (t) => {
    const spawnServer = (env: Record<string, string>) => {
      const child = spawn(process.execPath, [SERVER], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', PORT: '0', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      t.teardown(() => void child.kill('SIGKILL'));
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      return { child, stderr: () => stderr };
    };

    const bad = spawnServer({ TLS_CERT_FILE: join(ROOT, 'nope.pem'), TLS_KEY_FILE: cert.keyFile });
    const [code] = (await within(once(bad.child, 'exit'), 10_000, 'the server to refuse to start')) as [number];
    t.equal(code, 1);
    t.match(bad.stderr(), /^config error: TLS_CERT_FILE: cannot read \S*nope\.pem \(ENOENT\)\n$/, 'one line naming TLS_CERT_FILE');

    const good = spawnServer({ TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile });
    const ready = await within(
      (async () => {
        for await (const line of createInterface({ input: good.child.stdout })) {
          const entry = JSON.parse(line) as { address?: string; protocol?: string };
          if (entry.address) return entry;
        }
        throw new Error(`no ready line; stderr: ${good.stderr()}`);
      })(),
      15_000,
      'the ready line',
    );
    good.child.stdout.resume();
    t.match(ready.address, /^https:\/\/127\.0\.0\.1:\d+$/, 'listens on https://');
    t.equal(ready.protocol, 'h2+http/1.1');
    const session = await connectH2(ready.address!);
    const health = h2Get(session, '/healthz');
    await health.done(5000);
    t.equal(health.status, 200, 'GET /healthz over HTTP/2');
    await closeSession(session);
    good.child.kill('SIGTERM');
    const [exit] = (await within(once(good.child, 'exit'), 10_000, 'the server to exit on SIGTERM')) as [number];
    t.equal(exit, 0, 'SIGTERM: drained, exit 0');
  });
}
