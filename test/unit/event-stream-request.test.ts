import t from 'tap';
import type { Dispatcher } from 'undici';
import type { BodySink } from '../../src/sse/batch-reader.js';
import { EventStreamRequest, StreamRefusal } from '../../src/upstream/event-stream-request.js';

/** What undici's side of a dispatch looks like to the handler: a controller, and how often the request was let go. */
function dispatch(signal = new AbortController().signal) {
  const calls: string[] = [];
  let done = 0;
  const controller = {
    aborted: false,
    paused: false,
    reason: null,
    abort: (reason: Error) => void calls.push(`abort:${reason.message}`),
    pause: () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
  } as Dispatcher.DispatchController;
  const req = new EventStreamRequest(signal, () => done++);
  return { req, controller, calls, done: () => done };
}

function recorder(): BodySink & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    onData: (c) => seen.push(`data:${c.toString()}`),
    onEnd: () => seen.push('end'),
    onError: (e) => seen.push(`error:${(e as Error).message}`),
  };
}

const SSE = { 'content-type': 'text/event-stream; charset=utf-8' };

t.test('reads that arrive before the reader attaches are handed over first, in order, then the end', async (t) => {
  const { req, controller, done } = dispatch();
  req.onRequestStart(controller);
  req.onResponseStart(controller, 200, SSE);
  const body = await req.response;
  req.onResponseData(controller, Buffer.from('a'));
  req.onResponseData(controller, Buffer.from('b'));
  req.onResponseEnd();
  const sink = recorder();
  body.attach(sink);
  t.same(sink.seen, ['data:a', 'data:b', 'end']);
  t.equal(done(), 1, 'the connection was let go once');
});

t.test('a non-event-stream answer is a StreamRefusal carrying status, body and Retry-After', async (t) => {
  for (const [status, headers] of [
    [429, { 'content-type': 'application/json', 'retry-after': '3' }],
    [200, { 'content-type': 'application/json' }],
  ] as const) {
    const { req, controller, done } = dispatch();
    req.onRequestStart(controller);
    req.onResponseStart(controller, 100, {}); // 1xx first: not the answer
    req.onResponseStart(controller, status, headers);
    req.onResponseData(controller, Buffer.from('{"error":{"mess'));
    req.onResponseData(controller, Buffer.from('age":"slow down"}}'));
    req.onResponseEnd();
    const e = await req.response.then(
      () => null,
      (err: unknown) => err,
    );
    t.ok(e instanceof StreamRefusal, `${status}: refused`);
    t.equal((e as StreamRefusal).status, status);
    t.equal((e as StreamRefusal).body, '{"error":{"message":"slow down"}}');
    t.equal((e as StreamRefusal).retryAfter, status === 429 ? '3' : undefined);
    t.equal(done(), 1);
  }
});

t.test('an abort before the headers rejects at once with the signal\'s reason, and reaches undici when it starts the request', async (t) => {
  const ac = new AbortController();
  const { req, controller, calls } = dispatch(ac.signal);
  const reason = new Error('first-byte timeout');
  ac.abort(reason);
  await t.rejects(req.response, reason);
  // Still connecting when the signal fired: undici hands over the controller only now.
  req.onRequestStart(controller);
  t.same(calls, ['abort:first-byte timeout']);
});

t.test('an abort mid-stream reaches the waiting reader at once, and nothing after it does', async (t) => {
  const ac = new AbortController();
  const { req, controller, calls, done } = dispatch(ac.signal);
  req.onRequestStart(controller);
  req.onResponseStart(controller, 200, SSE);
  const body = await req.response;
  const sink = recorder();
  body.attach(sink);
  req.onResponseData(controller, Buffer.from('x'));
  ac.abort(new Error('client left'));
  t.same(sink.seen, ['data:x', 'error:client left'], 'the reader learns without waiting for undici');
  t.same(calls, ['abort:client left']);
  // undici reports the abort back, and late bytes may still be in flight: neither reaches the reader.
  req.onResponseData(controller, Buffer.from('late'));
  req.onResponseError(controller, new Error('client left'));
  t.same(sink.seen, ['data:x', 'error:client left']);
  t.equal(done(), 1);
  body.destroy();
  t.same(calls, ['abort:client left'], 'a second cut is a no-op');
});

t.test('a transport failure after the headers reaches the reader, also when it attaches later', async (t) => {
  const { req, controller } = dispatch();
  req.onRequestStart(controller);
  req.onResponseStart(controller, 200, SSE);
  const body = await req.response;
  req.onResponseData(controller, Buffer.from('y'));
  req.onResponseError(controller, new Error('other side closed'));
  const sink = recorder();
  body.attach(sink);
  t.same(sink.seen, ['data:y', 'error:other side closed']);
});

t.test('pause and resume go to undici; a destroy after the end cuts nothing', async (t) => {
  const { req, controller, calls } = dispatch();
  req.onRequestStart(controller);
  req.onResponseStart(controller, 200, SSE);
  const body = await req.response;
  body.attach(recorder());
  body.pause();
  body.resume();
  req.onResponseEnd();
  body.destroy();
  t.same(calls, ['pause', 'resume']);
});
