import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Python's json.dumps with its defaults: `", "` and `": "` separators, non-ASCII as \uXXXX. */
export function pyDumps(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(pyDumps).join(', ') + ']';
  if (v !== null && typeof v === 'object') return '{' + Object.entries(v).map(([k, x]) => `${pyDumps(k)}: ${pyDumps(x)}`).join(', ') + '}';
  return JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

/**
 * An OpenAI-compatible upstream that writes JSON the way many Python servers
 * do: a proxy in front of `target` (the mock model's base URL) that re-writes
 * every `data:` JSON line of its answers with pyDumps, nothing else.
 */
export async function spacedUpstream(target: string): Promise<{ server: Server; baseUrl: string; close(): Promise<void> }> {
  const origin = new URL(target);
  const server = createServer((req, res) => {
    const up = request(
      { host: origin.hostname, port: origin.port, path: req.url, method: req.method, headers: req.headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        let pending = '';
        upRes.setEncoding('utf8');
        upRes.on('data', (c: string) => {
          pending += c;
          const cut = pending.lastIndexOf('\n');
          if (cut === -1) return;
          res.write(respace(pending.slice(0, cut + 1)));
          pending = pending.slice(cut + 1);
        });
        upRes.on('end', () => res.end(respace(pending)));
        upRes.on('error', () => res.destroy());
      },
    );
    up.on('error', () => res.destroy());
    // The gateway hung up: so does the proxy, so the mock sees it too.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    baseUrl: `http://127.0.0.1:${port}${origin.pathname}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

function respace(text: string): string {
  return text.replace(/^data: (\{.*\})$/gm, (_m, json: string) => 'data: ' + pyDumps(JSON.parse(json)));
}
