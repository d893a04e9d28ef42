// A floor, not a gateway: the least a Node relay can do per request with node:http —
// parse the JSON body, one keep-alive request upstream, the upstream's bytes piped to the
// client unchanged (no id lines, no validation, no auth, no limits, no log line), the
// upstream aborted when the client leaves. `BENCH_GATEWAY_SCRIPT=bench/bare-relay.mjs
// node bench/run.js` measures it in the gateway's column, to show how much of the gap to
// the targets any node:http relay pays on this machine before doing any of the gateway's work.
import http from 'node:http';

const upstream = new URL(process.env.UPSTREAM_BASE_URL ?? 'http://127.0.0.1:8081/v1');
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
const base = { hostname: upstream.hostname, port: upstream.port, agent };

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    if (req.url === '/readyz') return void res.end('ok');
    // /v1/models and anything else: straight through.
    const up = http.request({ ...base, path: upstream.pathname.replace(/\/v1$/, '') + req.url, method: 'GET' }, (u) => {
      res.writeHead(u.statusCode ?? 502, u.headers);
      u.pipe(res);
    });
    up.on('error', () => res.destroy());
    return void up.end();
  }
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const payload = JSON.stringify(body);
    const up = http.request(
      { ...base, path: upstream.pathname + '/chat/completions', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (u) => {
        res.writeHead(u.statusCode ?? 502, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
        u.on('data', (c) => res.write(c));
        u.on('end', () => res.end());
      },
    );
    up.on('error', () => res.destroy());
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    up.end(payload);
  });
});
server.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 8080), backlog: 4096 });
