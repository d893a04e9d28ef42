import t from 'tap';
import { continuationOf, partialAnswer } from '../../src/relay/takeover.js';
import type { ChatRequest } from '../../src/schema/chat-request.js';
import { dataFrames } from '../../src/sse/frame.js';
import { planCompletion } from '../../src/upstream/mock/model.js';
import { FAST_MOCK } from '../helpers/gateway.js';

const request = (content: string, extra: Record<string, unknown> = {}) =>
  ({ model: 'mock-1', messages: [{ role: 'user', content }], ...extra }) as ChatRequest;

t.test('partialAnswer reads the text so far out of framed chunks', async (t) => {
  const plan = planCompletion(request('hello [mock:tokens=12]'), FAST_MOCK);
  const framed = dataFrames(1, plan.chunks.slice(0, 6));
  const p = partialAnswer(framed);
  t.equal(p.content, plan.chunks.slice(1, 6).map((c) => JSON.parse(c).choices[0].delta.content).join(''));
  t.equal(p.deltas, 5, 'the role chunk carries no text');
  t.equal(p.finishReason, null);
  t.equal(p.toolCall, false);
  t.equal(partialAnswer(dataFrames(1, plan.chunks)).finishReason, 'stop', 'a finished answer is seen as finished');
  t.equal(partialAnswer(dataFrames(1, planCompletion(request('x [mock:tools]'), FAST_MOCK).chunks.slice(0, 3))).toolCall, true);
});

t.test('continuationOf: the answer so far as the last assistant message; token limits shrink by what was sent', async (t) => {
  const body = continuationOf(request('hi', { max_tokens: 50, temperature: 0 }), { content: 'The gate', deltas: 2, toolCall: false, finishReason: null });
  t.same(body.messages.at(-1), { role: 'assistant', content: 'The gate' });
  t.equal(body.messages.length, 2);
  t.equal(body.continue_final_message, true);
  t.equal(body.add_generation_prompt, false);
  t.equal(body.max_tokens, 48);
  t.equal(body.temperature, 0, 'everything else is kept');
  t.equal(continuationOf(request('hi', { max_tokens: 2 }), { content: 'ab', deltas: 5, toolCall: false, finishReason: null }).max_tokens, 1);
});

t.test('the mock continues a partial answer exactly where it stopped', async (t) => {
  const full = planCompletion(request('continue me [mock:tokens=20]'), FAST_MOCK);
  const pieces = full.chunks.slice(1, -1).map((c) => JSON.parse(c).choices[0].delta.content as string);
  for (const k of [0, 1, 7, 19, 20]) {
    const prefix = pieces.slice(0, k).join('');
    const cont = planCompletion(continuationOf(request('continue me [mock:tokens=20]'), { content: prefix, deltas: k, toolCall: false, finishReason: null }), FAST_MOCK);
    t.equal(prefix + cont.content, full.content, `after ${k} pieces: prefix + continuation = the whole answer`);
    t.equal(cont.usage.completion_tokens, 20 - k);
    t.equal(cont.id, full.id, 'same completion id');
  }
  const other = planCompletion(continuationOf(request('continue me [mock:tokens=20]'), { content: 'Not this answer', deltas: 3, toolCall: false, finishReason: null }), FAST_MOCK);
  t.equal(other.content, full.content, 'a prefix that is not its own answer: the mock starts over, as a model would diverge');
  const plain = planCompletion({ ...request('continue me [mock:tokens=20]'), messages: [...request('continue me [mock:tokens=20]').messages, { role: 'assistant', content: pieces[0]! }] } as ChatRequest, FAST_MOCK);
  t.not(plain.id, full.id, 'without continue_final_message a last assistant message is just history');
});
