// The floor on Fastify: bench/bare-relay.mjs's pipe (undici's dispatch API upstream, the
// upstream's bytes to the client unchanged, abort when the client leaves) behind a Fastify
// route with Fastify's own JSON body parser, and nothing else (no hooks, validation, ids,
// log line or metrics). Against the floor it prices the framework; against the gateway,
// the gateway's own work. `BENCH_GATEWAY_SCRIPT=bench/fastify-floor.mjs node bench/run.js`
// puts it in the gateway's column; `node bench/cost-per-stream.mjs bench/fastify-floor.mjs`
// gives its CPU per stream.
import Fastify from 'fastify';
import { agent, chatPath, origin, relayTo, upstream } from './floor-pipe.mjs';

const app = Fastify({ logger: false });
app.get('/readyz', async () => 'ok');
app.get('/v1/models', (_request, reply) => {
  reply.hijack();
  agent.dispatch({ origin, path: upstream.pathname + '/models', method: 'GET' }, relayTo(reply.raw, 'application/json', () => {}));
});
app.post('/v1/chat/completions', (request, reply) => {
  reply.hijack();
  const res = reply.raw;
  let abort = null;
  res.on('close', () => {
    if (!res.writableFinished) abort?.(new Error('client left'));
  });
  const headers = { 'content-type': 'application/json' };
  agent.dispatch({ origin, path: chatPath, method: 'POST', headers, body: JSON.stringify(request.body) }, relayTo(res, 'text/event-stream; charset=utf-8', (a) => (abort = a)));
});
await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 8080), backlog: 4096 });
