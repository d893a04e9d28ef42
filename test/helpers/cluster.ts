import { request, type IncomingMessage } from 'node:http';
import { findNginx, redisAvailable } from '../../scripts/cluster-lib.mjs';

/** The local cluster (`npm run cluster`): mock upstream, Redis, two replicas, nginx — as child processes. */
export { startCluster, findNginx, readLog, type Cluster, type Replica } from '../../scripts/cluster-lib.mjs';

/** Why the cluster tests cannot run here, or null when they can (nginx installed, a Redis to use or start). */
export async function clusterSkipReason(): Promise<string | null> {
  const missing: string[] = [];
  if (!findNginx()) missing.push('nginx is not installed (apt-get install nginx)');
  if (!(await redisAvailable())) missing.push('no Redis at 127.0.0.1:6379 and no redis-server to start');
  return missing.length ? missing.join('; ') : null;
}

export interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** GET over node:http with a fresh connection each time (so nginx sees separate requests). */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** The gateway process that answered: the random per-process prefix of `x-request-id` (before the '-'). */
export function processOf(res: { headers: IncomingMessage['headers'] }): string {
  const id = res.headers['x-request-id'];
  if (typeof id !== 'string' || !id.includes('-')) throw new Error(`no x-request-id in the answer: ${JSON.stringify(res.headers)}`);
  return id.slice(0, id.indexOf('-'));
}

/** `p`, or a rejection naming `what` after `ms`. */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
