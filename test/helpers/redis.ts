import { Socket } from 'node:net';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Whether something accepts connections at REDIS_URL (tests that need Redis skip visibly when not). */
export async function redisReachable(): Promise<boolean> {
  const u = new URL(REDIS_URL);
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.connect(Number(u.port || 6379), u.hostname);
  });
}

/** One command, on a connection of its own (GET, DEL, HGET…). */
export async function redisCall(url: string, command: string, ...args: string[]): Promise<unknown> {
  const { Redis } = await import('ioredis');
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

export async function redisGet(url: string, key: string): Promise<string | null> {
  return (await redisCall(url, 'GET', key)) as string | null;
}
