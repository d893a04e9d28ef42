import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { DONE_FRAME, dataFrame } from '../../src/sse/frame.js';
import { planCompletion, rng } from '../../src/upstream/mock/model.js';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { FAST_MOCK, chatBody, startGateway, viaUpstream } from '../helpers/gateway.js';
import { post } from '../helpers/sse.js';

/**
 * The fast path frames upstream bytes without re-encoding them. This proves it
 * changes nothing: for recorded upstream streams cut at random points, the
 * gateway's events are byte-identical to a full parse-and-re-encode.
 */

const req = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest =>
  ({ model: 'mock-1', messages: [{ role: 'user', content }], ...extra }) as ChatRequest;

function recordings(): { name: string; events: string[]; wire: (events: string[]) => string }[] {
  const plain = (r: ChatRequest) => {
    const p = planCompletion(r, FAST_MOCK);
    return [...p.chunks, p.usageChunk];
  };
  const lf = (events: string[]) => events.map((e) => `data: ${e}\n\n`).join('') + 'data: [DONE]\n\n';
  const crlf = (events: string[]) => events.map((e) => `data: ${e}\r\n\r\n`).join('') + 'data: [DONE]\r\n\r\n';
  // Pretty-printed JSON sent as several data: lines, with comments and retry hints between events.
  const multiline = (events: string[]) =>
    ': keep-alive\n\n' +
    events.map((e) => `retry: 1000\n${JSON.stringify(JSON.parse(e), null, 2).split('\n').map((l) => `data: ${l}`).join('\n')}\n\n`).join('') +
    'data: [DONE]\n\n';
  const unicode = plain(req('héllo 🌍 日本語 "quotes" \\ back\nslash\u2028 [mock:echo]'));
  const tools = plain(req('weather', { tools: [{ type: 'function', function: { name: 'get_weather' } }] } as Partial<ChatRequest>));
  const words = plain(req('words [mock:tokens=60]'));
  return [
    { name: 'plain text, LF', events: words, wire: lf },
    { name: 'unicode and escapes, LF', events: unicode, wire: lf },
    { name: 'tool calls, CRLF', events: tools, wire: crlf },
    { name: 'unicode, CRLF', events: unicode, wire: crlf },
    { name: 'multi-line pretty JSON with comments', events: words, wire: multiline },
  ];
}

/** An upstream replaying a recorded byte stream, cut into random pieces written one tick apart. */
async function replayServer(wire: () => Buffer, next: () => number): Promise<{ server: Server; baseUrl: string }> {
  const server = createServer((request, res) => {
    request.resume();
    request.on('end', () => {
      if (request.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ object: 'list', data: [{ id: 'mock-1', object: 'model', created: 0, owned_by: 'x' }] }));
      }
      const bytes = wire();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let at = 0;
      const step = () => {
        if (at >= bytes.length) return res.end();
        const n = 1 + Math.floor(next() * (next() < 0.5 ? 8 : 400));
        res.write(bytes.subarray(at, at + n));
        at += n;
        setImmediate(step);
      };
      step();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` };
}

for (const rec of recordings()) {
  t.test(rec.name, async (t) => {
    const next = rng(rec.name.length * 7919);
    const bytes = Buffer.from(rec.wire(rec.events), 'utf8');
    const { server, baseUrl } = await replayServer(() => bytes, next);
    const gw = await startGateway({ ...viaUpstream(baseUrl), rateLimit: { max: 10_000, windowMs: 60_000 } });
    t.teardown(async () => {
      await gw.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });
    const expected = rec.events.map((e, i) => dataFrame(i + 1, JSON.stringify(JSON.parse(e)))).join('') + DONE_FRAME;
    let same = 0;
    const runs = 25;
    for (let i = 0; i < runs; i++) {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody('x', { stream: true, stream_options: { include_usage: true } }));
      if (res.body === expected) same++;
      else t.equal(res.body, expected, `run ${i}`);
    }
    t.equal(same, runs, `${runs} random chunkings, all byte-identical to parse-and-re-encode`);
  });
}
