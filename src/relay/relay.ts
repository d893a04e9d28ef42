import { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyReply } from 'fastify';
import type { Config } from '../config.js';
import { GatewayAbort, fromUpstreamFailure } from '../errors.js';
import type { ChatRequest } from '../schema/chat-request.js';
import { HeartbeatTicker } from '../sse/heartbeat.js';
import { SseWriter, type SseStyle } from '../sse/writer.js';
import type { MemoryStreamStore } from '../streams/memory-store.js';
import type { ReadableLog, StreamLog } from '../streams/stream-log.js';
import type { Target } from '../upstream/catalog.js';
import { FailurePolicy, type AttemptRecord } from './failover.js';
import { Generation } from './generation.js';
import type { StreamSlots } from './stream-slots.js';

export interface RelayDeps {
  config: Config;
  store: MemoryStreamStore;
  slots: StreamSlots;
  secrets: readonly string[];
}

/**
 * The one relay both streaming routes share: upstream batches → stream log
 * (ids) → SSE writer. Routes decide who reads and what ends a stream; they
 * never frame SSE or talk to an upstream themselves.
 */
export class Relay {
  private readonly active = new Set<Generation>();
  /** Generations of POST /v1/streams (and their takeovers): readers expect to resume them. */
  private readonly resumable = new WeakSet<Generation>();
  private readonly heartbeat: HeartbeatTicker;
  readonly failure: FailurePolicy;
  /** Called once per generation when its log has ended (metrics, token budgets). */
  readonly finished: ((gen: Generation) => void)[] = [];

  constructor(private readonly deps: RelayDeps) {
    this.heartbeat = new HeartbeatTicker(deps.config.heartbeatMs);
    this.failure = new FailurePolicy(deps.config.failover);
  }

  close(): void {
    this.heartbeat.stop();
  }

  get activeCount(): number {
    return this.active.size;
  }

  /**
   * Shutdown: every generation still running stops here. A resumable one shared
   * through Redis is handed over (another replica continues it; readers here
   * reconnect there); any other ends with a `shutdown` error event.
   */
  abortAll(): void {
    for (const gen of this.active) {
      if (this.resumable.has(gen) && gen.log.mirror) this.handOver(gen);
      else gen.abort('shutdown');
    }
  }

  private handOver(gen: Generation): void {
    gen.log.handOver();
    // Readers arriving here from now on read the shared record instead.
    this.deps.store.delete(gen.log.id);
    gen.abort('shutdown');
  }

  /** A generation not started yet (takes a concurrency slot: 429 when none is free). */
  prepare(targets: readonly Target[], body: ChatRequest, keyId: string, startedAt: number): Generation {
    return this.create(targets, body, keyId, startedAt);
  }

  /**
   * Starts a generation and waits for its first batch. Throws a GatewayError
   * (502/504 upstream…) while nothing has been committed yet.
   */

  async start(gen: Generation, reply: FastifyReply): Promise<Generation> {
    // Until serve() takes over, a client that leaves must still stop the upstream.
    const onClose = () => gen.abort('client_disconnected');
    reply.raw.once('close', onClose);
    try {
      await gen.open();
    } catch (e) {
      gen.onFinished?.();
      this.deps.store.delete(gen.log.id);
      throw e;
    } finally {
      reply.raw.off('close', onClose);
    }
    void gen.pump();
    return gen;
  }

  /**
   * Starts a generation nobody waits for (POST /v1/streams): failures, even
   * before the first byte, end its log with an error event for readers.
   */
  launch(targets: readonly Target[], body: ChatRequest, keyId: string, startedAt: number): Generation {
    const gen = this.create(targets, body, keyId, startedAt);
    this.resumable.add(gen);
    void gen.run();
    return gen;
  }

  /**
   * Continues a stream another replica started and can no longer finish: `log`
   * holds what it had logged, and `targets` are wrapped to continue that answer.
   */
  resume(targets: readonly Target[], body: ChatRequest, log: StreamLog): Generation {
    const gen = this.create(targets, body, log.ownerKeyId, performance.now(), log);
    this.resumable.add(gen);
    void gen.run();
    return gen;
  }

  /** Another replica writes this stream now (this one lost its lease): stop it here, readers reconnect there. */
  abandon(streamId: string): void {
    for (const gen of this.active) if (gen.log.id === streamId) this.handOver(gen);
  }

  /** Deletes a stream: aborts its upstream. False when no generation runs it here. */
  abort(streamId: string): boolean {
    for (const gen of this.active) {
      if (gen.log.id === streamId) {
        gen.abort('deleted');
        return true;
      }
    }
    return false;
  }

  private create(targets: readonly Target[], body: ChatRequest, keyId: string, startedAt: number, adopted?: StreamLog): Generation {
    const config = this.deps.config;
    const release = this.deps.slots.acquire(keyId);
    const log = adopted ?? this.deps.store.create(keyId);
    const gen = new Generation({
      targets,
      body,
      log,
      failure: this.failure,
      firstByteTimeoutMs: config.upstreamTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      maxDurationMs: config.maxDurationMs,
      clientWantsUsage: body.stream_options?.include_usage === true,
      secrets: this.deps.secrets,
      startedAt,
      maxEvents: this.deps.config.limits.maxEventsPerStream,
    });
    gen.onFinished = () => {
      if (!this.active.delete(gen)) return;
      release();
      for (const f of this.finished) f(gen);
    };
    this.active.add(gen);
    return gen;
  }

  /**
   * Takes over the reply and writes the log to it from `afterId` on.
   * `onClientGone` runs if the client leaves before the end.
   */
  serve(
    reply: FastifyReply,
    log: ReadableLog,
    opts: {
      style: SseStyle;
      afterId: number;
      headers?: Record<string, string>;
      preamble?: string;
      onClientGone?: () => void;
      onEnd?: () => void;
    },
  ): SseWriter {
    reply.hijack();
    const writer = new SseWriter(reply.raw, opts.style, this.heartbeat, this.deps.config.clientStallTimeoutMs);
    writer.open({ ...(reply.getHeaders() as Record<string, string>), ...opts.headers }, opts.preamble);
    writer.onClientGone = () => {
      log.detach(writer);
      opts.onClientGone?.();
    };
    writer.onEnded = opts.onEnd ?? null;
    // Headers, replay and (for an answer already over, as short ones often are by now) its end leave
    // in one write: each write to a socket is a syscall, and on loopback the receiver's work too.
    // HTTP/1 corks the socket, not the response: Node 24's corked ServerResponse holds chunked writes
    // back until uncork(), and an end() meanwhile sends the terminating chunk ahead of them.
    const raw = reply.raw instanceof ServerResponse ? reply.raw.socket : (reply.raw as { cork?: () => void; uncork?: () => void });
    raw?.cork?.();
    log.attach(writer, opts.afterId);
    writer.flush();
    raw?.uncork?.();
    return writer;
  }

  /** `stream: false`: one upstream call (with failover), aborted if the client leaves. */
  async complete(
    targets: readonly Target[],
    body: ChatRequest,
    reply: FastifyReply,
    attempts: AttemptRecord[],
    startedAt: number,
  ): Promise<{ completion: Record<string, unknown>; upstream: string }> {
    const config = this.deps.config;
    const client = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableEnded) client.abort(new GatewayAbort('client_disconnected'));
    };
    reply.raw.once('close', onClose);
    const { stream: _s, stream_options: _o, ...rest } = body;
    try {
      const won = await this.failure.run(targets, client.signal, startedAt + config.upstreamTimeoutMs, attempts, (target, signal) =>
        target.upstream.complete({ ...rest, model: target.model }, signal),
      );
      return { completion: won.value, upstream: won.target.upstream.name };
    } catch (e) {
      throw fromUpstreamFailure(client.signal.aborted ? client.signal.reason : e, this.deps.secrets);
    } finally {
      reply.raw.off('close', onClose);
    }
  }
}
