import { MessagesEncoder } from '../../src/dialects/messages/stream-encoder.js';
import type { StreamEnd } from '../../src/streams/stream-log.js';

/**
 * Chat chunk sequences in the shapes OpenAI-compatible servers stream them
 * (OpenAI: role chunk, deltas, finish chunk, then the usage chunk with
 * `choices: []`; vLLM: the matched stop string in the choice's `stop_reason`),
 * and helpers to run them through the Messages encoder.
 */

const head =
  '{"id":"chatcmpl-rec9","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0ba0d124f1","choices":';

export function chunk(delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}): string {
  return head + JSON.stringify([{ index: 0, delta, logprobs: null, finish_reason: finish, ...extra }]) + ',"usage":null}';
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

const calls = (...entries: Record<string, unknown>[]) => ({ tool_calls: entries });
const start = (index: number, id: string, name: string) => ({ index, id, type: 'function', function: { name, arguments: '' } });
const args = (index: number, a: string) => ({ index, function: { arguments: a } });

export interface Recording {
  chunks: string[];
  end: StreamEnd;
  stopSequences?: string[];
}

const done = (finish: string | null, prompt: number, completion: number, cached = 0): StreamEnd => ({
  kind: 'done',
  finish_reason: finish,
  usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: cached } } as never,
});

export const recordings = {
  textOnly: {
    chunks: [
      chunk({ role: 'assistant', content: '', refusal: null }),
      chunk({ content: 'Hello' }),
      chunk({ content: ' wor' }),
      chunk({ content: 'ld — "quoted"\nline\u2028é😀\n\ndata: x\n\n' }),
      chunk({}, 'stop'),
      usageChunk(12, 4, 3),
    ],
    end: done('stop', 12, 4, 3),
  },
  textThenTool: {
    chunks: [
      chunk({ role: 'assistant', content: '' }),
      chunk({ content: 'Let me ' }),
      chunk({ content: 'check.' }),
      chunk(calls(start(0, 'call_A1', 'get_weather'))),
      chunk(calls(args(0, '{"city"'))),
      chunk(calls(args(0, ':"Paris"}'))),
      chunk({}, 'tool_calls'),
      usageChunk(40, 17),
    ],
    end: done('tool_calls', 40, 17),
  },
  /** Two tool calls whose argument deltas interleave, one chunk carrying both, and text between them. */
  parallelInterleaved: {
    chunks: [
      chunk({ role: 'assistant', content: null, refusal: null }),
      chunk(calls(start(0, 'call_P1', 'get_weather'))),
      chunk(calls(start(1, 'call_P2', 'get_time'))),
      chunk(calls(args(0, '{"city":'))),
      chunk({ content: 'Checking both.' }),
      chunk(calls(args(1, '{"tz":'))),
      chunk(calls(args(0, '"Paris"}'), args(1, '"CET"'))),
      chunk(calls(args(1, '}'))),
      chunk({}, 'tool_calls'),
      usageChunk(55, 30),
    ],
    end: done('tool_calls', 55, 30),
  },
  /** OpenAI's usual order: the second call starts after the first one's arguments. */
  parallelSequential: {
    chunks: [
      chunk({ role: 'assistant', content: null }),
      chunk(calls(start(0, 'call_S1', 'get_weather'))),
      chunk(calls(args(0, '{"city": "Oslo"}'))),
      chunk(calls(start(1, 'call_S2', 'get_weather'))),
      chunk(calls(args(1, '{"city": "Rome"}'))),
      chunk({}, 'tool_calls'),
      usageChunk(50, 20),
    ],
    end: done('tool_calls', 50, 20),
  },
  length: {
    chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'The answer is' }), chunk({ content: ' long' }), chunk({}, 'length'), usageChunk(9, 3)],
    end: done('length', 9, 3),
  },
  /** An upstream that finishes with "stop" after a tool call (some do); no usage at all. */
  toolStopNoUsage: {
    chunks: [chunk(calls(start(0, 'call_N1', 'lookup'))), chunk(calls(args(0, '{"q":"x"}'))), chunk({}, 'stop')],
    end: { kind: 'done', finish_reason: 'stop', usage: null },
  },
  /** vLLM names the matched stop string in the choice's stop_reason. */
  vllmStopSequence: {
    chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'one, two' }), chunk({}, 'stop', { stop_reason: '###' }), usageChunk(8, 2)],
    end: done('stop', 8, 2),
    stopSequences: ['END', '###'],
  },
  errorEnd: {
    chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Partial an' }), chunk({ content: 'swer' })],
    end: { kind: 'error', type: 'upstream_error', code: 'upstream_error', message: 'upstream mock failed (502): mock failure mid-stream' },
  },
} satisfies Record<string, Recording>;

export const MESSAGE_ID = 'msg_01TestMessageId0000000000';
export const MODEL = 'claude-gateway-test';

export function encoder(rec: Recording, inputTokens = 10): MessagesEncoder {
  return new MessagesEncoder({ id: MESSAGE_ID, model: MODEL, inputTokens, stopSequences: rec.stopSequences ?? [] });
}

export interface Encoded {
  text: string;
  count: number;
  encoder: MessagesEncoder;
}

/** The whole stream: open, the chunks in the given batches, close; ids from `firstId` on. */
export function encode(rec: Recording, batches: readonly (readonly string[])[] = [rec.chunks], firstId = 1): Encoded {
  const enc = encoder(rec);
  let id = firstId;
  let text = '';
  const add = (f: { text: string; count: number }) => {
    text += f.text;
    id += f.count;
  };
  add(enc.open(id));
  for (const b of batches) add(enc.batch(b, id));
  add(enc.close(rec.end, id));
  return { text, count: id - firstId, encoder: enc };
}

export interface Frame {
  id: number;
  event: string;
  data: Record<string, unknown>;
}

/** Splits framed events, checking each is exactly `id:`, `event:` and one `data:` line. */
export function frames(text: string): Frame[] {
  const out: Frame[] = [];
  for (const raw of text.split('\n\n')) {
    if (raw === '') continue;
    const m = /^id: (\d+)\nevent: ([a-z_]+)\ndata: ([^\n\r]*)$/.exec(raw);
    if (!m) throw new Error(`malformed frame: ${JSON.stringify(raw)}`);
    out.push({ id: Number(m[1]), event: m[2]!, data: JSON.parse(m[3]!) as Record<string, unknown> });
  }
  return out;
}

/** A fetch that answers every request with `body` and records what was sent. */
export function fakeFetch(body: string, init: ResponseInit = {}): { fetch: typeof fetch; sent: unknown[] } {
  const sent: unknown[] = [];
  const fetchImpl = (async (_url: unknown, req?: RequestInit) => {
    sent.push(typeof req?.body === 'string' ? JSON.parse(req.body) : null);
    return new Response(body, init);
  }) as typeof fetch;
  return { fetch: fetchImpl, sent };
}
