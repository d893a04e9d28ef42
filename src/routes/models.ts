import type { FastifyPluginAsync } from 'fastify';
import { GatewayError } from '../errors.js';
import type { ModelCatalog } from '../upstream/catalog.js';

export const modelsRoutes: FastifyPluginAsync<{ catalog: ModelCatalog }> = async (app, { catalog }) => {
  app.get('/v1/models', async () => ({ object: 'list', data: catalog.list() }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (request) => {
    const entry = catalog.list().find((m) => m.id === request.params.id);
    if (!entry) throw new GatewayError('model_not_found', `The model '${request.params.id.slice(0, 256)}' does not exist`, { param: 'model' });
    return entry;
  });
};
