import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { KEPT_RESPONSES, KeptResponses } from '../dialects/responses/kept-responses.js';
import { isResponseLog, responseInLog } from '../dialects/responses/log-response.js';
import { responsesRequestSchema, type ResponsesRequest } from '../dialects/responses/request.js';
import { errorBody } from '../dialects/responses/response-body.js';
import { echoOf, type ResponseObject } from '../dialects/responses/response-object.js';
import { ResponsesEncoder } from '../dialects/responses/stream-encoder.js';
import { conversationAfter, toChatRequest } from '../dialects/responses/to-chat.js';
import { responsesWire } from '../dialects/responses/wire.js';
import { GatewayError } from '../errors.js';
import { Generation } from '../relay/generation.js';
import type { StreamPlan } from '../relay/relay.js';
import type { ChatRequest } from '../schema/chat-request.js';
import { validateBody } from '../schema/validate.js';
import { SSE_HEADERS } from '../sse/frame.js';
import { lastEventId } from '../sse/last-event-id.js';
import { EndWaiter, Runs } from './responses-runs.js';
import { resolveModel } from './resolve-model.js';
import type { StreamsRouteOptions } from './streams.js';

/** What GET/POST /v1/streams gets (its unknown-id read budget is shared with GET /v1/responses/:id), and the kept responses' bounds. */
export interface ResponsesRouteOptions extends StreamsRouteOptions {
  /** Bounds of the responses kept for previous_response_id (default KEPT_RESPONSES; kept for limits.streamTtlMs). */
  kept?: { maxCount: number; maxChars: number };
}

/**
 * A response is a stream: its id is its stream log's (`resp_X` is `str_X`),
 * so GET, resume, cancel, X-Stream-Id and GET /v1/streams/:id all find it
 * through the one stream directory, on any replica, with no id map to keep.
 */
const RESPONSE_ID = /^resp_([A-Za-z0-9_-]{22})$/;
/** How long a cancel waits for the generation to write its end before answering without it. */
const CANCEL_WAIT_MS = 2000;

const api = { api: 'responses', errorBody } as const;

/**
 * The OpenAI Responses API (CONTRACT.md "OpenAI Responses API"): POST
 * /v1/responses, GET /v1/responses/:id (object, or its events resumed after
 * starting_after), POST /v1/responses/:id/cancel. Translated onto the
 * upstream's chat completions; every response runs as a generation into a
 * stream log, whichever way it was asked for.
 */
export const responsesRoutes: FastifyPluginAsync<ResponsesRouteOptions> = async (app, opts) => {
  const { config, relay, catalog, streams, budget, unknownReads } = opts;
  const schema = responsesRequestSchema(config.limits);
  const runs = new Runs(relay);
  const kept = new KeptResponses({ ...KEPT_RESPONSES, ...opts.kept, ttlMs: config.limits.streamTtlMs });

  /** The plan of one response: its encoder is made with the stream's id, and registered as running. */
  const planFor = (request: FastifyRequest, body: ResponsesRequest, chat: ChatRequest, targets: StreamPlan['targets']) => {
    const owner = request.summary.limitKey;
    let made: ResponsesEncoder | null = null;
    const plan: StreamPlan = {
      targets,
      body: chat,
      keyId: owner,
      startedAt: request.summary.startedAt,
      encoder: (streamId) => {
        const id = responseId(streamId);
        const encoder = new ResponsesEncoder({ id, model: body.model, createdAt: Math.floor(Date.now() / 1000), echo: echoOf(body) });
        const onEnded = body.store === false ? null : (final: ResponseObject) => kept.keep(id, owner, conversationAfter(body, chat, final), final.output);
        runs.add(streamId, { encoder, onEnded });
        return (made = encoder);
      },
    };
    return { plan, encoder: () => made! };
  };

  app.post('/v1/responses', { config: api }, async (request, reply) => {
    const summary = request.summary;
    const body = validateBody(schema, request.body);
    summary.model = body.model;
    const owner = summary.limitKey;
    let previous: readonly ChatRequest['messages'][number][] = [];
    if (body.previous_response_id != null) {
      const found = kept.conversation(body.previous_response_id, owner);
      if (!found) {
        throw new GatewayError('previous_response_not_found', `Previous response '${body.previous_response_id}' is not kept by this gateway (unknown, expired, or stored with store: false)`, {
          param: 'previous_response_id',
        });
      }
      previous = found;
    }
    const chat = toChatRequest(body, [...previous], (id) => kept.item(id, owner));
    const targets = resolveModel(catalog, request, body.model);
    await budget.check(owner);
    const { plan, encoder } = planFor(request, body, chat, targets);

    if (body.stream && !body.background) {
      // CHAT_RESUME_GRACE_MS=0: the upstream is aborted the moment the client leaves.
      await relay.streamTo(request, reply, plan, { style: responsesWire, graceMs: config.chatResumeGraceMs, noReader: 'client_disconnected' });
      return reply;
    }

    // Background, or a JSON answer: a generation nobody streams, kept and resumable like any other.
    const launched = await relay.launchOrAttach(request, plan);
    const streamId = launched.log.id;
    // Not ours when a retried POST (same Idempotency-Key) found the stream the first one started.
    const gen = launched instanceof Generation ? launched : null;
    if (body.stream) {
      if (gen) relay.serve(reply, gen.log, { style: responsesWire, afterId: 0, headers: { 'x-stream-id': streamId } });
      else await serveEvents(request, reply, streamId, lastEventId(request.headers['last-event-id']));
      return reply;
    }
    reply.header('x-stream-id', streamId);
    if (body.background) {
      const response = gen ? encoder().snapshot() : await current(streamId);
      if (!response) throw notFound(responseId(streamId));
      return response;
    }

    const log = gen?.log ?? (await streams.open(streamId));
    if (!log) throw notFound(responseId(streamId));
    try {
      const waiter = new EndWaiter(log);
      // Like stream: false on chat completions: a client that leaves stops the upstream (its own only).
      const onClose = () => {
        if (reply.raw.writableEnded) return;
        waiter.leave();
        gen?.abort('client_disconnected');
      };
      reply.raw.once('close', onClose);
      const how = await waiter.done;
      reply.raw.off('close', onClose);
      if (how === 'left') return reply.hijack();
      const end = log.end;
      // A failure before the first byte keeps its status (429, 502, 504…), as on chat completions.
      if (gen && end?.kind === 'error' && end.type === 'upstream_error' && gen.ttftMs === null && gen.error) throw gen.error;
      // Ended, or (moved) going on at another replica as this one shuts down: as it stands.
      const response = gen ? encoder().snapshot() : responseInLog(log);
      if (!response) throw notFound(responseId(streamId));
      return response;
    } finally {
      log.release();
    }
  });

  // Reads cost no upstream call: outside the request rate limit, like GET /v1/streams/:id, and
  // bounded the same ways (readers per stream, a budget for reads of ids that do not exist).
  app.get<{ Params: { id: string }; Querystring: { stream?: string; starting_after?: string } }>(
    '/v1/responses/:id',
    { config: { ...api, rateLimit: false } },
    async (request, reply) => {
      const streamId = streamIdOf(request.params.id);
      if (!streamId) throw (await unknownReads(request)) ?? notFound(request.params.id);
      if (request.query.stream !== 'true') {
        const response = await current(streamId);
        if (!response) throw (await unknownReads(request)) ?? notFound(request.params.id);
        return reply.header('x-stream-id', streamId).send(response);
      }
      await serveEvents(request, reply, streamId, lastEventId(request.headers['last-event-id'], request.query.starting_after, 'starting_after'));
      return reply;
    },
  );

  app.post<{ Params: { id: string } }>('/v1/responses/:id/cancel', { config: api }, async (request) => {
    const streamId = streamIdOf(request.params.id);
    if (!streamId) throw notFound(request.params.id);
    const owner = await streams.owner(streamId);
    if (owner === null) throw notFound(request.params.id);
    if (owner !== request.summary.limitKey) throw new GatewayError('forbidden', 'This response was created with another key');
    const log = await streams.open(streamId);
    if (!log) throw notFound(request.params.id);
    try {
      const run = runs.get(streamId);
      if (run) {
        // Running here: the generation stops and its encoder writes the end as `cancelled`. Waited for,
        // boundedly: a generation held up by a reader's full socket notices the abort only when it drains.
        const waiter = new EndWaiter(log);
        relay.abort(streamId);
        await waitEnd(waiter, CANCEL_WAIT_MS);
        const response = run.encoder.snapshot();
        return response.status === 'in_progress' ? { ...response, status: 'cancelled' } : response;
      }
      const response = responseInLog(log);
      if (!response) throw notFound(request.params.id);
      // Ended: cancelling changes nothing, and answers it as it is (cancel is idempotent).
      if (log.end) return response;
      // Another replica generates it (Redis): it aborts when asked.
      await streams.requestAbort(streamId);
      return { ...response, status: 'cancelled' };
    } finally {
      log.release();
    }
  });

  /** A response's events after `afterId`, then live ones until its end (resume). */
  async function serveEvents(request: FastifyRequest, reply: FastifyReply, streamId: string, afterId: number): Promise<void> {
    const log = await streams.open(streamId);
    if (!log || !(runs.get(streamId) || isResponseLog(log))) {
      log?.release();
      throw (await unknownReads(request)) ?? notFound(responseId(streamId));
    }
    if (log.end && afterId >= log.finalId) {
      log.release();
      // Nothing after it: the stream ends at once. An SSE body, not 204: the SDKs iterate a body.
      reply.headers({ ...SSE_HEADERS, 'x-stream-id': streamId }).send('');
      return;
    }
    if (!log.end && afterId > log.lastId) {
      log.release();
      throw new GatewayError('invalid_body', `starting_after ${afterId} is ahead of the stream (last sequence_number ${log.lastId})`, { param: 'starting_after' });
    }
    relay.serveReader(reply, log, { style: responsesWire, afterId, headers: { 'x-stream-id': streamId } });
  }

  /** The response object as it stands: running here, the encoder's; otherwise read from its log. */
  async function current(streamId: string): Promise<ResponseObject | null> {
    const run = runs.get(streamId);
    if (run) return run.encoder.snapshot();
    const log = await streams.open(streamId);
    if (!log) return null;
    try {
      return responseInLog(log);
    } finally {
      log.release();
    }
  }
};

async function waitEnd(waiter: EndWaiter, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([waiter.done, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
    waiter.leave();
  }
}

/** `resp_X` for the stream `str_X`. */
function responseId(streamId: string): string {
  return 'resp_' + streamId.slice(4);
}

function streamIdOf(responseId: string): string | null {
  const m = RESPONSE_ID.exec(responseId);
  return m ? 'str_' + m[1]! : null;
}

function notFound(id: string): GatewayError {
  return new GatewayError('response_not_found', `Response with id '${id.slice(0, 80)}' not found (unknown, or expired)`, { param: 'response_id' });
}
