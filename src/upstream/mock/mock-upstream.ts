import type { ChatRequest } from '../../schema/chat-request.js';
import { UpstreamError, type ChatUpstream } from '../types.js';
import { completionObject, mockModelList, planCompletion, type MockSpeed } from './model.js';
import { forever, sleep } from '../../abortable-sleep.js';

/** The built-in mock model, in process: what `npm start` serves with no upstream configured. */
export class MockUpstream implements ChatUpstream {
  readonly name = 'mock';
  readonly continuesAnswers = true;

  constructor(private readonly speed: MockSpeed) {}

  async *stream(req: ChatRequest, signal: AbortSignal): AsyncGenerator<string[]> {
    const plan = planCompletion(req, this.speed);
    const fault = plan.fault;
    if (fault?.kind === 'fail-before') throw new UpstreamError(fault.status, `mock failure ${fault.status}`, this.name);
    if (fault?.kind === 'hang') await forever(signal);
    const chunks = req.stream_options?.include_usage ? [...plan.chunks, plan.usageChunk] : plan.chunks;
    const stopAt = fault && 'after' in fault ? fault.after : Infinity;

    if (plan.firstTokenMs > 0) await sleep(plan.firstTokenMs, signal);
    let i = 0;
    while (i < chunks.length) {
      if (i >= stopAt) {
        if (fault?.kind === 'hang-after') await forever(signal);
        throw new UpstreamError(502, fault?.kind === 'drop-after' ? 'connection reset by upstream' : 'mock failure mid-stream', this.name);
      }
      if (i > 0 && plan.interTokenMs > 0) await sleep(plan.interTokenMs, signal);
      if (signal.aborted) throw signal.reason;
      // Without a delay, hand over what a socket read would: several chunks at once.
      const end = plan.interTokenMs > 0 ? i + 1 : Math.min(chunks.length, stopAt, i + 16);
      yield chunks.slice(i, end);
      i = end;
    }
  }

  async complete(req: ChatRequest, signal: AbortSignal): Promise<Record<string, unknown>> {
    const plan = planCompletion(req, this.speed);
    const fault = plan.fault;
    if (fault?.kind === 'fail-before') throw new UpstreamError(fault.status, `mock failure ${fault.status}`, this.name);
    if (fault?.kind === 'hang') await forever(signal);
    if (plan.firstTokenMs > 0) await sleep(plan.firstTokenMs, signal);
    return completionObject(plan);
  }

  async listModels(): Promise<string[]> {
    return mockModelList().map((m) => m.id);
  }
}
