import { randomBytes } from 'node:crypto';
import { OpenAI } from 'openai';
import type { ResponseStreamEvent } from 'openai/resources/responses/responses';
import t, { type Test } from 'tap';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { within } from '../helpers/cluster.js';
import { startGateway, startMock, viaUpstream, type RunningGateway } from '../helpers/gateway.js';
import { failure } from '../helpers/http.js';
import { REDIS_URL, redisReachable } from '../helpers/redis.js';
import { collect } from '../helpers/sse.js';

/**
 * Two replicas on one Redis: a response generated on A is read, resumed and
 * cancelled through B (its object rebuilt from the shared log), and one
 * handed over by a draining replica ends with the API's own error event.
 */

function textOf(events: readonly ResponseStreamEvent[]): string {
  let text = '';
  for (const e of events) if (e.type === 'response.output_text.delta') text += e.delta;
  return text;
}

if (!(await redisReachable())) {
  t.comment(`SKIPPED: no Redis at ${REDIS_URL} — the cross-replica tests need one (CI starts it)`);
  t.plan(0, `no Redis at ${REDIS_URL}`);
} else {
  const pair = async (t: Test, extra: Record<string, unknown> = {}) => {
    const redisNamespace = `test-${randomBytes(6).toString('hex')}:`;
    const a = await startGateway({ redisUrl: REDIS_URL, ...extra }, { redisNamespace });
    const b = await startGateway({ redisUrl: REDIS_URL, ...extra }, { redisNamespace });
    t.teardown(async () => {
      await a.close();
      await b.close();
    });
    const client = (gw: RunningGateway) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    return { a, b, onA: client(a), onB: client(b) };
  };

  t.test('a response generated on A: read, resumed and cancelled on B', async (t) => {
    const { mock, baseUrl } = await startMock({ tokensPerSecond: 0, firstTokenDelayMs: 0 });
    t.teardown(() => mock.close());
    const { onA, onB } = await pair(t, viaUpstream(baseUrl));

    const first = await onA.responses.create({ model: 'mock-1', input: 'Across [mock:tokens=50] [mock:tps=100]', background: true, stream: true });
    const seen: ResponseStreamEvent[] = [];
    for await (const e of first) {
      seen.push(e);
      if (seen.length === 12) break;
    }
    const id = (seen[0] as Extract<ResponseStreamEvent, { type: 'response.created' }>).response.id;

    const running = await onB.responses.retrieve(id);
    t.equal(running.id, id, 'B finds it');
    t.equal(running.status, 'in_progress');
    t.equal(running.model, 'mock-1');

    const rest = await collect(await onB.responses.retrieve(id, { stream: true, starting_after: seen.at(-1)!.sequence_number }));
    t.equal(rest[0]!.sequence_number, 13, 'no gap');
    t.equal(rest.at(-1)!.type, 'response.completed');
    const plan = planCompletion(mock.requests.at(-1)!.body, { tokensPerSecond: 0, firstTokenDelayMs: 0 });
    t.equal(textOf(seen) + textOf(rest), plan.content);

    const ended = await onB.responses.retrieve(id);
    t.equal(ended.status, 'completed', "B reads the final object from the log's last event");
    t.equal(ended.output_text, plan.content);
    t.match(ended.usage, { output_tokens: 50 });

    const err = await failure(onB.responses.create({ model: 'mock-1', previous_response_id: id, input: 'more' }));
    t.match(err, { status: 400, code: 'previous_response_not_found' }, 'conversations are kept by the replica that generated them');

    t.test('cancel on B stops the upstream on A', async (t) => {
      const aborted = mock.aborted;
      const r = await onA.responses.create({ model: 'mock-1', input: 'Long [mock:tokens=2000] [mock:tps=20]', background: true });
      const reading = collect(await onA.responses.retrieve(r.id, { stream: true }));
      const cancelled = await onB.responses.cancel(r.id);
      t.equal(cancelled.status, 'cancelled');
      t.equal(cancelled.id, r.id);
      await within(10_000, 'the upstream aborted', mock.waitForAborts(aborted + 1));
      const events = await within(10_000, 'the reader on A sees the end', reading);
      t.equal((events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.failed' }>).response.status, 'cancelled');
      await collect(await onB.responses.retrieve(r.id, { stream: true, starting_after: events.at(-1)!.sequence_number - 1 }));
      t.equal((await onB.responses.retrieve(r.id)).status, 'cancelled');
    });
  });

  t.test('a drained replica hands its response over: the reader is told to resume, and the stream ends with an error event', async (t) => {
    const { a, onA, onB } = await pair(t, { streamLeaseMs: 300, mock: { tokensPerSecond: 25, firstTokenDelayMs: 0 } });
    const r = await onA.responses.create({ model: 'mock-1', input: 'Handed over [mock:tokens=200]', background: true });
    const stream = await onA.responses.retrieve(r.id, { stream: true });
    const before: ResponseStreamEvent[] = [];
    let started!: () => void;
    const threeDeltas = new Promise<void>((resolve) => (started = resolve));
    const reading = (async () => {
      for await (const e of stream) {
        before.push(e);
        if (before.filter((x) => x.type === 'response.output_text.delta').length === 3) started();
      }
    })();
    await within(10_000, 'first deltas', threeDeltas);
    t.equal(await a.drain(50), 1, 'the read outlived the drain deadline');
    await within(5_000, 'A lets its reader go', reading);
    const moved = before.at(-1) as unknown as { type: string; code: string; message: string };
    t.match(moved, { type: 'error', code: 'shutdown', message: /starting_after/ }, 'the last thing A says: resume elsewhere');

    const last = before.at(-2)!.sequence_number;
    const rest = await within(15_000, 'the end via B', collect(await onB.responses.retrieve(r.id, { stream: true, starting_after: last })));
    t.match(rest.at(-1), { type: 'error', code: 'generation_lost' }, "the Responses API's own error event");
    t.equal(rest.filter((e) => e.type === 'response.output_text.delta').length, 0, 'nothing after what A logged');
    const object = await onB.responses.retrieve(r.id);
    t.equal(object.status, 'failed');
    t.match(object.error, { code: 'generation_lost' });
  });
}
