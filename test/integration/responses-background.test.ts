import { OpenAI } from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import t from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { failure, send } from '../helpers/http.js';
import { collect, parseSse } from '../helpers/sse.js';

type Completed = Extract<ResponseStreamEvent, { type: 'response.completed' }>;

function textOf(events: readonly ResponseStreamEvent[]): string {
  let text = '';
  for (const e of events) if (e.type === 'response.output_text.delta') text += e.delta;
  return text;
}

/** background: true, resumed with the openai SDK's own retrieve(…, { stream: true, starting_after }), and cancel. */
t.test('Responses: background, resume, cancel', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  const gw = await startGateway({ ...viaUpstream(baseUrl), gatewayApiKeys: ['key-1', 'key-2'], rateLimit: { max: 1000, windowMs: 60_000 } });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-1', maxRetries: 0 });
  const other = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'key-2', maxRetries: 0 });

  t.test('a background stream dropped midway resumes after starting_after with exactly the missing events', async (t) => {
    const first = await client.responses.create({ model: 'mock-1', input: 'Keep going [mock:tokens=60] [mock:tps=100]', background: true, stream: true });
    const seen: ResponseStreamEvent[] = [];
    for await (const e of first) {
      seen.push(e);
      if (seen.filter((x) => x.type === 'response.output_text.delta').length === 10) break; // the client drops
    }
    const id = (seen[0] as Extract<ResponseStreamEvent, { type: 'response.created' }>).response.id;
    t.equal((seen[0] as Extract<ResponseStreamEvent, { type: 'response.created' }>).response.background, true);
    const last = seen.at(-1)!.sequence_number;

    // Still generating with no reader: the object as it stands holds the text so far.
    const now = await client.responses.retrieve(id);
    const plan = planCompletion(mock.requests.at(-1)!.body, FAST_MOCK);
    t.equal(now.status, 'in_progress');
    t.ok(now.output_text.length > 0 && plan.content.startsWith(now.output_text), 'the snapshot holds the answer so far');

    const rest: ResponseStreamEvent[] = [];
    for await (const e of await client.responses.retrieve(id, { stream: true, starting_after: last })) rest.push(e);
    t.equal(rest[0]!.sequence_number, last + 1, 'no gap');
    t.strictSame(
      rest.map((e) => e.sequence_number),
      rest.map((_, i) => last + 1 + i),
      'no repeat, in order',
    );
    t.equal(rest.at(-1)!.type, 'response.completed');
    t.equal(textOf(seen) + textOf(rest), plan.content, 'the whole answer, once');
    t.equal(mock.requests.at(-1)!.outcome, 'completed', 'the generation went on without a reader');

    t.test('the same through responses.stream({ response_id, starting_after }) and Last-Event-ID', async (t) => {
      const after: ResponseStreamEvent[] = [];
      const runner = client.responses.stream({ response_id: id, starting_after: last });
      runner.on('event', (e) => after.push(e));
      const final = await runner.finalResponse();
      t.equal(final.output_text, plan.content);
      t.strictSame(after, rest, 'the SDK filters the same events');

      const raw = await send(`${gw.url}/v1/responses/${id}?stream=true`, { headers: { authorization: 'Bearer key-1', 'last-event-id': String(last) } });
      t.equal(raw.status, 200);
      t.match(raw.headers['content-type'], /^text\/event-stream/);
      const events = parseSse(raw.body).events;
      t.strictSame(
        events.map((e) => JSON.parse(e.data)),
        JSON.parse(JSON.stringify(rest)),
      );
      t.strictSame(
        events.map((e) => e.event),
        rest.map((e) => e.type),
        'event: <type>',
      );
    });

    t.test('starting_after at or past the end: the stream ends at once, with no events', async (t) => {
      const end = rest.at(-1)!.sequence_number;
      for (const after of [end, end + 5]) {
        const events: ResponseStreamEvent[] = [];
        for await (const e of await client.responses.retrieve(id, { stream: true, starting_after: after })) events.push(e);
        t.strictSame(events, [], `starting_after=${after}`);
      }
    });

    t.test('cancelling an ended response answers it as it is', async (t) => {
      const r = await client.responses.cancel(id);
      t.equal(r.status, 'completed');
      // The SDK's cancel() adds no output_text: read the item.
      t.match(r.output, [{ type: 'message', content: [{ type: 'output_text', text: plan.content }] }]);
    });
  });

  t.test('background without stream answers at once; the object follows the generation', async (t) => {
    const queued = await client.responses.create({ model: 'mock-1', input: 'In the background [mock:tokens=30] [mock:tps=300]', background: true });
    t.equal(queued.status, 'in_progress');
    t.equal(queued.background, true);
    t.match(queued.id, /^resp_/);
    // Waits for the end on the response's own stream, from the start.
    const final = await client.responses.stream({ response_id: queued.id }).finalResponse();
    t.equal(final.status, 'completed');
    const got = await client.responses.retrieve(queued.id);
    t.equal(got.status, 'completed');
    t.equal(got.output_text, final.output_text);
    t.equal(got.output_text, planCompletion(mock.requests.at(-1)!.body, FAST_MOCK).content);
    const cont = await client.responses.create({ model: 'mock-1', previous_response_id: queued.id, input: 'more [mock:echo]' });
    t.equal(cont.status, 'completed', 'a background response can be continued');
  });

  t.test('cancel: the owner only; it stops the upstream and the response reads cancelled', async (t) => {
    const aborted = mock.aborted;
    const r = await client.responses.create({ model: 'mock-1', input: 'Forever [mock:tokens=2000] [mock:tps=20]', background: true });
    const stream = await client.responses.retrieve(r.id, { stream: true });
    const events: ResponseStreamEvent[] = [];
    const reading = (async () => {
      for await (const e of stream) events.push(e);
    })();

    const denied = await failure(other.responses.cancel(r.id));
    t.type(denied, OpenAI.PermissionDeniedError);
    t.match(denied, { status: 403, code: 'forbidden' });
    t.equal((await client.responses.retrieve(r.id)).status, 'in_progress', 'still running');

    const cancelled = await client.responses.cancel(r.id);
    t.equal(cancelled.status, 'cancelled');
    t.equal(cancelled.id, r.id);
    await mock.waitForAborts(aborted + 1);
    await reading;
    t.equal(events.at(-1)!.type, 'response.failed', 'its reader saw the end');
    t.equal((events.at(-1) as Completed).response.status, 'cancelled');
    t.equal((await client.responses.retrieve(r.id)).status, 'cancelled');
    t.equal((await client.responses.cancel(r.id)).status, 'cancelled', 'cancelling again changes nothing');
    t.match(await failure(client.responses.cancel('resp_AAAAAAAAAAAAAAAAAAAAAA')), { status: 404 });
  });

  t.test('a POST retried with the same Idempotency-Key gets the first response, not a second generation', async (t) => {
    const sent = mock.requests.length;
    const body = { model: 'mock-1', input: 'Only once [mock:tokens=20] [mock:tps=200]' };
    const headers = { 'Idempotency-Key': `once-${Date.now()}` };
    const [one, two] = await Promise.all([client.responses.create(body, { headers }), client.responses.create(body, { headers })]);
    t.equal(two.id, one.id);
    t.equal(two.status, 'completed');
    t.equal(two.output_text, one.output_text);

    const bg = { ...body, input: 'Background once [mock:tokens=20]', background: true, stream: true as const };
    const bgHeaders = { 'Idempotency-Key': `bg-${Date.now()}` };
    const first = await collect(await client.responses.create(bg, { headers: bgHeaders }));
    const retry = await send(`${gw.url}/v1/responses`, {
      headers: { authorization: 'Bearer key-1', 'content-type': 'application/json', ...bgHeaders, 'last-event-id': '5' },
      body: bg,
    });
    t.equal(retry.status, 200);
    t.strictSame(
      parseSse(retry.body).events.map((e) => JSON.parse(e.data)),
      JSON.parse(JSON.stringify(first.slice(5))),
      'the retry gets the events after Last-Event-ID',
    );
    t.equal(mock.requests.length, sent + 2, 'one upstream call per key');
  });

  t.test('starting_after ahead of a running stream → 400 naming it', async (t) => {
    const r = await client.responses.create({ model: 'mock-1', input: 'Slow [mock:tokens=200] [mock:tps=20]', background: true });
    const err = await failure(client.responses.retrieve(r.id, { stream: true, starting_after: 100_000 }));
    t.type(err, OpenAI.BadRequestError);
    t.match(err, { status: 400, param: 'starting_after' });
    await client.responses.cancel(r.id);
  });

  t.test('reads are outside the request rate limit', async (t) => {
    const limited = await startGateway({ mock: FAST_MOCK, rateLimit: { max: 2, windowMs: 60_000 } });
    t.teardown(() => limited.close());
    const c = new OpenAI({ baseURL: `${limited.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await c.responses.create({ model: 'mock-1', input: 'hi' });
    for (let i = 0; i < 5; i++) t.equal((await c.responses.retrieve(r.id)).id, r.id);
    await c.responses.create({ model: 'mock-1', input: 'hi' });
    t.type(await failure(c.responses.create({ model: 'mock-1', input: 'hi' })), OpenAI.RateLimitError, 'POSTs still are');
  });
});
