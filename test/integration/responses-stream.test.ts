import { OpenAI } from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { scrape, valueOf } from '../helpers/metrics.js';
import { parseSse } from '../helpers/sse.js';

/** POST /v1/responses with stream: true, read by the openai SDK, against the mock HTTP upstream over real sockets. */
t.test('Responses streams through the openai SDK', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-1'], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-1', maxRetries: 0 });

  /** What the mock answered the last request it received with. */
  const upstreamPlan = () => planCompletion(mock.requests.at(-1)!.body, FAST_MOCK);

  t.test('create({ stream: true }): the events in order, the upstream text, usage, ids from the stream log', async (t) => {
    const { data: stream, response } = await client.responses.create({ model: 'mock-1', input: 'Tell me about logs [mock:tokens=20]', stream: true }).withResponse();
    const events: ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const plan = upstreamPlan();

    const streamId = response.headers.get('x-stream-id')!;
    t.match(streamId, /^str_[A-Za-z0-9_-]{22}$/);
    const types = events.map((e) => e.type);
    t.strictSame(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    t.strictSame(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    t.equal(types.filter((x) => x === 'response.output_text.delta').length, 20, 'one delta per upstream token');
    t.strictSame(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i + 1),
      'sequence numbers are the log ids: 1, 2, 3…',
    );

    let text = '';
    for (const e of events) if (e.type === 'response.output_text.delta') text += e.delta;
    t.equal(text, plan.content, 'the text is the upstream text');
    const done = events.at(-1)! as Extract<ResponseStreamEvent, { type: 'response.completed' }>;
    t.equal(done.response.id, `resp_${streamId.slice(4)}`, 'the response id is the stream id');
    t.equal(done.response.status, 'completed');
    t.equal(done.response.output_text ?? (done.response.output[0] as { content: { text: string }[] }).content[0]!.text, plan.content);
    t.match(done.response.usage, { input_tokens: plan.usage.prompt_tokens, output_tokens: plan.usage.completion_tokens, total_tokens: plan.usage.total_tokens });
    t.equal(mock.requests.at(-1)!.body.stream, true, 'streamed from the upstream too');

    t.test('GET /v1/streams/{X-Stream-Id} replays the same events, in the Responses format', async (t) => {
      const replay = await send(`${gw.url}/v1/streams/${streamId}`, { method: 'GET' });
      t.equal(replay.status, 200);
      const frames = parseSse(replay.body).events.filter((e) => e.data !== undefined && e.id !== undefined);
      t.strictSame(
        frames.map((f) => f.event),
        types,
      );
      t.strictSame(
        frames.map((f) => JSON.parse(f.data)),
        JSON.parse(JSON.stringify(events)),
        'event for event',
      );
      t.strictSame(
        frames.map((f) => Number(f.id)),
        events.map((e) => e.sequence_number),
      );
    });

    t.test('the log line and /metrics name the API', async (t) => {
      const line = await gw.logs.waitForRequest((l) => l.stream_id === streamId);
      t.equal(line.api, 'responses');
      t.equal(line.model, 'mock-1');
      t.equal(line.outcome, 'completed');
      t.equal(line.completion_tokens, 20);
      t.ok(valueOf(await scrape(gw.app), 'gateway_requests_total', { api: 'responses', route: '/v1/responses', status: '200' }) >= 1);
    });
  });

  t.test('responses.stream(…).finalResponse()', async (t) => {
    const runner = client.responses.stream({ model: 'mock-1', input: [{ role: 'user', content: 'Stream it [mock:tokens=12]' }], instructions: 'Be brief.' });
    let deltas = '';
    runner.on('response.output_text.delta', (e) => (deltas += e.delta));
    const final = await runner.finalResponse();
    const plan = upstreamPlan();
    t.equal(final.status, 'completed');
    t.equal(final.output_text, plan.content);
    t.equal(deltas, plan.content);
    t.equal(final.instructions, 'Be brief.');
    t.strictSame(mock.requests.at(-1)!.body.messages[0], { role: 'system', content: 'Be brief.' }, 'instructions go upstream as the system message');
  });

  t.test('tool calls stream as function_call items', async (t) => {
    const stream = await client.responses.create({
      model: 'mock-1',
      input: 'weather in Paris',
      tools: [{ type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { query: { type: 'string' } } }, strict: false }],
      stream: true,
    });
    const events: ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    let args = '';
    for (const e of events) if (e.type === 'response.function_call_arguments.delta') args += e.delta;
    const done = events.find((e) => e.type === 'response.function_call_arguments.done') as Extract<ResponseStreamEvent, { type: 'response.function_call_arguments.done' }>;
    t.equal(done.arguments, args);
    t.strictSame(JSON.parse(args), { query: 'weather in Paris' });
    const final = (events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.completed' }>).response;
    t.equal(final.status, 'completed');
    t.match(final.output, [{ type: 'function_call', name: 'get_weather', call_id: /^call_/, arguments: args, status: 'completed' }]);
  });

  t.test('a failure mid-stream ends with response.failed', async (t) => {
    const { data: stream, response } = await client.responses.create({ model: 'mock-1', input: 'Go on [mock:fail-after=3]', stream: true }).withResponse();
    const events: ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    t.equal(events.filter((e) => e.type === 'response.output_text.delta').length, 2, 'the deltas before the failure (the first chunk is the role)');
    const last = events.at(-1)!;
    t.equal(last.type, 'response.failed', 'the last event');
    const failed = (last as Extract<ResponseStreamEvent, { type: 'response.failed' }>).response;
    t.equal(failed.status, 'failed');
    t.match(failed.error, { code: String, message: String });
    t.match(failed.output, [{ type: 'message', status: 'incomplete' }], 'the open message stays unfinished');

    const streamId = response.headers.get('x-stream-id')!;
    const line = await gw.logs.waitForRequest((l) => l.stream_id === streamId);
    t.equal(line.api, 'responses');
    t.equal(line.outcome, 'upstream_error');
  });

  t.test('a client that leaves mid-stream stops the upstream', async (t) => {
    const aborted = mock.aborted;
    const stream = await client.responses.create({ model: 'mock-1', input: 'Slowly [mock:tokens=500] [mock:tps=50]', stream: true });
    for await (const e of stream) if (e.type === 'response.output_text.delta') break;
    await mock.waitForAborts(aborted + 1);
    t.pass('the upstream request was aborted');
  });
});
