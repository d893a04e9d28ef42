import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import type { GatewayState } from '../routes/health.js';

/** While draining, new work goes to another replica: 503 with Retry-After. */
export function registerDrainGuard(app: FastifyInstance, state: GatewayState): void {
  app.addHook('onRequest', async (request) => {
    // A resume read stays served: EventSource gives up for good on a 503, and the read is cheap.
    if (state.draining && !request.routeOptions.config.public) {
      throw new GatewayError('draining', 'The gateway is shutting down; retry on another replica', { headers: { 'retry-after': '1' } });
    }
  });
}
