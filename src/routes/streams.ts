import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import type { UnknownStreamReads } from '../plugins/rate-limit.js';
import type { Relay } from '../relay/relay.js';
import type { TokenBudget } from '../relay/token-budget.js';
import { chatIntake } from './chat-intake.js';
import type { StreamDirectory } from '../streams/directory.js';
import type { ModelCatalog } from '../upstream/catalog.js';

export interface StreamsRouteOptions {
  config: Config;
  relay: Relay;
  catalog: ModelCatalog;
  streams: StreamDirectory;
  budget: TokenBudget;
  /** The budget for reads of unknown ids (rate-limit.ts). */
  unknownReads: UnknownStreamReads;
}

/** What EventSource waits before reconnecting: short, since a resume loses nothing. */
export const RETRY_MS = 1000;


const STREAM_ID = /^str_[A-Za-z0-9_-]{22}$/;
const EVENT_ID = /^\d{1,9}$/;

/**
 * POST /v1/streams + GET/DELETE /v1/streams/:id — generation started by a
 * POST, read with a GET that EventSource can make (no body, no headers), and
 * resumed after Last-Event-ID on any replica that can see the log.
 */
export const streamsRoutes: FastifyPluginAsync<StreamsRouteOptions> = async (app, { config, relay, catalog, streams, budget, unknownReads }) => {
  const intake = chatIntake(config, catalog, budget);

  app.post('/v1/streams', { config: { api: 'chat' } }, async (request, reply) => {
    const summary = request.summary;
    const { body, targets } = await intake(request);
    // A retry with the Idempotency-Key of an earlier POST gets that POST's stream: the same 201.
    const gen = await relay.launchOrAttach(request, { targets, body: { ...body, stream: true }, keyId: summary.limitKey, startedAt: summary.startedAt });
    const url = `/v1/streams/${gen.log.id}`;
    return reply.code(201).header('location', url).send({ id: gen.log.id, url });
  });

  // EventSource cannot send headers: the unguessable id is the read capability (see auth.ts).
  // Outside the request rate limit: a read costs no upstream call, and EventSource takes a 429 on a
  // reconnect as the end of the stream. Bounded instead by readers per stream and by a budget for
  // reads of ids that do not exist (probing), neither of which a reader of a known id runs into.
  app.get<{ Params: { id: string }; Querystring: { lastEventId?: string } }>(
    '/v1/streams/:id',
    { config: { public: true, rateLimit: false } },
    async (request, reply) => {
      const { id } = request.params;
      if (!STREAM_ID.test(id)) throw (await unknownReads(request)) ?? notFound();
      const afterId = lastEventId(request.headers['last-event-id'], request.query.lastEventId);
      const log = await streams.open(id);
      if (!log) throw (await unknownReads(request)) ?? notFound();
      if (log.end && afterId >= log.finalId) {
        log.release();
        // 204 is how a server tells EventSource to stop reconnecting.
        return reply.code(204).send();
      }
      if (!log.end && afterId > log.lastId) {
        log.release();
        throw new GatewayError('invalid_body', `Last-Event-ID ${afterId} is ahead of the stream (last id ${log.lastId})`, { param: 'lastEventId' });
      }
      relay.serveReader(reply, log, { style: 'eventsource', afterId, preamble: `retry: ${RETRY_MS}\n\n` });
      return reply;
    },
  );

  app.delete<{ Params: { id: string } }>('/v1/streams/:id', async (request, reply) => {
    const { id } = request.params;
    if (!STREAM_ID.test(id)) throw notFound();
    const owner = await streams.owner(id);
    if (owner === null) throw notFound();
    if (owner !== request.summary.limitKey) throw new GatewayError('forbidden', 'This stream was created with another key');
    if (!relay.abort(id)) await streams.requestAbort(id);
    return reply.code(204).send();
  });
};

function notFound(): GatewayError {
  return new GatewayError('stream_not_found', 'No such stream (unknown, or expired)', { param: 'id' });
}

/** Last-Event-ID from the header (EventSource's reconnect) or ?lastEventId= (a first connect that resumes). */
function lastEventId(header: string | string[] | undefined, query: string | undefined): number {
  const raw = (Array.isArray(header) ? header[0] : header) ?? query;
  if (raw === undefined || raw === '') return 0;
  if (!EVENT_ID.test(raw.trim())) throw new GatewayError('invalid_body', 'Last-Event-ID must be a non-negative integer', { param: 'lastEventId' });
  return Number(raw.trim());
}
