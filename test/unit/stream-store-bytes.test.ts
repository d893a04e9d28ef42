import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import t from 'tap';
import { FramedBatches } from '../../src/streams/framed-batches.js';
import { MemoryStreamStore } from '../../src/streams/memory-store.js';
import type { StreamLog } from '../../src/streams/stream-log.js';

const done = { kind: 'done', finish_reason: 'stop', usage: null } as const;

/** `n` events of exactly `size` bytes each, appended one batch per event. */
function fill(log: StreamLog, n: number, size = 100): void {
  for (let i = 0; i < n; i++) {
    const id = log.lastId + 1;
    const head = `id: ${id}\ndata: `;
    log.appendFramed(Buffer.from(head + 'x'.repeat(size - head.length - 2) + '\n\n'), 1);
  }
}

function storeOf(maxBytes: number, maxStreams = 1000, now: () => number = () => 0): MemoryStreamStore {
  const store = new MemoryStreamStore({ ttlMs: 60_000, maxStreams, maxBytes }, now);
  t.teardown(() => store.close());
  return store;
}

t.test('past the byte bound the stream that ended first goes first', async (t) => {
  const store = storeOf(300);
  const [a, b, c, d] = [store.create('k'), store.create('k'), store.create('k'), store.create('k')];
  for (const log of [a, b, c, d]) fill(log, 1);
  c.finish(done, 0);
  a.finish(done, 0);
  b.finish(done, 0);
  t.equal(store.finishedBytes, 300);
  t.equal(store.finishedCount, 3);
  d.finish(done, 0);
  t.equal(store.get(c.id), undefined, 'the first to end went, though created after two others');
  t.ok(store.get(a.id) && store.get(b.id) && store.get(d.id), 'the three that ended after it stay');
  t.equal(store.finishedBytes, 300);
  t.equal(store.finishedCount, 3);
  const big = store.create('k');
  fill(big, 2);
  big.finish(done, 0);
  t.equal(store.get(a.id), undefined, 'a stream of 200 bytes makes room by two');
  t.equal(store.get(b.id), undefined);
  t.ok(store.get(d.id) && store.get(big.id));
  t.equal(store.finishedBytes, 300);
  const huge = store.create('k');
  fill(huge, 4);
  huge.finish(done, 0);
  t.equal(store.get(huge.id), undefined, 'a stream larger than the bound is not kept at all');
  t.ok(store.get(d.id) && store.get(big.id), 'and makes no room for itself');
  t.equal(store.finishedBytes, 300);
  t.equal(store.finishedCount, 2);
});

t.test('running streams are never evicted, whatever they hold', async (t) => {
  const store = storeOf(150);
  const running = store.create('k');
  fill(running, 50);
  for (let i = 0; i < 20; i++) {
    const log = store.create('k');
    fill(log, 1);
    log.finish(done, 0);
  }
  t.equal(store.get(running.id), running, 'a running stream of 5,000 bytes stays under a bound of 150');
  t.equal(store.finishedCount, 1, 'the last one to end is kept (100 bytes fit)');
  t.equal(store.finishedBytes, 100, 'a running stream is not counted');
  running.finish(done, 0);
  t.equal(store.get(running.id), undefined, 'once ended it is over the bound alone, and goes');
  t.equal(store.size, 1);
});

t.test('STREAM_STORE_MAX_BYTES=0 keeps no ended stream, not even one with no events', async (t) => {
  const store = storeOf(0);
  const empty = store.create('k');
  const full = store.create('k');
  fill(full, 3);
  const running = store.create('k');
  fill(running, 3);
  empty.finish({ kind: 'error', type: 'upstream_error', message: 'x' }, 0);
  full.finish(done, 0);
  t.equal(store.get(empty.id), undefined);
  t.equal(store.get(full.id), undefined);
  t.equal(store.get(running.id), running, 'a running stream is kept');
  t.equal(store.finishedBytes, 0);
  t.equal(store.finishedCount, 0);
});

t.test('the byte count stays exact through ends, deletes, expiry and the count bound', async (t) => {
  let now = 0;
  const store = storeOf(5_000, 40, () => now);
  const all = new Set<StreamLog>();
  const running: StreamLog[] = [];
  // A fixed pseudo-random walk: every path (end, delete, expire, count eviction) many times over.
  let seed = 7;
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const expected = () => {
    let bytes = 0;
    let count = 0;
    for (const log of all) {
      if (log.end && store.get(log.id) === log) {
        bytes += log.bytes;
        count++;
      }
    }
    return { bytes, count };
  };
  for (let step = 0; step < 3000; step++) {
    const op = next(10);
    if (op < 4 || running.length === 0) {
      const log = store.create('k');
      fill(log, 1 + next(5), 50 + next(100));
      all.add(log);
      running.push(log);
    } else if (op < 8) {
      running.splice(next(running.length), 1)[0]!.finish(done, now);
    } else if (op === 8) {
      const logs = [...all];
      store.delete(logs[next(logs.length)]!.id);
    } else {
      now += 7_000;
      store.sweep();
    }
    if (running.length > 30) running.shift()!.finish(done, now);
    const want = expected();
    if (store.finishedBytes !== want.bytes || store.finishedCount !== want.count) {
      t.fail(`step ${step}: counted ${store.finishedBytes} bytes / ${store.finishedCount}, kept ${want.bytes} / ${want.count}`);
      return;
    }
    if (store.finishedBytes > 5_000) {
      t.fail(`step ${step}: ${store.finishedBytes} bytes kept, over the bound`);
      return;
    }
  }
  t.ok(expected().count > 0, 'the walk kept some streams');
});

t.test('a stream dropped before its end (a failed start, a hand-over) is not counted when it ends', async (t) => {
  const store = storeOf(1000);
  const log = store.create('k');
  fill(log, 2);
  store.delete(log.id);
  log.finish(done, 0);
  t.equal(store.finishedBytes, 0);
  t.equal(store.finishedCount, 0);
  t.equal(store.get(log.id), undefined);
});

t.test('a kept stream holds its bytes in one Buffer of their size; replay from any id is unchanged', async (t) => {
  const store = storeOf(1 << 20);
  const log = store.create('k');
  // Small batches, as a fast upstream gives them: each a slice of an 8 KB pool slab.
  const frame = (i: number) => `id: ${i}\ndata: {"n":${i},"c":"é😀${'y'.repeat(i % 9)}"}\n\n`;
  let id = 0;
  for (let b = 0; b < 200; b++) {
    const n = 1 + (b % 4);
    let text = '';
    for (let k = 0; k < n; k++) text += frame(++id);
    log.appendFramed(Buffer.from(text), n);
  }
  const before = Array.from({ length: id + 1 }, (_, k) => log.framesAfter(k).toString());
  t.equal(log.framesAfter(id - 1).buffer.byteLength, Buffer.poolSize, 'while running, the last batch is a slice of a pool slab');
  log.finish(done, 0);
  const whole = log.framesAfter(0);
  t.equal(whole.length, log.bytes);
  t.equal(log.framesAfter(id - 1).buffer.byteLength, log.bytes, 'once kept, no pool slab behind any of it');
  t.equal(store.finishedBytes, log.bytes);
  for (let k = 0; k <= id; k++) {
    if (log.framesAfter(k).toString() !== before[k]) {
      t.fail(`replay after ${k} changed`);
      return;
    }
  }
  t.equal(log.framesAfter(id).length, 0);
  t.equal(log.framesAfter(id + 5).length, 0);
  t.equal(log.framesAfter(17).buffer, whole.buffer, 'a replay is a view, not a copy');
});

t.test('a dropped stream is not kept reachable by the store (its events can be collected)', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const store = storeOf(1000);
  const dropped: WeakRef<StreamLog>[] = [];
  // Far fewer than the 1,024 slots the queue keeps before it shortens itself.
  for (let i = 0; i < 50; i++) {
    const log = store.create('k');
    fill(log, 5);
    log.finish(done, 0);
    dropped.push(new WeakRef(log));
  }
  const kept = store.finishedCount;
  await new Promise((r) => setImmediate(r));
  gc();
  await new Promise((r) => setImmediate(r));
  gc();
  const alive = dropped.filter((w) => w.deref() !== undefined).length;
  t.equal(alive, kept, `only the ${kept} kept streams are still alive (${alive})`);
});

t.test('compacted frames that grow again still replay from any id', async (t) => {
  const events = new FramedBatches();
  const frame = (i: number) => `id: ${i}\ndata: {"n":${i}}\n\n`;
  events.push(Buffer.from(frame(1) + frame(2)), 1, 2);
  events.push(Buffer.from(frame(3)), 3, 1);
  events.compact();
  events.push(Buffer.from(frame(3) + frame(4) + frame(5)), 3, 3);
  const all = [1, 2, 3, 4, 5].map(frame).join('');
  t.equal(events.bytes, Buffer.byteLength(all), 'the overlap is not counted twice');
  for (let k = 0; k <= 5; k++) t.equal(events.framesAfter(k).toString(), all.slice(k === 5 ? all.length : all.indexOf(`id: ${k + 1}\n`)), `after ${k}`);
});
