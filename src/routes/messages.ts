import type { FastifyPluginAsync } from 'fastify';
import { newMessageId } from '../dialects/messages/message.js';
import { countTokensSchema, messagesRequestSchema } from '../dialects/messages/request.js';
import { countTokens, errorBody, messageBody, type MessageMeta } from '../dialects/messages/response-body.js';
import { MessagesEncoder } from '../dialects/messages/stream-encoder.js';
import { toChatRequest } from '../dialects/messages/to-chat-request.js';
import { estimateInputTokens } from '../dialects/messages/token-estimate.js';
import { messagesWire } from '../dialects/messages/wire.js';
import { tokensUsed } from '../relay/token-budget.js';
import { promptChars } from '../schema/chat-request.js';
import { validateBody } from '../schema/validate.js';
import type { Usage } from '../streams/stream-log.js';
import type { ChatRouteOptions } from './chat-completions.js';
import { resolveModel } from './resolve-model.js';

/** Every answer before a stream (400, 401, 404, 429, 502…) in Anthropic's error shape; the log line names the API. */
const MESSAGES = { config: { api: 'messages' as const, errorBody } };

/**
 * POST /v1/messages (Anthropic Messages, JSON or SSE) and
 * POST /v1/messages/count_tokens, on top of the upstream's chat completions.
 * Claude Code calls `/v1/messages?beta=true`: the query changes nothing here.
 * `anthropic-version` and `anthropic-beta` are accepted and not required:
 * what the gateway cannot honour is refused by the body's schema, by field.
 */
export const messagesRoutes: FastifyPluginAsync<ChatRouteOptions> = async (app, { config, relay, catalog, budget }) => {
  const schema = messagesRequestSchema(config.limits);
  const countSchema = countTokensSchema(config.limits);

  app.post('/v1/messages', MESSAGES, async (request, reply) => {
    const summary = request.summary;
    const body = validateBody(schema, request.body);
    const targets = resolveModel(catalog, request, body.model);
    await budget.check(summary.limitKey);
    const chat = toChatRequest(body);
    const meta: MessageMeta = {
      id: newMessageId(),
      model: body.model,
      stopSequences: body.stop_sequences ?? [],
      inputTokens: estimateInputTokens(chat),
    };

    if (!body.stream) {
      const { completion, upstream } = await relay.complete(targets, chat, reply, summary.attempts, summary.startedAt);
      summary.upstream = upstream;
      summary.usage = (completion.usage as Usage | undefined) ?? null;
      // Counted before the answer leaves: the key's next request (on any replica) sees these tokens.
      await budget.record(summary.limitKey, tokensUsed(summary.usage, promptChars(chat), 0)).catch(() => {});
      return messageBody(completion, meta);
    }

    await relay.streamTo(
      request,
      reply,
      { targets, body: chat, keyId: summary.limitKey, startedAt: summary.startedAt, encoder: () => new MessagesEncoder(meta) },
      // As chat completions: CHAT_RESUME_GRACE_MS=0 aborts the upstream the moment the client leaves.
      { style: messagesWire, graceMs: config.chatResumeGraceMs, noReader: 'client_disconnected' },
    );
    return reply;
  });

  // No upstream call (chat completions cannot count): the gateway's estimate. Rate limited like any
  // request; no token budget check, since counting spends none.
  app.post('/v1/messages/count_tokens', MESSAGES, async (request) => {
    const body = validateBody(countSchema, request.body);
    resolveModel(catalog, request, body.model);
    return countTokens(body);
  });
};
