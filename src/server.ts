import closeWithGrace from 'close-with-grace';
import { buildGateway } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { batchedStdout, createLogger } from './logger.js';
import { transportName } from './transport.js';

/** The only file that reads process.env, listens, and handles signals. */

let config;
try {
  config = loadConfig(process.env);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`config error: ${e.message}\n`);
  process.exit(1);
}

const logger = createLogger(config.logLevel, batchedStdout());
let gateway;
try {
  gateway = await buildGateway(config, { logger });
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  process.stderr.write(`config error: ${e.message}\n`);
  process.exit(1);
}
const { app, drain } = gateway;

if (config.gatewayApiKeys.length === 0 && !config.jwt) {
  logger.warn('GATEWAY_API_KEYS is not set: the gateway accepts requests without authentication');
}

// close-with-grace exits non-zero if the drain itself hangs past its delay.
closeWithGrace({ delay: config.drainTimeoutMs + 5_000, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'fatal error, shutting down');
  else logger.info({ signal, drain_timeout_ms: config.drainTimeoutMs }, 'draining');
  const cut = await drain(config.drainTimeoutMs);
  logger.info({ cut_streams: cut }, 'drained, closing');
  await app.close();
});

let address: string;
try {
  // 2,000 clients connecting at once overflow Node's default accept queue (511).
  address = await app.listen({ host: config.host, port: config.port, backlog: 4096 });
} catch (e) {
  logger.error(`cannot listen on ${config.host}:${config.port}: ${(e as Error).message}`);
  process.exit(1);
}
const upstreams = Object.keys(config.upstreams);
logger.info(
  { upstreams: upstreams.length ? upstreams : ['mock (built-in)'], address, protocol: transportName(config) },
  `gateway ready on ${address}`,
);
