import Anthropic, { APIError } from '@anthropic-ai/sdk';
import t from 'tap';
import { messagesWire } from '../../src/dialects/messages/wire.js';
import type { StreamEnd } from '../../src/streams/stream-log.js';
import { encoder, fakeFetch, frames, recordings } from '../helpers/messages-fixtures.js';

/**
 * How a Messages stream's own POST ends when the log holds no closing events
 * (a takeover that could not continue it, a replica shutting down), read by
 * the official SDK: it must throw, never wait for a message_stop.
 */

const params = { model: 'm', max_tokens: 64, messages: [{ role: 'user' as const, content: 'hi' }] };
const sse = { headers: { 'content-type': 'text/event-stream; charset=utf-8' } };

/** The encoder's events up to the middle of the answer, as a log holds them when it ends unframed. */
function partial(): { text: string; nextId: number } {
  const enc = encoder(recordings.textOnly);
  const open = enc.open(1);
  const some = enc.batch(recordings.textOnly.chunks.slice(0, 3), 1 + open.count);
  return { text: open.text + some.text, nextId: 1 + open.count + some.count };
}

async function sdkError(text: string): Promise<{ err: APIError; deltas: string[] }> {
  const anthropic = new Anthropic({ apiKey: 'x', baseURL: 'http://127.0.0.1:1', maxRetries: 0, fetch: fakeFetch(text, sse).fetch });
  const stream = anthropic.messages.stream(params);
  const deltas: string[] = [];
  stream.on('text', (d) => deltas.push(d));
  const err = await stream.finalMessage().then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof APIError)) throw new Error(`expected an APIError, got ${String(err)}`);
  return { err, deltas };
}

t.test('a framed end adds nothing: the encoder wrote the closing events', async (t) => {
  const done: StreamEnd = { kind: 'done', finish_reason: 'stop', usage: null, framed: true };
  const failed: StreamEnd = { kind: 'error', type: 'upstream_error', code: 'upstream_error', message: 'x', framed: true };
  t.equal(messagesWire.end(done, 9), '');
  t.equal(messagesWire.end(failed, 9), '');
});

t.test('an unframed error end: one error event with its id, which the SDK throws', async (t) => {
  const { text, nextId } = partial();
  const lost: StreamEnd = { kind: 'error', type: 'generation_lost', message: 'the replica running this stream stopped' };
  const end = messagesWire.end(lost, nextId);
  const [frame] = frames(end);
  t.match(frame, { id: nextId, event: 'error', data: { type: 'error', error: { type: 'api_error', details: { error_code: 'generation_lost' } } } });
  const { err, deltas } = await sdkError(text + end);
  t.equal(err.type, 'api_error');
  t.equal(err.errorCode, 'generation_lost');
  t.equal(deltas.join(''), 'Hello wor', 'the text before it was delivered');

  const timeout = messagesWire.end({ kind: 'error', type: 'upstream_timeout', message: 'slow' }, 4);
  t.match(frames(timeout)[0], { data: { error: { type: 'timeout_error' } } }, 'the type follows the end');
});

t.test('an unframed done (no encoder ran) is an error too, not a stream that never stops', async (t) => {
  const end = messagesWire.end({ kind: 'done', finish_reason: 'stop', usage: null }, 5);
  t.match(frames(end)[0], { id: 5, event: 'error', data: { error: { type: 'api_error' } } });
});

t.test('moved: an overloaded_error event without an id, which the SDK throws', async (t) => {
  t.notMatch(messagesWire.moved, /^id:/m, 'not one of the stream\u2019s events');
  t.match(messagesWire.moved, /^event: error\ndata: [^\n]+\n\n$/);
  const { err } = await sdkError(partial().text + messagesWire.moved);
  t.equal(err.type, 'overloaded_error');
  t.equal(err.errorCode, 'shutdown');
  t.match(err.message, /retry/);
});
