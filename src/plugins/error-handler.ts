import type { FastifyError, FastifyInstance } from 'fastify';
import { GatewayError, type ErrorCode } from '../errors.js';

/** Fastify's own errors, by code, in the gateway's catalogue. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_body',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
};

function toGatewayError(err: FastifyError): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (code === 'body_too_large') return new GatewayError(code, 'Request body is too large');
  if (code === 'invalid_json') return new GatewayError(code, 'Request body is not valid JSON');
  if (code) return new GatewayError(code, err.message);
  // JSON.parse errors and prototype-poisoning refusals from the body parser.
  if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON|__proto__|constructor/i.test(err.message))) {
    return new GatewayError('invalid_json', `Request body is not valid JSON: ${err.message.slice(0, 200)}`);
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new GatewayError('invalid_body', err.message.slice(0, 300), { status: err.statusCode });
  }
  return new GatewayError('internal_error', 'Internal error');
}

/** Every error leaves as OpenAI-shaped JSON with its status; never a stack trace. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const e = toGatewayError(err);
    if (request.summary) request.summary.errorCode = e.code;
    if (e.status >= 500 && e.code === 'internal_error') request.log.error({ err }, 'unhandled error');
    const apiBody = request.routeOptions.config?.errorBody;
    reply.code(e.status).headers(e.headers).send(apiBody ? apiBody(e) : e.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new GatewayError('route_not_found', `No route ${request.method} ${request.url.split('?')[0]}`);
    request.summary.errorCode = e.code;
    reply.code(404).send(e.toBody());
  });
}
