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
  t.same(await reader.next(), { value: true, done: true }, 'the end says [DONE] came');
});

t.test('end: true after [DONE] (however the JSON is spaced), nothing when the body just ends', async (t) => {
  const marked = new FakeBody();
  const a = new SseBatchReader(marked, new BatchSink('test'), (e) => e);
  const pending = a.next();
  marked.read('data: {"choices": [], "usage": {"prompt_tokens": 1}}\n\ndata: [DONE]\n\n');
  t.same(await pending, { value: ['{"choices": [], "usage": {"prompt_tokens": 1}}'], done: false });
  t.same(await a.next(), { value: true, done: true });
  t.same(await a.next(), { value: true, done: true }, 'and again on a further pull');

  const plain = new FakeBody();
  const b = new SseBatchReader(plain, new BatchSink('test'), (e) => e);
  plain.read('data: {"n": 1}\n\n');
  t.same(await b.next(), { value: ['{"n": 1}'], done: false });
  const end = b.next();
  plain.sink!.onEnd();
  t.same(await end, { value: undefined, done: true }, 'closed without [DONE]: no end marker');
});

t.test('an in-band error in any JSON style fails the pull', async (t) => {
  for (const data of ['{"error":{"message":"boom"}}', '{"error": {"message": "boom"}}', '{\ndata:  "error": "boom"\ndata: }']) {
    const body = new FakeBody();
    const reader = new SseBatchReader(body, new BatchSink('test'), (e) => e);
    body.read(`data: ${data}\n\n`);
    await t.rejects(reader.next(), { message: 'boom' }, JSON.stringify(data));
    t.ok(body.destroyed, 'the body is cut');
  }
});
