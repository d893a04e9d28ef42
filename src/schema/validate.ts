import type { z } from 'zod';
import { GatewayError } from '../errors.js';
import { paramName } from './chat-request.js';

/** Deeper than any real request; deep enough JSON overflows the stack of JSON.stringify on the way upstream. */
export const MAX_BODY_DEPTH = 64;

/**
 * The top-level field under which `root` nests deeper than `max` levels (the
 * root being level 1), or null. Iterative: a recursive walk would overflow on
 * the very input it guards against.
 */
function tooDeepField(root: object, max: number): string | null {
  const stack: [object, number, string][] = [];
  for (const [field, v] of Object.entries(root)) if (v !== null && typeof v === 'object') stack.push([v, 2, field]);
  while (stack.length > 0) {
    const [v, d, field] = stack.pop()!;
    if (d > max) return field;
    for (const child of Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, d + 1, field]);
  }
  return null;
}

/** Parses with a zod schema or throws a 400 naming the first bad field, the way OpenAI names params. */
export function validateBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new GatewayError('invalid_body', 'Request body must be a JSON object');
  }
  const deep = tooDeepField(body, MAX_BODY_DEPTH);
  if (deep !== null) {
    const param = paramName([deep]);
    throw new GatewayError('invalid_body', `${param}: nested deeper than ${MAX_BODY_DEPTH} levels`, { param });
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
