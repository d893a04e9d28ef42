import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { chatBody, startGateway, viaUpstream, type RunningGateway } from '../helpers/gateway.js';
import { getStream, parseSse, post, type SseEvent } from '../helpers/sse.js';
import { pyDumps } from '../helpers/spaced-upstream.js';

/**
 * An upstream that writes its JSON the way Python's json.dumps does (`", "`
 * and `": "`, non-ASCII as \uXXXX) is as good as a compact one: the finish
 * reason and usage are read, the usage chunk is hidden unless asked for, an
 * in-band error in that style is an error, and `[DONE]` ends the answer.
 */

const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
  id: 'chatcmpl-py',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'mock-1',
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  usage: null,
});
const USAGE = { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 };
const ANSWER = [chunk({ role: 'assistant', content: '' }, null), chunk({ content: 'Héllo' }, null), chunk({ content: ' world' }, null)];
const FINISH = chunk({}, 'stop');
const USAGE_CHUNK = { id: 'chatcmpl-py', object: 'chat.completion.chunk', created: 1, model: 'mock-1', choices: [], usage: USAGE };

const events = (objs: unknown[]) => objs.map((o) => `data: ${pyDumps(o)}\n\n`).join('');

/** What the stand-in upstream writes, by the prompt's first word. */
const SCRIPTS: Record<string, (includeUsage: boolean) => string> = {
  whole: (u) => events([...ANSWER, FINISH, ...(u ? [USAGE_CHUNK] : [])]) + 'data: [DONE]\n\n',
  // Pretty-printed over several data: lines, as some servers send it.
  error: () => events(ANSWER.slice(0, 2)) + `data: {\ndata:   "error": ${pyDumps({ message: 'model overloaded', type: 'server_error', code: null })}\ndata: }\n\n`,
  'no-finish': () => events(ANSWER) + 'data: [DONE]\n\n',
  cut: () => events(ANSWER),
};

async function standIn(): Promise<{ server: Server; baseUrl: string; requests: Record<string, unknown>[] }> {
  const requests: Record<string, unknown>[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(pyDumps({ object: 'list', data: [{ id: 'mock-1', object: 'model', created: 0, owned_by: 'x' }] }));
      }
      const parsed = JSON.parse(body) as { messages: { content: string }[]; stream_options?: { include_usage?: boolean } };
      requests.push(parsed);
      const script = SCRIPTS[parsed.messages.at(-1)!.content.split(' ')[0]!]!;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(script(parsed.stream_options?.include_usage === true));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests };
}

async function setup(t: Test): Promise<{ gw: RunningGateway; requests: Record<string, unknown>[] }> {
  const { server, baseUrl, requests } = await standIn();
  const gw = await startGateway(viaUpstream(baseUrl));
  t.teardown(async () => {
    await gw.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return { gw, requests };
}

/** The chunk events of a chat completions stream, parsed. */
const chunksOf = (evs: SseEvent[]) => evs.filter((e) => e.id !== undefined && e.event === undefined).map((e) => JSON.parse(e.data) as Record<string, unknown>);

async function readStream(gw: RunningGateway, prompt: string): Promise<SseEvent[]> {
  const res = await post(`${gw.url}/v1/streams`, chatBody(prompt));
  if (res.status !== 201) throw new Error(`POST /v1/streams → ${res.status} ${res.body}`);
  const s = await getStream(`${gw.url}${(JSON.parse(res.body) as { url: string }).url}`);
  return parseSse(await s.done()).events;
}

t.test('POST /v1/chat/completions: spaced JSON streams as compact does', async (t) => {
  const { gw, requests } = await setup(t);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('whole', { stream: true }));
  t.equal(res.status, 200);
  const evs = parseSse(res.body).events;
  t.equal(evs.at(-1)!.data, '[DONE]', 'ends with [DONE]');
  t.notOk(evs.some((e) => e.data.includes('"error"')), 'no error event');
  const chunks = chunksOf(evs.slice(0, -1));
  t.equal(chunks.length, 4, 'the answer and the finish chunk, no usage chunk nobody asked for');
  t.same(chunks.at(-1)!.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]);
  t.equal(chunks.map((c) => (c.choices as { delta: { content?: string } }[])[0]!.delta.content ?? '').join(''), 'Héllo world');
  t.same(requests[0]!.stream_options, { include_usage: true }, 'the gateway asked the upstream for usage');
  const line = await gw.logs.waitForRequest((l) => l.url === '/v1/chat/completions');
  t.match(line, { outcome: 'completed', finish_reason: 'stop', prompt_tokens: 7, completion_tokens: 3, chunks: 4 });

  const asked = await post(`${gw.url}/v1/chat/completions`, chatBody('whole', { stream: true, stream_options: { include_usage: true } }));
  const withUsage = chunksOf(parseSse(asked.body).events);
  t.equal(withUsage.length, 5, 'asked for: the usage chunk comes through');
  t.same(withUsage.at(-1)!.usage, USAGE);
});

t.test('/v1/streams: spaced JSON ends with event: done, finish_reason and usage', async (t) => {
  const { gw } = await setup(t);
  const evs = await readStream(gw, 'whole');
  const last = evs.at(-1)!;
  t.equal(last.event, 'done');
  t.same(JSON.parse(last.data), { finish_reason: 'stop', usage: USAGE });
  t.equal(chunksOf(evs).length, 4, 'no usage chunk in the events');
});

t.test('a spaced, multi-line in-band error is an error', async (t) => {
  const { gw } = await setup(t);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('error', { stream: true }));
  const evs = parseSse(res.body).events;
  t.notOk(evs.some((e) => e.data === '[DONE]'), 'no [DONE]');
  t.equal(evs.length, 3, 'two chunks, then the error');
  const err = (JSON.parse(evs.at(-1)!.data) as { error: { type: string; message: string } }).error;
  t.equal(err.type, 'upstream_error');
  t.match(err.message, /model overloaded/);

  const streamed = await readStream(gw, 'error');
  t.equal(streamed.at(-1)!.event, 'error');
  t.match(JSON.parse(streamed.at(-1)!.data), { error: { type: 'upstream_error', message: /model overloaded/ } });
});

t.test('[DONE] without any finish_reason ends the answer; closing without either is a cut', async (t) => {
  const { gw } = await setup(t);
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody('no-finish', { stream: true }));
  const evs = parseSse(res.body).events;
  t.equal(evs.at(-1)!.data, '[DONE]');
  t.equal(chunksOf(evs).length, 3);
  const line = await gw.logs.waitForRequest((l) => l.url === '/v1/chat/completions');
  t.match(line, { outcome: 'completed', finish_reason: null, prompt_tokens: null });
  const streamed = await readStream(gw, 'no-finish');
  t.equal(streamed.at(-1)!.event, 'done');
  t.same(JSON.parse(streamed.at(-1)!.data), { finish_reason: null, usage: null });

  const cut = parseSse((await post(`${gw.url}/v1/chat/completions`, chatBody('cut', { stream: true }))).body).events;
  t.notOk(cut.some((e) => e.data === '[DONE]'));
  t.match(JSON.parse(cut.at(-1)!.data), { error: { type: 'upstream_error', message: /ended the stream before it finished/ } });
});
