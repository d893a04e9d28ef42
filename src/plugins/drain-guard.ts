import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import type { GatewayState } from '../routes/health.js';

/** While draining, new work goes to another replica: 503 with Retry-After. */
export function registerDrainGuard(app: FastifyInstance, state: GatewayState): void {
  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (request, _reply, done) => {
    // A resume read stays served: EventSource gives up for good on a 503, and the read is cheap.
    if (state.draining && !request.routeOptions.config.public) {
      return done(new GatewayError('draining', 'The gateway is shutting down; retry on another replica', { headers: { 'retry-after': '1' } }));
    }
    done();
  });
}
