import t from 'tap';
import { MemoryStreamStore, newStreamId } from '../../src/streams/memory-store.js';

t.test('ids: 128 random bits, URL-safe, never repeated', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) seen.add(newStreamId());
  t.equal(seen.size, 5000);
  for (const id of seen) t.match(id, /^str_[A-Za-z0-9_-]{22}$/);
});

t.test('finished streams expire; the store returns to empty', async (t) => {
  let now = 1_000;
  const store = new MemoryStreamStore({ ttlMs: 60_000, maxStreams: 100_000, maxBytes: 1 << 30 }, () => now);
  t.teardown(() => store.close());
  const ids: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const log = store.create('k');
    log.appendFramed(Buffer.from(`id: 1\ndata: {"i":${i}}\n\n`), 1);
    log.finish({ kind: 'done', finish_reason: 'stop', usage: null }, now);
    ids.push(log.id);
  }
  const running = store.create('k');
  t.equal(store.size, 3001);
  now += 59_000;
  store.sweep();
  t.equal(store.size, 3001, 'nothing expires before its time');
  now += 2_000;
  t.equal(store.get(ids[0]!), undefined, 'an expired stream reads as unknown');
  store.sweep();
  t.equal(store.size, 1, 'only the running stream is left');
  t.equal(store.get(running.id), running, 'a running stream never expires');
  running.finish({ kind: 'done', finish_reason: 'stop', usage: null }, now);
  now += 60_001;
  store.sweep();
  t.equal(store.size, 0);
});

t.test('at the stream limit the oldest finished stream makes room', async (t) => {
  const store = new MemoryStreamStore({ ttlMs: 60_000, maxStreams: 3, maxBytes: 1 << 30 }, () => 0);
  t.teardown(() => store.close());
  const a = store.create('k');
  const b = store.create('k');
  const c = store.create('k');
  a.finish({ kind: 'done', finish_reason: 'stop', usage: null }, 0);
  store.create('k');
  t.equal(store.size, 3);
  t.equal(store.get(a.id), undefined, 'the finished one went');
  t.ok(store.get(b.id) && store.get(c.id), 'running ones stay');
});

t.test('a full store makes room with the stream that ended first; running streams are never evicted', async (t) => {
  const store = new MemoryStreamStore({ ttlMs: 60_000, maxStreams: 4, maxBytes: 1 << 30 }, () => 0);
  t.teardown(() => store.close());
  const done = { kind: 'done', finish_reason: 'stop', usage: null } as const;
  const [a, b, c, d] = [store.create('k'), store.create('k'), store.create('k'), store.create('k')];
  c.finish(done, 0);
  a.finish(done, 0);
  const e = store.create('k');
  t.equal(store.get(c.id), undefined, 'the first to end went, though created after another that ended');
  t.ok(store.get(a.id), 'the second to end stays');
  store.delete(a.id); // gone already: a later eviction must not count it as room made
  const f = store.create('k');
  b.finish(done, 0);
  const g = store.create('k');
  t.equal(store.get(b.id), undefined, 'the next eviction skips the deleted one and takes the next to end');
  t.equal(store.size, 4);
  const h = store.create('k');
  t.equal(store.size, 5, 'with every stream running, the store holds them all rather than cut one');
  for (let i = 0; i < 3000; i++) store.create('k').finish(done, 0);
  t.equal(store.size, 6, 'churn through thousands of streams: the running five and the last one finished');
  t.ok([d, e, f, g, h].every((x) => store.get(x.id) === x), 'running streams outlive the churn');
});

t.test('replay from any id inside a batch', async (t) => {
  const store = new MemoryStreamStore({ ttlMs: 1000, maxStreams: 10, maxBytes: 1 << 30 });
  t.teardown(() => store.close());
  const log = store.create('k');
  // Multi-byte text: the kept frames are bytes, and a replay must cut them at a frame, not a character count.
  const frame = (i: number) => `id: ${i}\ndata: {"n":${i},"c":"é😀"}\n\n`;
  log.appendFramed(Buffer.from(frame(1) + frame(2) + frame(3)), 3);
  log.appendFramed(Buffer.from(frame(4)), 1);
  log.appendFramed(Buffer.from(frame(5) + frame(6)), 2);
  const all = [1, 2, 3, 4, 5, 6].map(frame).join('');
  for (let k = 0; k <= 6; k++) t.equal(log.framesAfter(k).toString(), all.slice(all.indexOf(`id: ${k + 1}\n`) === -1 ? all.length : all.indexOf(`id: ${k + 1}\n`)), `after ${k}`);
  t.equal(log.framesAfter(6).length, 0);
});

t.test('kept frames: replay from any id after the log grew many times; bytes handed out before a growth stay intact', async (t) => {
  const store = new MemoryStreamStore({ ttlMs: 1000, maxStreams: 10, maxBytes: 1 << 30 });
  t.teardown(() => store.close());
  const log = store.create('k');
  const frame = (i: number) => `id: ${i}\ndata: {"n":${i},"t":"${'é😀x'.repeat(i % 7)}"}\n\n`;
  const written: { bytes: Buffer; text: string }[] = [];
  log.attach(
    {
      onFrames: (bytes) => written.push({ bytes, text: bytes.toString() }),
      onEnd: () => {},
      onMoved: () => {},
      congestion: () => null,
    },
    0,
  );
  let id = 0;
  for (let b = 0; b < 300; b++) {
    const n = 1 + (b % 5);
    let text = '';
    for (let k = 0; k < n; k++) text += frame(++id);
    log.appendFramed(Buffer.from(text), n);
  }
  t.ok(written.every((w) => w.bytes.toString() === w.text), 'what a reader was given is unchanged after later growth');
  const all = written.map((w) => w.text).join('');
  for (const k of [0, 1, 2, 17, 450, id - 1, id]) {
    const at = all.indexOf(`id: ${k + 1}\n`);
    t.equal(log.framesAfter(k).toString(), at === -1 ? '' : all.slice(at), `after ${k}`);
  }
  log.finish({ kind: 'done', finish_reason: 'stop', usage: null }, Date.now());
  t.equal(log.framesAfter(0).toString(), all, 'all of it after the end (and the trim)');
});
