import t from 'tap';
import { DONE_FRAME, PING_FRAME, SSE_HEADERS, dataFrame, dataFrames, dataFramesBuffer, namedFrame, retryFrame, toSingleLineJson } from '../../src/sse/frame.js';
import { SseParser } from '../../src/sse/parser.js';
import { rng } from '../../src/upstream/mock/model.js';

type Ev = [string, string];

function parseAll(text: string, splitAt?: number): Ev[] {
  const out: Ev[] = [];
  const p = new SseParser({ onEvent: (data, event) => out.push([data, event]) });
  const bytes = new TextEncoder().encode(text);
  if (splitAt === undefined) p.push(bytes);
  else {
    p.push(bytes.subarray(0, splitAt));
    p.push(bytes.subarray(splitAt));
  }
  p.end();
  return out;
}

/** Pieces chosen to break naive framing: line ends, quotes, fake SSE fields, unicode, lone surrogates. */
const pieces = [
  'a', 'Z', ' ', '0', '\n', '\r', '\r\n', '\n\n', '"', '\\', '\t', '\u0000', '\u001f',
  '\n\ndata: x\n\n', 'data: [DONE]\n\n', 'event: error\n', ': ping\n\n', 'id: 9\r\r', 'retry: 1\n\n',
  'é', 'ß', '🌍', '日本', '\u2028', '\u2029', '\u0085', '\ufeff', '\ud800', '\udc00', '}', '{"', '</script>',
];

/** JSON with everything outside printable ASCII escaped: safe inside a TAP line. */
const show = (v: unknown): string =>
  (JSON.stringify(v) ?? 'undefined').replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)?.toString(16)}}`);

function randomString(next: () => number): string {
  const n = Math.floor(next() * 24);
  let s = '';
  for (let i = 0; i < n; i++) {
    if (next() < 0.2) s += String.fromCodePoint(Math.floor(next() * 0x2ffff));
    else s += pieces[Math.floor(next() * pieces.length)] ?? '';
  }
  return s;
}

t.test('frames are exactly the bytes the contract names', async (t) => {
  t.equal(dataFrame(1, '{"a":1}'), 'id: 1\ndata: {"a":1}\n\n');
  t.equal(dataFrame(42, '[DONE]'), 'id: 42\ndata: [DONE]\n\n');
  t.equal(namedFrame('done', 7, '{"finish_reason":"stop","usage":null}'), 'id: 7\nevent: done\ndata: {"finish_reason":"stop","usage":null}\n\n');
  t.equal(namedFrame('error', 3, '{}'), 'id: 3\nevent: error\ndata: {}\n\n');
  t.equal(retryFrame(3000), 'retry: 3000\n\n');
  t.equal(retryFrame(0), 'retry: 0\n\n');
  t.equal(PING_FRAME, ': ping\n\n');
  t.equal(DONE_FRAME, 'data: [DONE]\n\n');
  t.strictSame(SSE_HEADERS, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  });
});

t.test('frames read back through the parser', async (t) => {
  t.strictSame(parseAll(dataFrame(1, '{"a":1}') + PING_FRAME + namedFrame('done', 2, '{"b":2}') + DONE_FRAME), [
    ['{"a":1}', ''],
    ['{"b":2}', 'done'],
    ['[DONE]', ''],
  ]);
  t.strictSame(parseAll(retryFrame(1500)), [], 'a retry frame is no event');
});

t.test('toSingleLineJson returns compact JSON objects unchanged', async (t) => {
  for (const s of ['{}', '{"a":1}', '{"choices":[{"delta":{"content":"x\\ny\\r\\n"}}]}', '{"s":"日本 🌍 \u2028"}']) {
    t.equal(toSingleLineJson(s), s, show(s));
  }
});

t.test('toSingleLineJson re-encodes JSON with raw line ends between tokens onto one line', async (t) => {
  const obj = { id: 'c1', choices: [{ index: 0, delta: { content: 'a\nb' }, finish_reason: null }], n: [1, 2.5, -3], t: true };
  const cases = [
    JSON.stringify(obj, null, 2),
    JSON.stringify(obj, null, 2).replaceAll('\n', '\r\n'),
    JSON.stringify(obj, null, '\t').replaceAll('\n', '\r'),
    '{\n"a"\n:\n1\n}',
    '{"a":1}\n',
    '\r\n{"a":1}',
    ' {"a":1}',
  ];
  for (const x of cases) {
    const out = toSingleLineJson(x);
    t.equal(out, JSON.stringify(JSON.parse(x)), JSON.stringify(x));
    t.notMatch(out, /[\r\n]/, 'no raw line end left');
  }
});

t.test('toSingleLineJson rejects non-JSON and JSON that is not an object', async (t) => {
  for (const x of ['', 'hello', 'data: {}', '{\n', '{"a":\n', '{"a":1}\n}', '[DONE]', "{'a':1}\n"]) {
    t.throws(() => toSingleLineJson(x), SyntaxError, `non-JSON ${JSON.stringify(x)}`);
  }
  for (const x of ['[1]', '[\n1\n]', '"x"', '42', 'null', 'true', ' {"a":1}\n[1]', '[{"a":1}]']) {
    t.throws(() => toSingleLineJson(x), SyntaxError, `not an object: ${JSON.stringify(x)}`);
  }
  const err = (() => {
    try {
      toSingleLineJson('sk-secret-1234567890 not json');
    } catch (e) {
      return e as Error;
    }
    return undefined;
  })();
  t.ok(err, 'it throws');
  t.notMatch(err?.message ?? '', /sk-secret/, 'the error does not echo the data');
});

t.test('toSingleLineJson rejects single-line data that is not a braced object', async (t) => {
  for (const x of ['{garbage', '{"a":1} trailing', 'garbage}']) {
    t.throws(() => toSingleLineJson(x), SyntaxError, JSON.stringify(x));
  }
  // The fast path checks braces, not the full grammar: still one safe line.
  t.equal(toSingleLineJson('{"a":1}{"b":2}'), '{"a":1}{"b":2}');
});

t.test('property: no content can break a data frame (500 seeded strings)', async (t) => {
  const next = rng(20240601);
  const fixed = ['', '\n', '\r', '\r\n', '\n\ndata: x\n\n', '"', '\\"', 'héllo 🌍 日本', '\ud83c', 'event: error\ndata: {}\n\n'];
  let ok = 0;
  const total = 500;
  for (let i = 0; i < total; i++) {
    const s = fixed[i] ?? randomString(next);
    const frame = dataFrame(1, JSON.stringify({ content: s }));
    const bad = (why: string) => t.fail(`${why} for ${show(s)}: ${show(frame)}`);
    if (frame.indexOf('\n\n') !== frame.length - 2) {
      bad('the frame has a blank line before its end');
      continue;
    }
    if (frame.includes('\r')) {
      bad('the frame has a raw \\r');
      continue;
    }
    const splitAt = 1 + Math.floor(next() * (new TextEncoder().encode(frame).length - 1));
    const events = parseAll(frame, splitAt);
    const first = events[0];
    if (events.length !== 1 || first === undefined || first[1] !== '') {
      bad(`expected one unnamed event, got ${show(events)}`);
      continue;
    }
    const back = (JSON.parse(first[0]) as { content: string }).content;
    if (back !== s) {
      bad(`content came back as ${show(back)}`);
      continue;
    }
    ok++;
  }
  t.equal(ok, total, `${total} strings round-trip through one data frame`);
});

t.test('property: toSingleLineJson output frames as one event equal to the input object', async (t) => {
  const next = rng(7);
  let ok = 0;
  for (let i = 0; i < 200; i++) {
    const obj = { content: randomString(next), n: i, nested: { s: randomString(next) } };
    const pretty = JSON.stringify(obj, null, next() < 0.5 ? 2 : '\t').replaceAll('\n', next() < 0.5 ? '\r\n' : '\n');
    const line = toSingleLineJson(pretty);
    const events = parseAll(namedFrame('x', i, line));
    if (events.length === 1 && JSON.stringify(JSON.parse(events[0]?.[0] ?? 'null')) === JSON.stringify(obj)) ok++;
    else t.fail(`object ${i} did not survive: ${show(events)}`);
  }
  t.equal(ok, 200);
});

t.test('dataFramesBuffer writes exactly the bytes of dataFrames, for any ids and payloads', async (t) => {
  const next = rng(1607);
  // Ids around every change of digit count, and payloads with multi-byte and lone-surrogate text.
  const firsts = [0, 1, 8, 9, 10, 11, 98, 99, 100, 999, 1000, 9_995, 99_999, 123_456, 2 ** 31 - 3];
  let cases = 0;
  for (const first of firsts) {
    for (let round = 0; round < 20; round++) {
      const payloads = Array.from({ length: Math.floor(next() * 12) }, () => toSingleLineJson(JSON.stringify({ t: randomString(next) })));
      const want = Buffer.from(dataFrames(first, payloads));
      const got = dataFramesBuffer(first, payloads);
      if (!got.equals(want)) t.fail(`ids from ${first}: ${show(payloads)}`);
      cases++;
    }
  }
  t.equal(dataFramesBuffer(7, []).length, 0, 'no payloads, no bytes');
  t.pass(`${cases} batches byte-identical`);
});
