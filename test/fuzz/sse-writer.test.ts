import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import fc from 'fast-check';
import t from 'tap';
import { DONE_FRAME, dataFrame, dataFrames, toSingleLineJson } from '../../src/sse/frame.js';
import { HeartbeatTicker } from '../../src/sse/heartbeat.js';
import { SseParser } from '../../src/sse/parser.js';
import { SseWriter, type SseStyle } from '../../src/sse/writer.js';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { parseSse, post } from '../helpers/sse.js';

/**
 * "Every SSE event parses back to exactly the text that went in": random
 * model text — line ends, fake `data:`/`event:`/`id:` lines, U+2028, lone
 * surrogates, astral characters — framed by the gateway's own functions and
 * read back by its own parser, split at random byte boundaries; then the
 * same end to end through a real gateway with the echoing mock.
 */

const SEED = 7_041_999;
const RUNS = { frames: 1500, writer: 500, upstream: 1500, e2e: 300, proxied: 150 };
/** One line of the gateway's output; `[^\r\n]` because U+2028 is not an SSE line end but is one for `.`. */
const WIRE_LINE = /^(id: \d+|data: (\{[^\r\n]*\}|\[DONE\]))$/;

// ---------------------------------------------------------------------------
// Arbitraries

const DANGEROUS = [
  '\n', '\r', '\r\n', '\n\r', '\n\n', '\r\r', '\n\ndata: x\n\n', 'event: error', '\nevent: error\n', 'id: 9', '\nid: 9\n',
  'data: [DONE]', '\ndata: [DONE]\n\n', 'retry: 1', ': ping', ':', 'data:', '\u2028', '\u2029', '\u0085', '\u0000', '\ufeff',
  '\ud800', '\udbff', '\udc00', '\udfff', '\ud83c', '\udf0d', '🌍', 'é', 'e\u0301', '"', '\\', '\\n', '{', '}', '"}', ' ', '\t',
];

/** Model text: random in several alphabets, or stitched from pieces that have broken framers before. */
const modelText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: 'binary-ascii', maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.array(fc.oneof(fc.constantFrom(...DANGEROUS), fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 12 }).map((a) => a.join('')),
);

const chunkOf = (content: string) => ({ id: 'chatcmpl-x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content }, finish_reason: null }] });

/** Random cut points, as fractions of the input's length. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });

/** [from, to) ranges cutting `length` at the given fractions (duplicates kept: empty reads happen too). */
function ranges(length: number, at: number[]): [number, number][] {
  const points = at.map((f) => Math.floor(f * length)).sort((a, b) => a - b);
  const out: [number, number][] = [];
  let from = 0;
  for (const p of points) {
    out.push([from, p]);
    from = p;
  }
  out.push([from, length]);
  return out;
}

interface Parsed {
  data: string;
  event: string;
  multiLine: boolean;
}

/** Feeds `text` to a fresh SseParser in pieces: as UTF-8 bytes (characters split mid-sequence) or as text. */
function parse(text: string, at: number[], asBytes: boolean): Parsed[] {
  const events: Parsed[] = [];
  const parser = new SseParser({ onEvent: (data, event, multiLine) => events.push({ data, event, multiLine }) });
  if (asBytes) {
    const bytes = Buffer.from(text, 'utf8');
    for (const [a, b] of ranges(bytes.length, at)) parser.push(bytes.subarray(a, b));
  } else {
    for (const [a, b] of ranges(text.length, at)) parser.pushText(text.slice(a, b));
  }
  parser.end();
  return events;
}

const contentOf = (data: string): unknown => (JSON.parse(data) as { choices: { delta: { content?: unknown } }[] }).choices[0]?.delta.content;

// ---------------------------------------------------------------------------
// Unit level

t.test('gateway frames: each event parses back to its chunk, whatever the text and the read boundaries', async (t) => {
  await fc.assert(
    fc.property(
      fc.array(modelText, { minLength: 1, maxLength: 5 }),
      fc.nat({ max: 1_000_000 }),
      fc.boolean(),
      cuts,
      fc.boolean(),
      (texts, firstId, batched, at, asBytes) => {
        const payloads = texts.map((s) => toSingleLineJson(JSON.stringify(chunkOf(s))));
        const framed = (batched ? dataFrames(firstId, payloads) : payloads.map((p, i) => dataFrame(firstId + i, p)).join('')) + DONE_FRAME;
        const events = parse(framed, at, asBytes);
        if (events.length !== texts.length + 1) throw new Error(`${events.length} events for ${texts.length} chunks + [DONE]`);
        texts.forEach((s, i) => {
          const e = events[i]!;
          if (e.event !== '' || e.multiLine || e.data !== payloads[i]) throw new Error(`event ${i} is ${JSON.stringify(e)}`);
          if (contentOf(e.data) !== s) throw new Error(`event ${i} carries ${JSON.stringify(contentOf(e.data))}, sent ${JSON.stringify(s)}`);
        });
        if (events.at(-1)!.data !== '[DONE]') throw new Error('the stream does not end with [DONE]');
        // The strict reader of the tests agrees, ids included.
        const strict = parseSse(framed).events;
        if (strict.length !== texts.length + 1 || strict.slice(0, -1).some((e, i) => e.id !== String(firstId + i))) {
          throw new Error(`ids ${strict.map((e) => e.id).join(',')}`);
        }
        for (const line of framed.split('\n')) if (line !== '' && !WIRE_LINE.test(line)) throw new Error(`line ${JSON.stringify(line)}`);
      },
    ),
    { numRuns: RUNS.frames, seed: SEED },
  );
  t.pass(`${RUNS.frames} framed batches parsed back exactly`);
});

/** The least of a ServerResponse the writer touches: records what it writes. */
class FakeResponse extends EventEmitter {
  text = '';
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  writeHead(): this {
    return this;
  }
  flushHeaders(): void {
    this.headersSent = true;
  }
  write(s: string | Buffer): boolean {
    this.headersSent = true;
    this.text += s.toString();
    return true;
  }
  end(s?: string): this {
    if (s) this.text += s;
    this.writableEnded = true;
    return this;
  }
}

t.test('SseWriter: events and the final error event carry any text intact, in both styles', async (t) => {
  const heartbeat = new HeartbeatTicker(3_600_000);
  t.teardown(() => heartbeat.stop());
  await fc.assert(
    fc.property(fc.array(modelText, { maxLength: 4 }), modelText, fc.constantFrom<SseStyle>('openai', 'eventsource'), cuts, (texts, message, style, at) => {
      const res = new FakeResponse();
      const writer = new SseWriter(res as unknown as ServerResponse, style, heartbeat);
      writer.open({});
      const payloads = texts.map((s) => toSingleLineJson(JSON.stringify(chunkOf(s))));
      if (payloads.length > 0) writer.onFrames(Buffer.from(dataFrames(1, payloads)));
      writer.onEnd({ kind: 'error', type: 'upstream_error', code: 'upstream_error', message }, payloads.length + 1);
      const events = parse(res.text, at, true);
      if (events.length !== texts.length + 1) throw new Error(`${events.length} events for ${texts.length} chunks + error`);
      texts.forEach((s, i) => {
        if (contentOf(events[i]!.data) !== s) throw new Error(`event ${i} lost its text ${JSON.stringify(s)}`);
      });
      const last = events.at(-1)!;
      if (last.event !== (style === 'openai' ? '' : 'error')) throw new Error(`final event named ${JSON.stringify(last.event)}`);
      const sent = (JSON.parse(last.data) as { error: { message: unknown } }).error.message;
      if (sent !== message) throw new Error(`error message ${JSON.stringify(sent)}, sent ${JSON.stringify(message)}`);
    }),
    { numRuns: RUNS.writer, seed: SEED },
  );
  t.pass(`${RUNS.writer} writer streams parsed back exactly`);
});

type UpstreamStyle = { eol: string; bom: boolean; indent: number | string | null; space: boolean; comment: boolean; event: string | null; id: boolean; done: boolean };

/** How an upstream may frame the same chunk: compact or pretty JSON, any line end, extra fields and comments. */
const upstreamStyle = fc.record({
  eol: fc.constantFrom('\n', '\r\n', '\r'),
  bom: fc.boolean(),
  indent: fc.constantFrom<number | string | null>(null, null, 0, 1, 2, '\t'),
  space: fc.boolean(), // `data: x` or `data:x`
  comment: fc.boolean(),
  event: fc.constantFrom<string | null>(null, 'message'),
  id: fc.boolean(),
  done: fc.boolean(),
});

function upstreamFrames(texts: string[], st: UpstreamStyle): string {
  const e = st.eol;
  let out = st.bom ? '\ufeff' : '';
  texts.forEach((s, i) => {
    if (st.comment) out += ': keep-alive' + e;
    if (st.id) out += `id: up-${i}` + e;
    if (st.event) out += `event: ${st.event}` + e;
    const json = st.indent === null ? JSON.stringify(chunkOf(s)) : JSON.stringify(chunkOf(s), null, st.indent);
    for (const line of json.split('\n')) out += (st.space ? 'data: ' : 'data:') + line + e;
    out += e;
  });
  if (st.done) out += 'data: [DONE]' + e + e;
  return out;
}

t.test('upstream frames: parsed and made single-line, each chunk keeps its text', async (t) => {
  await fc.assert(
    fc.property(fc.array(modelText, { minLength: 1, maxLength: 4 }), upstreamStyle, cuts, fc.boolean(), (texts, st, at, asBytes) => {
      const events = parse(upstreamFrames(texts, st), at, asBytes);
      if (events.length !== texts.length + (st.done ? 1 : 0)) throw new Error(`${events.length} events for ${texts.length} chunks`);
      const payloads = texts.map((s, i) => {
        const e = events[i]!;
        if (e.event !== (st.event ?? '')) throw new Error(`event ${i} named ${JSON.stringify(e.event)}`);
        const one = toSingleLineJson(e.data, e.multiLine);
        if (/[\r\n]/.test(one)) throw new Error(`payload ${i} spans lines: ${JSON.stringify(one)}`);
        if (contentOf(one) !== s) throw new Error(`chunk ${i} carries ${JSON.stringify(contentOf(one))}, sent ${JSON.stringify(s)}`);
        return one;
      });
      // Relayed: framed by the gateway and read again, nothing changes.
      const again = parse(dataFrames(1, payloads), [], true);
      if (again.length !== payloads.length || again.some((e, i) => e.data !== payloads[i])) throw new Error('the relayed frames differ');
    }),
    { numRuns: RUNS.upstream, seed: SEED },
  );
  t.pass(`${RUNS.upstream} upstream streams relayed exactly`);
});

// ---------------------------------------------------------------------------
// End to end

/** Prompt text for the echoing mock: anything but a mock directive of its own. */
const prompt = fc
  .oneof(
    { weight: 4, arbitrary: modelText },
    { weight: 1, arbitrary: fc.tuple(modelText, fc.integer({ min: 2, max: 60 })).map(([s, n]) => s.repeat(n)) },
  )
  .filter((s) => !s.includes('[mock'));

/** What is wrong with a stream that should carry exactly `expected`, or null. */
function streamProblem(status: number, body: string, expected: string): string | null {
  if (status !== 200) return `status ${status}: ${body.slice(0, 200)}`;
  if (body.includes('\r')) return 'a carriage return on the wire';
  const bad = body.split('\n').find((l) => l !== '' && !WIRE_LINE.test(l));
  if (bad !== undefined) return `line ${JSON.stringify(bad.slice(0, 120))}`;
  const events: Parsed[] = [];
  const parser = new SseParser({ onEvent: (data, event, multiLine) => events.push({ data, event, multiLine }) });
  parser.pushText(body);
  parser.end();
  if (events.at(-1)?.data !== '[DONE]') return 'the stream does not end with [DONE]';
  const strict = parseSse(body).events;
  if (strict.length !== events.length || strict.slice(0, -1).some((e, i) => e.id !== String(i + 1))) return 'ids are not 1..n';
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as { object: string; choices: { delta: { content?: string } }[] });
  if (chunks.some((c) => c.object !== 'chat.completion.chunk')) return 'an event is not a chat.completion.chunk';
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  return text === expected ? null : `the stream carried ${JSON.stringify(text)}, expected ${JSON.stringify(expected)}`;
}

t.test('end to end: the echoed prompt arrives exactly, on well-framed lines', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const limits = { rateLimit: { max: 1e9, windowMs: 60_000 }, logLevel: 'warn' as const };
  const direct = await startGateway({ mock: FAST_MOCK, ...limits });
  const proxied = await startGateway({ ...viaUpstream(baseUrl), ...limits });
  t.teardown(async () => {
    await direct.close();
    await proxied.close();
    await mock.close();
  });
  for (const [name, gw, numRuns] of [
    ['in-process mock', direct, RUNS.e2e],
    ['mock over HTTP (the upstream SSE parser too)', proxied, RUNS.proxied],
  ] as const) {
    await fc.assert(
      fc.asyncProperty(prompt, fc.option(cuts), async (p, asParts) => {
        // The mock strips the directive and echoes the rest, the space before it included;
        // content parts are read as their texts joined.
        const text = `${p} [mock:echo]`;
        const content = asParts ? ranges(text.length, asParts).map(([a, b]) => ({ type: 'text', text: text.slice(a, b) })) : text;
        const res = await post(`${gw.url}/v1/chat/completions`, { ...chatBody('', { stream: true }), messages: [{ role: 'user', content }] });
        const bad = streamProblem(res.status, res.body, `${p} `);
        if (bad) throw new Error(bad);
      }),
      { numRuns, seed: SEED },
    );
    t.pass(`${name}: ${numRuns} prompts echoed exactly`);
  }
});
