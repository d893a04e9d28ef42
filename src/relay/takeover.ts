import type { FastifyBaseLogger } from 'fastify';
import { GatewayError } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import type { MemoryStreamStore } from '../streams/memory-store.js';
import { decodeMessage, type RedisStreams } from '../streams/redis-streams.js';
import type { StreamLog } from '../streams/stream-log.js';
import type { ModelCatalog, Target } from '../upstream/catalog.js';
import type { ChatUpstream } from '../upstream/types.js';
import { abortMessage } from './generation.js';
import type { Relay } from './relay.js';

export interface TakeoverDeps {
  relay: Relay;
  store: MemoryStreamStore;
  redis: RedisStreams;
  catalog: ModelCatalog;
  log: FastifyBaseLogger;
}

/** What the dead replica's events say about the answer so far. */
export interface PartialAnswer {
  /** The assistant text so far. */
  content: string;
  /** Content deltas so far (a token estimate for max_tokens). */
  deltas: number;
  /** A tool call was under way: there is no text to continue. */
  toolCall: boolean;
  /** The upstream had finished (only the end event was lost). */
  finishReason: string | null;
}

/**
 * Finishes a stream whose replica died mid-generation (SIGKILL, OOM, lost
 * node). This replica holds the stream's lease now; it rebuilds the log from
 * the shared record and asks the upstream to continue the partial answer — the
 * last assistant message with `continue_final_message: true` (vLLM, SGLang,
 * the mock) — appending the new events after the last id readers have. An
 * upstream that cannot continue gets nothing: the stream ends with a
 * `generation_lost` error, never a silent stop or a second, different answer.
 */
export class Takeover {
  constructor(private readonly deps: TakeoverDeps) {}

  async run(id: string): Promise<void> {
    const { redis, store, log } = this.deps;
    const orphan = await redis.orphan(id).catch(() => null);
    if (!orphan || store.get(id)) {
      // Redis failed us (the next sweep tries again), or it already runs here.
      redis.dropLease(id);
      return;
    }
    const messages = orphan.messages.map(decodeMessage);
    if (messages.some((m) => m?.kind === 'end')) {
      // It ended after all (the end raced the lease check): make sure readers here saw the end.
      redis.dropLease(id);
      redis.replay(id, orphan.messages);
      return;
    }
    const stream = store.create(orphan.owner, id);
    for (const m of messages) if (m?.kind === 'data') stream.restore(Buffer.from(m.text), m.firstId, m.count);
    redis.adopt(stream);

    if (orphan.deleted) {
      stream.finish({ kind: 'error', type: 'deleted', message: abortMessage('deleted') }, Date.now());
      return;
    }
    const request = orphan.request === null ? null : (JSON.parse(orphan.request) as ChatRequest);
    const partial = partialAnswer(stream.framesAfter(0).toString());
    if (partial.finishReason !== null) {
      stream.finish({ kind: 'done', finish_reason: partial.finishReason, usage: null }, Date.now());
      return;
    }
    const targets = request && !partial.toolCall ? this.continuable(request.model) : [];
    if (!request || targets.length === 0) {
      lost(stream, !request ? 'its request was not kept' : partial.toolCall ? 'a tool call was under way' : 'the upstream cannot continue a partial answer');
      return;
    }
    try {
      this.deps.relay.resume(targets, continuationOf(request, partial), stream);
      log.info({ stream_id: id, from_event: stream.lastId + 1 }, 'stream taken over');
    } catch (e) {
      if (e instanceof GatewayError && e.code === 'too_many_streams') {
        // The owner's streams fill this replica's slots now: let the next sweep (or another replica) retry.
        stream.handOver();
        store.delete(id);
        return;
      }
      lost(stream, e instanceof GatewayError ? e.message : 'no generation could be started');
    }
  }

  private continuable(model: string): Target[] {
    let targets: Target[];
    try {
      targets = this.deps.catalog.resolve(model);
    } catch {
      return [];
    }
    return targets.filter((t) => t.upstream.continuesAnswers).map((t) => ({ model: t.model, upstream: new Continuing(t.upstream) }));
  }
}

function lost(stream: StreamLog, why: string): void {
  stream.finish(
    { kind: 'error', type: 'generation_lost', message: `the replica running this stream stopped and it cannot be continued: ${why}` },
    Date.now(),
  );
}

/** The request that continues `partial`: the answer so far as the last assistant message. */
export function continuationOf(request: ChatRequest, partial: PartialAnswer): ChatRequest {
  const body: ChatRequest = {
    ...request,
    messages: [...request.messages, { role: 'assistant', content: partial.content }],
    // vLLM's names; add_generation_prompt must be off for it to continue rather than start a new turn.
    continue_final_message: true,
    add_generation_prompt: false,
  };
  for (const k of ['max_tokens', 'max_completion_tokens'] as const) {
    const max = request[k];
    if (typeof max === 'number') body[k] = Math.max(1, max - partial.deltas);
  }
  return body;
}

/** Reads the framed events (`id:`/`data:` lines) of a chat completion stream. */
export function partialAnswer(framed: string): PartialAnswer {
  const out: PartialAnswer = { content: '', deltas: 0, toolCall: false, finishReason: null };
  for (const line of framed.split('\n')) {
    if (!line.startsWith('data: ')) continue;
    let chunk: { choices?: { delta?: { content?: unknown; tool_calls?: unknown }; finish_reason?: unknown }[] };
    try {
      chunk = JSON.parse(line.slice(6)) as typeof chunk;
    } catch {
      continue;
    }
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    if (typeof choice.delta?.content === 'string' && choice.delta.content !== '') {
      out.content += choice.delta.content;
      out.deltas++;
    }
    if (choice.delta?.tool_calls) out.toolCall = true;
    if (typeof choice.finish_reason === 'string') out.finishReason = choice.finish_reason;
  }
  return out;
}

/** An upstream continuing an answer: its opening role-only chunk would repeat what readers already have. */
class Continuing implements ChatUpstream {
  readonly continuesAnswers = true;
  constructor(private readonly inner: ChatUpstream) {}

  get name(): string {
    return this.inner.name;
  }

  /** Not a for-await: that would drop the inner stream's final value (whether [DONE] came). */
  async *stream(req: ChatRequest, signal: AbortSignal): AsyncGenerator<string[], boolean | void> {
    const inner = this.inner.stream(req, signal)[Symbol.asyncIterator]();
    let first = true;
    let over = false;
    try {
      for (;;) {
        const r = await inner.next();
        if (r.done) {
          over = true;
          return r.value;
        }
        if (!first) {
          yield r.value;
          continue;
        }
        first = false;
        const rest = r.value.filter((c) => !isRoleOnly(c));
        if (rest.length > 0) yield rest;
      }
    } finally {
      // Left early (our return(), or a failure): stop the inner stream, as for-await would.
      if (!over) await inner.return?.();
    }
  }

  complete(req: ChatRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    return this.inner.complete(req, signal);
  }

  listModels(signal: AbortSignal): Promise<string[]> {
    return this.inner.listModels(signal);
  }
}

function isRoleOnly(chunk: string): boolean {
  try {
    const c = JSON.parse(chunk) as { choices?: { delta?: Record<string, unknown>; finish_reason?: unknown }[] };
    const choice = c.choices?.[0];
    if (!choice || c.choices!.length !== 1 || choice.finish_reason) return false;
    const delta = choice.delta ?? {};
    return Object.keys(delta).every((k) => k === 'role' || (k === 'content' && !delta.content));
  } catch {
    return false;
  }
}
