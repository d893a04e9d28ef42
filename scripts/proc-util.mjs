// Process and loopback helpers shared by the benchmark (bench/run.js) and the
// local cluster (scripts/cluster-lib.mjs).
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

/** Signals a child's whole process group (falling back to the pid); false when it is already gone. */
export function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false; // already gone
    }
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** GET without keep-alive, bounded in time: `{ status, body }`. */
export function httpGet(url, timeoutMs = 2000) {
  return new Promise((res, rej) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (body += c));
      r.on('end', () => res({ status: r.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
  });
}

export function findBinary(name, extraDirs = []) {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extraDirs]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** The nginx binary (apt puts it in /usr/sbin, often not on a user's PATH), or null. */
export function findNginx() {
  return findBinary('nginx', ['/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin']);
}
