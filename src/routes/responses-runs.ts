import type { Relay } from '../relay/relay.js';
import type { Generation } from '../relay/generation.js';
import type { ResponsesEncoder } from '../dialects/responses/stream-encoder.js';
import type { ResponseObject } from '../dialects/responses/response-object.js';
import type { LogReader, ReadableLog } from '../streams/stream-log.js';

/** A response this replica is generating. */
export interface Run {
  readonly encoder: ResponsesEncoder;
  /** Called once with the final object when it completed (or stopped at a limit): keeps it for continuation. */
  readonly onEnded: ((final: ResponseObject) => void) | null;
}

/**
 * The responses being generated here, by stream id: GET answers their
 * encoder's snapshot, cancel aborts them. An entry lives exactly as long as
 * its generation (bounded by the concurrency limits), never longer.
 */
export class Runs {
  private readonly runs = new Map<string, Run>();

  constructor(relay: Relay) {
    relay.finished.push(this.onFinished);
  }

  add(streamId: string, run: Run): void {
    this.runs.set(streamId, run);
  }

  get(streamId: string): Run | undefined {
    return this.runs.get(streamId);
  }

  private readonly onFinished = (gen: Generation): void => {
    const run = this.runs.get(gen.log.id);
    if (!run) return;
    this.runs.delete(gen.log.id);
    if (!gen.log.end) return; // it never started (its POST answered the error)
    const final = run.encoder.snapshot();
    if (final.status === 'completed' || final.status === 'incomplete') run.onEnded?.(final);
  };
}

/**
 * Waits for a log's end as one of its readers, which also keeps a generation
 * that stops without readers going while someone waits for its answer.
 */
export class EndWaiter implements LogReader {
  /** 'end' when the log ended, 'moved' when another replica continues it, 'left' when the waiter left first. */
  readonly done: Promise<'end' | 'moved' | 'left'>;
  private settle!: (how: 'end' | 'moved' | 'left') => void;

  constructor(private readonly log: ReadableLog) {
    this.done = new Promise((resolve) => (this.settle = resolve));
    // From its last id on: nothing to replay.
    log.attach(this, log.lastId);
  }

  leave(): void {
    this.log.detach(this);
    this.settle('left');
  }

  onFrames(): void {}

  onEnd(): void {
    this.settle('end');
  }

  onMoved(): void {
    this.settle('moved');
  }

  congestion(): null {
    return null;
  }
}
