import type { FastifyPluginAsync } from 'fastify';
import { mayUseModel } from '../auth/identity.js';
import { GatewayError } from '../errors.js';
import type { ModelCatalog } from '../upstream/catalog.js';

/** The models served; for a token with a `models` claim, only those it may use. */
export const modelsRoutes: FastifyPluginAsync<{ catalog: ModelCatalog }> = async (app, { catalog }) => {
  app.get('/v1/models', async (request) => ({ object: 'list', data: catalog.list().filter((m) => mayUseModel(request.summary.identity, m.id)) }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (request) => {
    const id = request.params.id;
    if (!mayUseModel(request.summary.identity, id)) throw new GatewayError('model_not_allowed', `This token does not allow the model '${id.slice(0, 256)}'`, { param: 'model' });
    const entry = catalog.list().find((m) => m.id === id);
    if (!entry) throw new GatewayError('model_not_found', `The model '${id.slice(0, 256)}' does not exist`, { param: 'model' });
    return entry;
  });
};
