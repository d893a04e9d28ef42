import t from 'tap';
import { SseParser } from '../../src/sse/parser.js';
import { rng } from '../../src/upstream/mock/model.js';

/** One dispatched event: [data, event name]. */
type Ev = [string, string];

const enc = new TextEncoder();

function feedBytes(chunks: readonly Uint8Array[]): Ev[] {
  const out: Ev[] = [];
  const p = new SseParser({ onEvent: (data, event) => out.push([data, event]) });
  for (const c of chunks) p.push(c);
  p.end();
  return out;
}

function feedText(chunks: readonly string[]): Ev[] {
  const out: Ev[] = [];
  const p = new SseParser({ onEvent: (data, event) => out.push([data, event]) });
  for (const c of chunks) p.pushText(c);
  p.end();
  return out;
}

const parse = (text: string): Ev[] => feedBytes([enc.encode(text)]);

/** Every byte a chunk of its own. */
const bytewise = (b: Uint8Array): Uint8Array[] => Array.from(b, (_, i) => b.subarray(i, i + 1));

/** Random non-empty chunks of 1..maxLen bytes. */
function randomChunks(b: Uint8Array, next: () => number, maxLen: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; ) {
    const n = 1 + Math.floor(next() * maxLen);
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** What an OpenAI-compatible upstream sends, as recorded (content varied to include UTF-8). */
const chunk = (content: string, finish: string | null = null) =>
  JSON.stringify({
    id: 'chatcmpl-abc',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  });
const payloads = [chunk('Hel'), chunk('lo, '), chunk('héllo 🌍 日本'), chunk('"quoted" \\ back'), chunk('', 'stop'), '[DONE]'];
const recorded = payloads.map((p) => `data: ${p}\n\n`).join('');
const expected: Ev[] = payloads.map((p) => [p, '']);

t.test('a recorded stream gives the same events however it is chunked', async (t) => {
  const bytes = enc.encode(recorded);
  t.strictSame(feedBytes([bytes]), expected, 'whole');
  t.strictSame(feedBytes(bytewise(bytes)), expected, 'one byte at a time');

  let splitsOk = 0;
  for (let i = 1; i < bytes.length; i++) {
    const got = feedBytes([bytes.subarray(0, i), bytes.subarray(i)]);
    if (JSON.stringify(got) === JSON.stringify(expected)) splitsOk++;
    else t.strictSame(got, expected, `split at byte ${i}`);
  }
  t.equal(splitsOk, bytes.length - 1, 'every single split point');

  const next = rng(0xc0ffee);
  let randomOk = 0;
  for (let iter = 0; iter < 200; iter++) {
    const chunks = randomChunks(bytes, next, 1 + Math.floor(next() * 40));
    const got = feedBytes(chunks);
    if (JSON.stringify(got) === JSON.stringify(expected)) randomOk++;
    else t.strictSame(got, expected, `random chunking #${iter}: ${chunks.map((c) => c.length).join(',')}`);
  }
  t.equal(randomOk, 200, '200 random chunkings');
});

t.test('pushText gives the same events as push', async (t) => {
  t.strictSame(feedText([recorded]), expected);
  t.strictSame(feedText(Array.from(recorded)), expected, 'one code point at a time');
});

t.test('\\r\\n and lone \\r end lines too, split anywhere', async (t) => {
  for (const [name, eol] of [
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    const bytes = enc.encode(recorded.replaceAll('\n', eol));
    t.strictSame(feedBytes([bytes]), expected, `${name} whole`);
    t.strictSame(feedBytes(bytewise(bytes)), expected, `${name} byte by byte`);
    let ok = 0;
    for (let i = 1; i < bytes.length; i++) {
      const got = feedBytes([bytes.subarray(0, i), bytes.subarray(i)]);
      if (JSON.stringify(got) === JSON.stringify(expected)) ok++;
      else t.strictSame(got, expected, `${name} split at byte ${i}`);
    }
    t.equal(ok, bytes.length - 1, `${name} at every split point`);
  }
});

t.test('a \\r ending one push and the \\n starting the next are one line end', async (t) => {
  t.strictSame(feedText(['data: a\r', '\ndata: b\r', '\n\r', '\n']), [['a\nb', '']]);
  t.strictSame(feedBytes([enc.encode('data: a\r'), enc.encode('\n\r\n')]), [['a', '']]);
  // A \r then a \r is two line ends: the second is the blank line.
  t.strictSame(feedText(['data: a\r', '\r']), [['a', '']]);
  // \n\r is a line end followed by another line end.
  t.strictSame(parse('data: a\n\rdata: b\n\n'), [
    ['a', ''],
    ['b', ''],
  ]);
  t.strictSame(parse('data: a\r\n\r\ndata: b\r\rdata: c\n\n'), [
    ['a', ''],
    ['b', ''],
    ['c', ''],
  ], 'mixed line endings in one stream');
});

t.test('an empty push between \\r and \\n keeps them one line end', async (t) => {
  t.strictSame(feedText(['data: a\r', '', '\ndata: b\r\n\r\n']), [['a\nb', '']], 'pushText');
  t.strictSame(
    feedBytes([enc.encode('data: a\r'), new Uint8Array(0), enc.encode('\ndata: b\r\n\r\n')]),
    [['a\nb', '']],
    'push',
  );
  t.strictSame(feedText(['data: a\n', '', '\n']), [['a', '']], 'an empty push elsewhere changes nothing');
});

t.test('multi-byte UTF-8 split inside a character across pushes', async (t) => {
  const text = 'héllo 🌍 日本';
  const bytes = enc.encode(`data: ${text}\n\n`);
  t.ok(bytes.length > `data: ${text}\n\n`.length, 'the sample has multi-byte characters');
  for (let i = 1; i < bytes.length; i++) {
    for (let j = i + 1; j < bytes.length; j++) {
      const got = feedBytes([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]);
      if (got.length !== 1 || got[0]?.[0] !== text) {
        t.strictSame(got, [[text, '']], `split at ${i} and ${j}`);
        return;
      }
    }
  }
  t.strictSame(feedBytes(bytewise(bytes)), [[text, '']], 'byte by byte');
  t.pass('every pair of split points decodes the text intact');
});

t.test('a byte-order mark at the start of the stream is ignored', async (t) => {
  t.strictSame(feedBytes([new Uint8Array([0xef, 0xbb]), new Uint8Array([0xbf]), enc.encode('data: x\n\n')]), [['x', '']]);
});

t.test('several data lines join with \\n', async (t) => {
  t.strictSame(parse('data: a\ndata: b\n\n'), [['a\nb', '']]);
  t.strictSame(parse('data: a\ndata:\ndata: c\n\n'), [['a\n\nc', '']], 'an empty data line adds an empty line');
  t.strictSame(parse('data\n\n'), [['', '']], '`data` with no colon is an empty value, and the event is dispatched');
});

t.test('comments are ignored', async (t) => {
  t.strictSame(parse(': ping\n\n'), []);
  t.strictSame(parse(':\n\n: ping\n\n'), []);
  t.strictSame(parse('data: a\n: in between\ndata: b\n\n: ping\n\n'), [['a\nb', '']]);
});

t.test('event names pass through, and reset after each event', async (t) => {
  t.strictSame(parse('event: done\ndata: {"finish_reason":"stop"}\n\ndata: next\n\n'), [
    ['{"finish_reason":"stop"}', 'done'],
    ['next', ''],
  ]);
  t.strictSame(parse('data: x\nevent: error\n\n'), [['x', 'error']], 'event after data in the same block');
  t.strictSame(parse('event: lonely\n\ndata: y\n\n'), [['y', '']], 'an event with no data is not dispatched, and its name does not leak');
  t.strictSame(parse('event\ndata: z\n\n'), [['z', '']], '`event` with no value is the unnamed event');
});

t.test('field values: one leading space is stripped, no more', async (t) => {
  t.strictSame(parse('data:x\n\n'), [['x', '']], 'no space after the colon');
  t.strictSame(parse('data:  x\n\n'), [[' x', '']], 'only the first space goes');
  t.strictSame(parse('data: a: b\n\n'), [['a: b', '']], 'colons inside the value stay');
  t.strictSame(parse('data: x \n\n'), [['x ', '']], 'trailing space stays');
});

t.test('fields that merely start with "data" or "event" are ignored', async (t) => {
  t.strictSame(parse('datax: 1\n\n'), []);
  t.strictSame(parse('datax: 1\ndata: y\n\n'), [['y', '']]);
  t.strictSame(parse('data_: 1\ndatum: 2\nData: 3\n\n'), [], 'names are case-sensitive');
  t.strictSame(parse('events: nope\ndata: y\n\n'), [['y', '']]);
  t.strictSame(parse(' data: y\n\n'), [], 'a leading space makes another field name');
});

t.test('id: and retry: lines are ignored', async (t) => {
  t.strictSame(parse('id: 5\nretry: 100\ndata: x\n\n'), [['x', '']]);
  t.strictSame(parse('retry: 3000\n\n'), [], 'retry alone dispatches nothing');
  t.strictSame(parse('id: 7\n\n'), [], 'id alone dispatches nothing');
  t.strictSame(parse('id\nretry\nfoo: bar\ndata: x\n\n'), [['x', '']], 'unknown fields are ignored');
});

t.test('an event without its trailing blank line is not dispatched at end()', async (t) => {
  t.strictSame(parse('data: a\n\ndata: b\n'), [['a', '']]);
  t.strictSame(parse('data: a\n\ndata: b'), [['a', '']]);
  t.strictSame(parse('data: a\r\n\r\ndata: b\r\n'), [['a', '']]);
  t.strictSame(parse('event: done\ndata: b\n'), []);
  t.strictSame(parse(''), []);
});

t.test('events reach the sink as they complete, not at end()', async (t) => {
  const out: string[] = [];
  const p = new SseParser({ onEvent: (d) => out.push(d) });
  p.pushText('data: one\n');
  t.strictSame(out, [], 'not before the blank line');
  p.pushText('\ndata: tw');
  t.strictSame(out, ['one']);
  p.pushText('o\n\n');
  t.strictSame(out, ['one', 'two']);
  p.end();
  t.strictSame(out, ['one', 'two']);
});
