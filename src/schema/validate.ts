import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import { paramName } from './chat-request.js';

/** Parses with a zod schema or throws a 400 naming the first bad field, the way OpenAI names params. */
export function validateBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('invalid_body', 'Request body must be a JSON object');
  }
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = [...issue.path];
  // zod reports a bad discriminator at the element; the field at fault is the discriminator itself.
  const discriminator = (issue as { discriminator?: string }).discriminator;
  if (discriminator && path[path.length - 1] !== discriminator) path.push(discriminator);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    message = `unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  }
  const param = paramName(path);
  throw new GatewayError('invalid_body', param ? `${param}: ${message}` : message, param ? { param } : {});
}
