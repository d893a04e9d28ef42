import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';

export interface CutPlan {
  /** Which connection to cut (0 = the first one made). */
  connection: number;
  /** Cut once this many events (`\n\n`) went through to the client… */
  afterEvents: number;
  /** …and this many bytes more (0: right at an event's end; more: inside the next event). */
  extraBytes?: number;
}

export interface CuttingProxy {
  url: string;
  /** The request bytes each connection sent, in the order connections were made. */
  readonly requests: string[];
  /** Resolves once the planned cut happened. */
  readonly cut: Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that passes connections through to `target`
 * (one for all, or chosen per connection, as a load balancer would),
 * except one: after a given number of events of its response it destroys
 * both sides, as a dropped network would (the client sees its response cut
 * mid-body, the server sees its client gone).
 */
export async function cuttingProxy(target: string | ((connection: number) => string), plan: CutPlan): Promise<CuttingProxy> {
  const targetOf = typeof target === 'string' ? () => target : target;
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  let markCut!: () => void;
  const cut = new Promise<void>((r) => (markCut = r));
  const server = createServer((client) => {
    const index = requests.length;
    requests.push('');
    const to = new URL(targetOf(index));
    const upstream = connect(Number(to.port), to.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.on('data', (b: Buffer) => {
      requests[index] += b.toString('latin1');
      upstream.write(b);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    if (index !== plan.connection) {
      upstream.pipe(client);
      return;
    }
    let events = 0;
    let prev = -1;
    /** Bytes still to pass once the events are through; null until then. */
    let left: number | null = null;
    upstream.on('data', (b: Buffer) => {
      let end = b.length;
      for (let i = 0; i < b.length; i++) {
        if (left === null) {
          if (b[i] === 0x0a && prev === 0x0a && ++events === plan.afterEvents) left = plan.extraBytes ?? 0;
          prev = b[i]!;
          if (left === 0) {
            end = i + 1;
            break;
          }
        } else if (--left === 0) {
          end = i + 1;
          break;
        }
      }
      client.write(b.subarray(0, end));
      if (left === 0) {
        // Both sides at once, once the bytes before the cut are flushed.
        client.end(() => {
          client.destroy();
          upstream.destroy();
          markCut();
        });
        upstream.removeAllListeners('data');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    cut,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
