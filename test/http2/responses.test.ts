import http2 from 'node:http2';
import t from 'tap';
import { h2Get, h2Post, startH2cGateway, within } from '../helpers/http2.js';

/** CONTRACT "The same everywhere": the Responses API over HTTP/2 streams, resumes and aborts as over HTTP/1.1. */

const body = (input: string) => ({ model: 'mock-1', input, stream: true });

t.test('over HTTP/2 (h2c): a Responses stream ends with response.completed, resumes by sequence number, and a reset aborts its upstream', async (t) => {
  const { mock, session } = await startH2cGateway(t);
  const done = h2Post(session, '/v1/responses', body('h2 [mock:tokens=10]'));
  const leaving = h2Post(session, '/v1/responses', body('h2 leaving [mock:tokens=500]'));
  await leaving.until((x) => x.events.length >= 4, 5000, 'the leaving stream to start');
  leaving.stream.close(http2.constants.NGHTTP2_CANCEL);
  await within(mock.waitForAborts(1), 5000, 'the reset stream’s upstream to be aborted');
  await done.done(5000);
  t.equal(done.status, 200);
  const types = done.events.map((e) => e.event);
  t.equal(types[0], 'response.created');
  t.equal(types.at(-1), 'response.completed', 'the last event is response.completed');
  t.same(
    done.events.map((e) => Number(e.id)),
    done.events.map((_e, i) => i + 1),
    'ids are consecutive sequence numbers',
  );
  const seq = done.events.map((e) => (JSON.parse(e.data!) as { sequence_number: number }).sequence_number);
  t.same(seq, done.events.map((e) => Number(e.id)), 'sequence_number equals the event id');

  // Resume on the same session: everything after sequence number 3, nothing before, nothing twice.
  const streamId = String(done.headers?.['x-stream-id']);
  const responseId = 'resp_' + streamId.slice('str_'.length);
  const resumed = h2Get(session, `/v1/responses/${responseId}?stream=true&starting_after=3`);
  await resumed.done(5000);
  t.equal(resumed.status, 200);
  t.same(
    resumed.events.map((e) => e.data),
    done.events.slice(3).map((e) => e.data),
    'the events after sequence number 3, exactly',
  );
  t.equal(mock.aborted, 1, 'only the reset stream was aborted');
});
