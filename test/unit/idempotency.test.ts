import t from 'tap';
import { IdempotencyKeys, MemoryKeyRecords, canonicalJson, type Reservation } from '../../src/relay/idempotency.js';

t.test('canonicalJson: equal JSON gives equal text, whatever the key order', async (t) => {
  const a = JSON.parse('{"b": [1, {"y": 2, "x": 1.0}], "a": "s", "c": null}');
  const b = JSON.parse('{"c":null,"a":"s","b":[1,{"x":1,"y":2}]}');
  t.equal(canonicalJson(a), canonicalJson(b));
  t.equal(canonicalJson(a), '{"a":"s","b":[1,{"x":1,"y":2}],"c":null}');
  t.not(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }), 'array order counts');
  t.not(canonicalJson({ a: '1' }), canonicalJson({ a: 1 }));
});

t.test('MemoryKeyRecords: reserve is first come, first served; bounded in count (oldest first) and in time', async (t) => {
  let now = 0;
  const r = new MemoryKeyRecords(3, () => now);
  t.equal(await r.reserve('a', 'A', 100), null);
  t.equal(await r.reserve('a', 'A2', 100), 'A', 'the holder answers');
  t.equal(await r.swap('a', 'X', 'A3', 100), false, 'a swap from the wrong value');
  t.equal(await r.swap('a', 'A', 'A3', 100), true);
  t.equal(await r.get('a'), 'A3');
  await r.reserve('b', 'B', 100);
  await r.reserve('c', 'C', 100);
  await r.reserve('d', 'D', 100);
  t.equal(r.size, 3);
  t.equal(await r.get('a'), null, 'the oldest went first');
  t.equal(await r.get('d'), 'D');
  now = 101;
  t.equal(await r.get('b'), null, 'expired');
  t.equal(await r.reserve('b', 'B2', 100), null, 'an expired record frees its key');
  t.equal(await r.swap('b', 'B2', null, 100), true);
  t.equal(await r.get('b'), null, 'deleted');
});

t.test('claim: attach to a live stream, wait on a pending one, forget a gone one', async (t) => {
  const records = new MemoryKeyRecords(100);
  const keys = new IdempotencyKeys(records, { ttlMs: 60_000, waitMs: 5_000 });
  const kept = new Set<string>();
  const exists = async (id: string) => kept.has(id);

  const first = (await keys.claim('caller', 'k', 'body-1', exists)) as Reservation;
  t.equal(first.attached, false);
  // A duplicate while the first is still opening waits for it…
  const waiting = keys.claim('caller', 'k', 'body-1', exists);
  // …another body is refused at once.
  await t.rejects(keys.claim('caller', 'k', 'body-2', exists), { code: 'idempotency_key_reused' });
  kept.add(first.id);
  await first.live();
  t.same(await waiting, { attached: true, id: first.id });
  t.same(await keys.claim('caller', 'k', 'body-1', exists), { attached: true, id: first.id });
  t.equal((await keys.claim('other-caller', 'k', 'body-2', exists)).attached, false, 'per caller');

  // The stream is no longer kept: the key is forgotten with it, whatever the body.
  kept.delete(first.id);
  const again = (await keys.claim('caller', 'k', 'body-2', exists)) as Reservation;
  t.equal(again.attached, false);
  t.not(again.id, first.id);

  // A failure before the first byte frees the key: a waiting duplicate starts anew.
  const dup = keys.claim('caller', 'k', 'body-2', exists);
  await again.release();
  const next = (await dup) as Reservation;
  t.equal(next.attached, false);
  t.not(next.id, again.id);
});
