import type { FastifyRequest } from 'fastify';
import { mayUseModel } from '../auth/identity.js';
import { GatewayError } from '../errors.js';
import type { ModelCatalog, Target } from '../upstream/catalog.js';

/**
 * Where the request's model is served, for every API alike (chat
 * completions, streams, Responses, Messages and count_tokens): 403
 * `model_not_allowed` when the caller's token limits its models (the JWT
 * `models` claim) and this is not one of them, checked before the catalogue
 * (a caller learns nothing about models it may not use); 404 for a model the
 * gateway does not serve. Nothing is sent upstream either way.
 */
export function resolveModel(catalog: ModelCatalog, request: FastifyRequest, model: string): Target[] {
  request.summary.model = model;
  if (!mayUseModel(request.summary.identity, model)) {
    throw new GatewayError('model_not_allowed', `This token does not allow the model '${model}'`, { param: 'model' });
  }
  return catalog.resolve(model);
}
