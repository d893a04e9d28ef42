import t from 'tap';
import { KeptResponses } from '../../src/dialects/responses/kept-responses.js';
import { functionCallItem, itemId, messageItem } from '../../src/dialects/responses/response-object.js';
import type { ChatMessage } from '../../src/dialects/responses/to-chat.js';

const conv = (text: string): ChatMessage[] => [{ role: 'user', content: text }];
const out = (id: string, text: string) => [messageItem(itemId(id, 'msg', 0), text, 'completed'), functionCallItem(itemId(id, 'fc', 1), 'call_1', 'f', '{}', 'completed')];

t.test('bounded in count: the oldest go first', async (t) => {
  const kept = new KeptResponses({ maxCount: 3, maxChars: 1e9, ttlMs: 1e9 });
  for (let i = 0; i < 10; i++) kept.keep(`resp_${i}`, 'k', conv(`m${i}`), out(`resp_${i}`, `a${i}`));
  t.equal(kept.size, 3);
  for (let i = 0; i < 7; i++) t.equal(kept.conversation(`resp_${i}`, 'k'), undefined, `resp_${i} dropped`);
  t.strictSame(kept.conversation('resp_9', 'k'), conv('m9'));
});

t.test('bounded in size (JSON characters): the oldest go first; one larger than the bound is not kept', async (t) => {
  const one = JSON.stringify(conv('x'.repeat(100))).length + JSON.stringify(out('resp_a', 'y')).length;
  const kept = new KeptResponses({ maxCount: 1000, maxChars: one * 2 + 10, ttlMs: 1e9 });
  kept.keep('resp_a', 'k', conv('x'.repeat(100)), out('resp_a', 'y'));
  kept.keep('resp_b', 'k', conv('x'.repeat(100)), out('resp_b', 'y'));
  t.equal(kept.size, 2);
  t.equal(kept.totalChars, one * 2);
  kept.keep('resp_c', 'k', conv('x'.repeat(100)), out('resp_c', 'y'));
  t.equal(kept.size, 2);
  t.equal(kept.conversation('resp_a', 'k'), undefined);
  t.ok(kept.conversation('resp_c', 'k'));
  kept.keep('resp_huge', 'k', conv('x'.repeat(one * 3)), []);
  t.equal(kept.conversation('resp_huge', 'k'), undefined);
  t.equal(kept.size, 2, 'and it pushed nothing out');
  t.ok(kept.totalChars <= one * 2 + 10);
});

t.test('it never grows with the responses served', async (t) => {
  const kept = new KeptResponses({ maxCount: 50, maxChars: 20_000, ttlMs: 1e9 });
  for (let i = 0; i < 20_000; i++) kept.keep(`resp_${i}`, 'k', conv(`message ${i}`), out(`resp_${i}`, 'answer'));
  t.equal(kept.size, 50);
  t.ok(kept.totalChars <= 20_000);
});

t.test('kept for the stream retention, then gone', async (t) => {
  let now = 0;
  const kept = new KeptResponses({ maxCount: 10, maxChars: 1e6, ttlMs: 1000 }, () => now);
  kept.keep('resp_a', 'k', conv('a'), []);
  now = 500;
  kept.keep('resp_b', 'k', conv('b'), []);
  now = 1001;
  t.equal(kept.conversation('resp_a', 'k'), undefined);
  t.ok(kept.conversation('resp_b', 'k'));
  now = 1600;
  kept.keep('resp_c', 'k', conv('c'), []);
  t.equal(kept.size, 1, 'the expired ones are dropped as new ones come');
});

t.test('the owner only; items found by their id', async (t) => {
  const kept = new KeptResponses({ maxCount: 10, maxChars: 1e6, ttlMs: 1e9 });
  kept.keep('resp_Ab_c-1', 'k', conv('a'), out('resp_Ab_c-1', 'hello'));
  t.equal(kept.conversation('resp_Ab_c-1', 'other'), undefined);
  t.match(kept.item('msg_Ab_c-1_0', 'k'), { type: 'message', content: [{ text: 'hello' }] });
  t.match(kept.item('fc_Ab_c-1_1', 'k'), { type: 'function_call', call_id: 'call_1' });
  t.equal(kept.item('fc_Ab_c-1_1', 'other'), undefined);
  t.equal(kept.item('msg_Ab_c-1_1', 'k'), undefined, 'an index holding another kind of item');
  t.equal(kept.item('msg_Ab_c-1_7', 'k'), undefined);
  t.equal(kept.item('rs_whatever', 'k'), undefined);
});
