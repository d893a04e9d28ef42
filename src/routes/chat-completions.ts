import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../config.js';
import type { Relay } from '../relay/relay.js';
import { tokensUsed, type TokenBudget } from '../relay/token-budget.js';
import { promptChars } from '../schema/chat-request.js';
import { chatIntake } from './chat-intake.js';
import type { Usage } from '../streams/stream-log.js';
import type { ModelCatalog } from '../upstream/catalog.js';

export interface ChatRouteOptions {
  config: Config;
  relay: Relay;
  catalog: ModelCatalog;
  budget: TokenBudget;
}

/** POST /v1/chat/completions: OpenAI-compatible, JSON or SSE. */
export const chatCompletionsRoutes: FastifyPluginAsync<ChatRouteOptions> = async (app, { config, relay, catalog, budget }) => {
  const intake = chatIntake(config, catalog, budget);

  app.post('/v1/chat/completions', { config: { api: 'chat' } }, async (request, reply) => {
    const summary = request.summary;
    const { body, targets } = await intake(request);

    if (!body.stream) {
      const { completion, upstream } = await relay.complete(targets, body, reply, summary.attempts, summary.startedAt);
      summary.upstream = upstream;
      summary.usage = (completion.usage as Usage | undefined) ?? null;
      // Counted before the answer leaves: the key's next request (on any replica) sees these tokens.
      await budget.record(summary.limitKey, tokensUsed(summary.usage, promptChars(body), 0)).catch(() => {});
      return completion;
    }

    await relay.streamTo(
      request,
      reply,
      { targets, body, keyId: summary.limitKey, startedAt: summary.startedAt },
      // CHAT_RESUME_GRACE_MS=0: the upstream is aborted the moment the client leaves.
      { style: 'openai', graceMs: config.chatResumeGraceMs, noReader: 'client_disconnected' },
    );
    return reply;
  });
};
