import { EventEmitter, once } from 'node:events';
import type { FastifyInstance } from 'fastify';

/** Responses still open (streams included), so a drain knows when the last one ended. */
export class Inflight extends EventEmitter {
  count = 0;

  register(app: FastifyInstance): void {
    // A callback hook, not an async one: no promise per request.
    app.addHook('onRequest', (_request, reply, done) => {
      this.count++;
      reply.raw.once('close', this.onClose);
      done();
    });
  }

  private readonly onClose = (): void => {
    if (--this.count === 0) this.emit('idle');
  };

  /** Resolves true once nothing is in flight, false if `ms` passed first. */
  async idle(ms: number): Promise<boolean> {
    if (this.count === 0) return true;
    const timeout = AbortSignal.timeout(ms);
    try {
      await once(this, 'idle', { signal: timeout });
      return true;
    } catch {
      return this.count === 0;
    }
  }
}
