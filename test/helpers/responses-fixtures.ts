import { ResponsesEncoder } from '../../src/dialects/responses/stream-encoder.js';
import { echoOf, type ResponseMeta } from '../../src/dialects/responses/response-object.js';
import type { ResponsesRequest } from '../../src/dialects/responses/request.js';
import type { StreamEnd } from '../../src/streams/stream-log.js';

/**
 * Chat chunk sequences as OpenAI's chat completions streams them (recorded
 * shapes: role chunk, deltas, finish chunk, then the usage chunk with
 * `choices: []`), and helpers to run them through the Responses encoder.
 */

const head = '{"id":"chatcmpl-rec1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":';

export function chunk(delta: Record<string, unknown>, finish: string | null = null): string {
  return head + JSON.stringify([{ index: 0, delta, logprobs: null, finish_reason: finish }]) + '}';
}

export function usageChunk(prompt: number, completion: number, cached = 0): string {
  const usage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  return head + '[],"usage":' + JSON.stringify(usage) + '}';
}

const call = (index: number, fields: Record<string, unknown>) => ({ tool_calls: [{ index, ...fields }] });
const start = (index: number, id: string, name: string) => call(index, { id, type: 'function', function: { name, arguments: '' } });
const args = (index: number, a: string) => call(index, { function: { arguments: a } });

export interface Recording {
  chunks: string[];
  end: StreamEnd;
}

const done = (finish: string, prompt: number, completion: number): StreamEnd => ({
  kind: 'done',
  finish_reason: finish,
  usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
});

export const recordings = {
  textOnly: {
    chunks: [
      chunk({ role: 'assistant', content: '', refusal: null }),
      chunk({ content: 'Hello' }),
      chunk({ content: ' wor' }),
      chunk({ content: 'ld — "quoted"\nline\u2028é😀' }),
      chunk({}, 'stop'),
      usageChunk(12, 4, 3),
    ],
    end: done('stop', 12, 4),
  },
  textThenTool: {
    chunks: [
      chunk({ role: 'assistant', content: '' }),
      chunk({ content: 'Let me ' }),
      chunk({ content: 'check.' }),
      chunk(start(0, 'call_A1', 'get_weather')),
      chunk(args(0, '{"city"')),
      chunk(args(0, ':"Paris"}')),
      chunk({}, 'tool_calls'),
      usageChunk(40, 17),
    ],
    end: done('tool_calls', 40, 17),
  },
  parallelTools: {
    chunks: [
      chunk({ role: 'assistant', content: null, refusal: null }),
      chunk(start(0, 'call_P1', 'get_weather')),
      chunk(start(1, 'call_P2', 'get_time')),
      chunk(args(0, '{"city":')),
      chunk(args(1, '{"tz":')),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }, { index: 1, function: { arguments: '"CET"' } }] }),
      chunk(args(1, '}')),
      chunk({}, 'tool_calls'),
      usageChunk(55, 30),
    ],
    end: done('tool_calls', 55, 30),
  },
  lengthFinish: {
    chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'One two' }), chunk({ content: ' three' }), chunk({}, 'length'), usageChunk(9, 3)],
    end: done('length', 9, 3),
  },
  errorEnd: {
    chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Partial ' }), chunk({ content: 'answ' })],
    end: { kind: 'error', type: 'upstream_error', code: 'upstream_error', message: 'upstream main failed (500): boom' },
  },
} satisfies Record<string, Recording>;

export function meta(body: Partial<ResponsesRequest> = {}, id = 'resp_0123456789abcdef0123456789abcdef'): ResponseMeta {
  return { id, model: body.model ?? 'mock-1', createdAt: 1_700_000_123, echo: echoOf({ model: 'mock-1', input: [], ...body } as ResponsesRequest) };
}

/** A fixed clock: completed_at is part of the bytes compared. */
export const clock = () => 1_700_000_200_000;

/** The whole SSE text of a recording, its chunks read in the given batches, ids from `firstId`. */
export function encode(rec: Recording, batches: readonly (readonly string[])[] = [rec.chunks], firstId = 1, m = meta()): { text: string; count: number; encoder: ResponsesEncoder } {
  const encoder = new ResponsesEncoder(m, clock);
  let text = '';
  let id = firstId;
  const add = (f: { text: string; count: number }) => {
    text += f.text;
    id += f.count;
  };
  add(encoder.open(id));
  for (const b of batches) add(encoder.batch(b, id));
  add(encoder.close(rec.end, id));
  return { text, count: id - firstId, encoder };
}

export interface SseEvent {
  id: number;
  event: string;
  data: Record<string, unknown> & { type: string; sequence_number: number };
}

/** Splits framed events strictly: each must be exactly `id:`, `event:`, one `data:` line. */
export function parseFrames(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  const blocks = text.split('\n\n');
  if (blocks.pop() !== '') throw new Error('frames do not end with a blank line');
  for (const block of blocks) {
    const m = /^id: (\d+)\nevent: ([a-z_.]+)\ndata: ([^\n]*)$/.exec(block);
    if (!m) throw new Error(`malformed frame: ${JSON.stringify(block)}`);
    out.push({ id: Number(m[1]), event: m[2]!, data: JSON.parse(m[3]!) });
  }
  return out;
}
