import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import type { TokenBudget } from '../relay/token-budget.js';
import { chatRequestSchema, type ChatRequest } from '../schema/chat-request.js';
import { validateBody } from '../schema/validate.js';
import type { ModelCatalog, Target } from '../upstream/catalog.js';
import { resolveModel } from './resolve-model.js';

/**
 * The front of both chat routes: validate the body (400), find where its
 * model is served (403 for a token not allowed it, 404, nothing sent upstream), check the key's token budget (429).
 */
export function chatIntake(config: Config, catalog: ModelCatalog, budget: TokenBudget) {
  const schema = chatRequestSchema(config.limits);
  return async (request: FastifyRequest): Promise<{ body: ChatRequest; targets: Target[] }> => {
    const body = validateBody(schema, request.body);
    const targets = resolveModel(catalog, request, body.model);
    await budget.check(request.summary.limitKey);
    return { body, targets };
  };
}
