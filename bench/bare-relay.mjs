// A floor, not a gateway: the least a Node relay does per request on the gateway's own
// transports — a node:http server, and undici's dispatch API upstream (what the gateway's
// streamed requests use) on keep-alive connections. It parses the JSON body, sends one
// request upstream and pipes the upstream's bytes to the client unchanged (no id lines,
// no validation, no auth, no limits, no log line), and aborts the upstream when the
// client leaves. `BENCH_GATEWAY_SCRIPT=bench/bare-relay.mjs node bench/run.js` measures
// it in the gateway's column: what any Node relay pays on this machine before doing any
// of the gateway's work. (Its node:http-client predecessor reached 0.48–0.54× in B.)
import http from 'node:http';
import { agent, chatPath, origin, relayTo, upstream } from './floor-pipe.mjs';

const server = http.createServer((req, res) => {
  if (req.method === 'GET') {
    if (req.url === '/readyz') return void res.end('ok');
    // /v1/models and anything else: straight through.
    const path = upstream.pathname.replace(/\/v1$/, '') + req.url;
    return void agent.dispatch({ origin, path, method: 'GET' }, relayTo(res, 'application/json', () => {}));
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
    let abort = null;
    res.on('close', () => {
      if (!res.writableFinished) abort?.(new Error('client left'));
    });
    const headers = { 'content-type': 'application/json' };
    agent.dispatch({ origin, path: chatPath, method: 'POST', headers, body: JSON.stringify(body) }, relayTo(res, 'text/event-stream; charset=utf-8', (a) => (abort = a)));
  });
});
server.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 8080), backlog: 4096 });
