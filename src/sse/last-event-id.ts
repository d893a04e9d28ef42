import { GatewayError } from '../errors.js';

const EVENT_ID = /^\d{1,9}$/;

/**
 * The id a client resumes after: `Last-Event-ID` (what EventSource and
 * fetch-event-source send on a reconnect), else `fallback` (a query
 * parameter). 0 when neither is given; 400 naming `param` when not an id.
 */
export function lastEventId(header: string | string[] | undefined, fallback?: string, param = 'Last-Event-ID'): number {
  const raw = (Array.isArray(header) ? header[0] : header) ?? fallback;
  if (raw === undefined || raw === '') return 0;
  if (!EVENT_ID.test(raw.trim())) throw new GatewayError('invalid_body', 'Last-Event-ID must be a non-negative integer', { param });
  return Number(raw.trim());
}
