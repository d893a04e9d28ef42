import type { FastifyPluginAsync } from 'fastify';
import { GatewayError } from '../errors.js';

export interface GatewayState {
  /** Set at SIGTERM: readyz turns 503 and new work is refused while streams finish. */
  draining: boolean;
}

export const healthRoutes: FastifyPluginAsync<{ state: GatewayState }> = async (app, { state }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (state.draining) return reply.code(503).send(new GatewayError('draining', 'The gateway is draining').toBody());
    return { status: 'ready' };
  });
};
