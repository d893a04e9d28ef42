import { isUtf8 } from 'node:buffer';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';

/**
 * `application/json` bodies, read as bytes so that one that is not UTF-8 is
 * refused (400 `invalid_body`) instead of decoded with U+FFFD where the
 * client's bytes were and forwarded upstream. What is UTF-8 goes to Fastify's
 * own JSON parser (secure-json-parse, with the server's __proto__ and
 * constructor.prototype settings), so bad JSON keeps its `invalid_json` errors.
 * Registered on the root before any route, so every JSON route has it.
 */
export function registerJsonBody(app: FastifyInstance): void {
  const { onProtoPoisoning = 'error', onConstructorPoisoning = 'error' } = app.initialConfig;
  const parseJson = app.getDefaultJsonParser(onProtoPoisoning, onConstructorPoisoning);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body: Buffer, done) => {
    if (!isUtf8(body)) return done(new GatewayError('invalid_body', 'Request body is not valid UTF-8'), undefined);
    return parseJson(request, body.toString('utf8'), done);
  });
}
