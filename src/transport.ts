import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from './config.js';

/**
 * What the gateway speaks on its port. Browsers open at most 6 HTTP/1.1
 * connections per origin and every open EventSource holds one; over HTTP/2
 * all streams of an origin share one connection.
 *
 * - default: HTTP/1.1 (behind a TLS-terminating proxy, or local use);
 * - `tls` (TLS_CERT_FILE + TLS_KEY_FILE): HTTPS with HTTP/2, and HTTP/1.1 on
 *   the same port for clients that do not offer `h2` in ALPN;
 * - `http2Cleartext` (HTTP2_CLEARTEXT): h2c with prior knowledge, for a proxy
 *   that speaks HTTP/2 to its backends. Node has no `Upgrade: h2c` and no
 *   HTTP/1.1 on that port.
 *
 * Routes see the same API either way: Node's Http2ServerRequest/Response
 * mirror http's, and the code uses only what both have (sse/writer.ts notes
 * the one gap, `destroyed`).
 */
export type TransportOptions =
  | { http2: true; https: { cert: string; key: string; allowHTTP1: true } }
  | { http2: true }
  | Record<string, never>;

export function transportOptions(config: Config): TransportOptions {
  if (config.tls) return { http2: true, https: { cert: config.tls.cert, key: config.tls.key, allowHTTP1: true } };
  if (config.http2Cleartext) return { http2: true };
  return {};
}

/** `http/1.1`, `h2+http/1.1` (TLS with ALPN fallback) or `h2c`: for the start-up line. */
export function transportName(config: Config): string {
  return config.tls ? 'h2+http/1.1' : config.http2Cleartext ? 'h2c' : 'http/1.1';
}

/**
 * `forceCloseConnections` for the HTTP/2 servers. On Node < 24 Fastify only
 * closes their sessions gracefully, which waits for every open stream (an
 * SSE stream may run for minutes), and HTTP/1.1 connections on the TLS port
 * are not cut at all. After a drain, what is left is cut, as on HTTP/1.
 */
export function cutConnectionsOnClose(app: FastifyInstance, config: Config): void {
  if (!config.tls && !config.http2Cleartext) return;
  const sockets = new Set<Socket>();
  // Over TLS the session runs on the TLS socket; destroying it ends every stream on it ('close' → aborts).
  app.server.on(config.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  app.addHook('preClose', async () => {
    for (const socket of sockets) socket.destroy();
  });
}
