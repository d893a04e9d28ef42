import type { FastifyPluginAsync } from 'fastify';
import type { JwksStatus } from '../auth/jwks-keys.js';
import { GatewayError } from '../errors.js';

export interface GatewayState {
  /** Set at SIGTERM: readyz turns 503 and new work is refused while streams finish. */
  draining: boolean;
}

export interface HealthOptions {
  state: GatewayState;
  /** The identity provider's key set (AUTH_JWKS_URL), or null without one. */
  jwks?: () => JwksStatus | null;
}

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, { state, jwks }) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    if (state.draining) return reply.code(503).send(new GatewayError('draining', 'The gateway is draining').toBody());
    // A JWKS that cannot be fetched is reported, and stays 200: every replica shares the one provider, so
    // a 503 here would pull them all out of the load balancer at once, and static keys and tokens whose
    // key is cached still work. Alert on `jwks.status`, not on readiness.
    const keySet = jwks?.();
    return keySet ? { status: 'ready', jwks: keySet } : { status: 'ready' };
  });
};
