import t from 'tap';
import { SseBatchReader, type BodySink, type PushedBody } from '../../src/sse/batch-reader.js';
import { BatchSink } from '../../src/upstream/openai.js';

/** A body as undici's handler drives it: reads arrive while not paused; a resume hands over what was held, at once. */
class FakeBody implements PushedBody {
  sink: BodySink | null = null;
  paused = false;
  destroyed = false;
  private held: Buffer[] = [];
  attach(sink: BodySink): void {
    this.sink = sink;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const c of held) this.sink!.onData(c);
  }
  destroy(): void {
    this.destroyed = true;
  }
  read(text: string): void {
    if (this.paused) this.held.push(Buffer.from(text));
    else this.sink!.onData(Buffer.from(text));
  }
}

/** What `p` has settled with by the time the event loop turns once; 'pending' if nothing yet. */
function settledNow<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

t.test('pull: what a resume hands over at once is what that pull gets (not left for a later read)', async (t) => {
  const body = new FakeBody();
  const reader = new SseBatchReader(body, new BatchSink('test'), (e) => e);
  body.read('data: {"n":1}\n\n');
  t.ok(body.paused, 'nobody pulled: the upstream is held');
  body.read('data: {"n":2}\n\n');
  t.same(await reader.next(), { value: ['{"n":1}'], done: false });
  t.same(await settledNow(reader.next()), { value: ['{"n":2}'], done: false }, 'the held read, at once');
  const third = reader.next();
  body.read('data: {"n":3}\n\ndata: [DONE]\n\n');
  t.same(await third, { value: ['{"n":3}'], done: false });
  t.same(await reader.next(), { value: undefined, done: true });
});
