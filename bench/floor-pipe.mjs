// The floors' pipe (bench/bare-relay.mjs, bench/fastify-floor.mjs): undici's dispatch API upstream
// on keep-alive connections, and the upstream's bytes to the client unchanged.
import { Agent } from 'undici';

export const upstream = new URL(process.env.UPSTREAM_BASE_URL ?? 'http://127.0.0.1:8081/v1');
export const origin = upstream.origin;
export const chatPath = upstream.pathname + '/chat/completions';
export const agent = new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });

/** Relays one upstream answer to `res` as it comes; `onAbort` learns how to cut it. */
export function relayTo(res, contentType, onAbort) {
  return {
    onConnect(abort) {
      onAbort(abort);
    },
    onHeaders(status) {
      res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-cache' });
      return true;
    },
    onData(chunk) {
      res.write(chunk);
      return true;
    },
    onComplete() {
      res.end();
    },
    onError() {
      res.destroy();
    },
  };
}
