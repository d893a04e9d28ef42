import { createHash } from 'node:crypto';
import { lastUserText, type ChatRequest } from '../../schema/chat-request.js';

/**
 * The built-in mock model: deterministic (same request, same text), with
 * configurable speed, usage, tool calls, and faults that tests switch on from
 * the prompt itself, so a scenario travels through any client and gateway:
 *
 *   [mock:tokens=N]        answer with N tokens
 *   [mock:tps=N]           N tokens per second (0 = no delay)
 *   [mock:first-token-ms=N] delay before the first chunk
 *   [mock:echo]            answer with the prompt's own text
 *   [mock:tools]           call a tool even if the request defines none
 *   [mock:fail-before=S]   fail with HTTP status S before any byte
 *   [mock:fail-after=N]    send an error event after N chunks
 *   [mock:drop-after=N]    cut the connection after N chunks, without notice
 *   [mock:hang]            never answer
 *   [mock:hang-after=N]    stall forever after N chunks
 *
 * It also continues a partial answer the way vLLM does with
 * `continue_final_message: true`: a last assistant message is taken as the
 * start of the answer, and only the rest is generated (see relay/takeover.ts).
 */

export const MOCK_MODELS = ['mock-1', 'mock-1-mini'] as const;

export interface MockSpeed {
  tokensPerSecond: number;
  firstTokenDelayMs: number;
}

export type MockFault =
  | { kind: 'fail-before'; status: number }
  | { kind: 'fail-after'; after: number }
  | { kind: 'drop-after'; after: number }
  | { kind: 'hang' }
  | { kind: 'hang-after'; after: number };

export interface MockPlan {
  id: string;
  created: number;
  model: string;
  /** Chunk JSON, in order, without the usage chunk. */
  chunks: string[];
  /** The usage chunk, sent when the request asked for it. */
  usageChunk: string;
  content: string;
  toolCall: { id: string; name: string; arguments: string } | null;
  finishReason: 'stop' | 'length' | 'tool_calls';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  firstTokenMs: number;
  interTokenMs: number;
  fault: MockFault | null;
}

const WORDS = (
  'the gateway streams each token as a server sent event so browsers render text while the model ' +
  'is still thinking frontends reconnect with last event id and resume exactly where they left off ' +
  'nothing lost nothing repeated every delta flows through one relay with backpressure heartbeats ' +
  'and clear errors when an upstream fails quickly or slowly'
).split(' ');

const DIRECTIVE = /\[mock:([a-z-]+)(?:=([^\]]*))?\]/g;

function directives(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(DIRECTIVE)) out.set(m[1]!, m[2] ?? '');
  return out;
}

function num(d: Map<string, string>, key: string): number | undefined {
  const v = d.get(key);
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** mulberry32: small, fast and good enough to pick words deterministically (tests seed it too). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function promptChars(req: ChatRequest): number {
  let n = 0;
  for (const m of req.messages) {
    const c = m.content;
    if (typeof c === 'string') n += c.length;
    else if (Array.isArray(c)) for (const p of c) if ('text' in p) n += p.text.length;
  }
  return n;
}

/** Splits text into ~4-character pieces, the way tokenizers roughly do. */
function pieces(text: string): string[] {
  return text.match(/\s*\S{1,4}|\s+/g) ?? [];
}

function fault(d: Map<string, string>): MockFault | null {
  const before = num(d, 'fail-before');
  if (before !== undefined) return { kind: 'fail-before', status: Math.trunc(before) || 500 };
  if (d.has('hang')) return { kind: 'hang' };
  const fail = num(d, 'fail-after');
  if (fail !== undefined) return { kind: 'fail-after', after: fail };
  const drop = num(d, 'drop-after');
  if (drop !== undefined) return { kind: 'drop-after', after: drop };
  const hang = num(d, 'hang-after');
  if (hang !== undefined) return { kind: 'hang-after', after: hang };
  return null;
}

/** `extraDirectives` apply on top of the prompt's own (a mock server that always fails, say). */
export function planCompletion(full: ChatRequest, speed: MockSpeed, extraDirectives = ''): MockPlan {
  const { req, prefix } = continuation(full);
  const userText = lastUserText(req);
  const d = directives(userText + extraDirectives);
  const hash = createHash('sha256').update(JSON.stringify([req.model, req.messages, req.tools ?? null])).digest();
  const next = rng(hash.readUInt32LE(0));
  const id = 'chatcmpl-mock' + hash.toString('hex').slice(0, 20);
  const created = Math.floor(Date.now() / 1000);
  const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? Infinity;

  const wantsTool =
    d.has('tools') || (req.tools !== undefined && req.tools.length > 0 && req.tool_choice !== 'none');
  let toolCall: MockPlan['toolCall'] = null;
  let contentPieces: string[] = [];
  let argPieces: string[] = [];
  let finishReason: MockPlan['finishReason'] = 'stop';

  if (wantsTool) {
    const choice = req.tool_choice;
    const name =
      typeof choice === 'object' ? choice.function.name : (req.tools?.[0]?.function.name ?? 'lookup');
    const args = JSON.stringify({ query: userText.replace(DIRECTIVE, '').trim().slice(0, 60) });
    toolCall = { id: 'call_' + hash.toString('hex').slice(20, 36), name, arguments: args };
    argPieces = pieces(args);
    finishReason = 'tool_calls';
  } else {
    if (d.has('echo')) {
      contentPieces = pieces(userText.replace(DIRECTIVE, ''));
    } else {
      const count = Math.trunc(num(d, 'tokens') ?? 24 + Math.floor(next() * 24));
      for (let i = 0; i < count; i++) contentPieces.push((i === 0 ? '' : ' ') + WORDS[Math.floor(next() * WORDS.length)]!);
      if (contentPieces.length > 0) contentPieces[0] = contentPieces[0]!.charAt(0).toUpperCase() + contentPieces[0]!.slice(1);
    }
    if (prefix !== null) contentPieces = afterPrefix(contentPieces, prefix);
    if (contentPieces.length > maxTokens) {
      contentPieces = contentPieces.slice(0, maxTokens);
      finishReason = 'length';
    }
  }

  const base = (choices: string) =>
    `{"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(req.model)},"system_fingerprint":"fp_mock","choices":${choices}}`;
  const choice = (delta: unknown, finish: string | null) =>
    `[{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish ? `"${finish}"` : 'null'}}]`;

  const chunks: string[] = [];
  if (toolCall) {
    chunks.push(
      base(choice({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.name, arguments: '' } }] }, null)),
    );
    for (const a of argPieces) chunks.push(base(choice({ tool_calls: [{ index: 0, function: { arguments: a } }] }, null)));
  } else {
    chunks.push(base(choice({ role: 'assistant', content: '' }, null)));
    for (const p of contentPieces) chunks.push(base(choice({ content: p }, null)));
  }
  chunks.push(base(choice({}, finishReason)));

  const completionTokens = toolCall ? argPieces.length : contentPieces.length;
  // The partial answer counts as prompt, as it does for a model that continues one.
  const promptTokens = Math.max(1, Math.ceil(promptChars(full) / 4));
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  const tps = num(d, 'tps') ?? speed.tokensPerSecond;

  return {
    id,
    created,
    model: req.model,
    chunks,
    usageChunk: base('[]').slice(0, -1) + `,"usage":${JSON.stringify(usage)}}`,
    content: contentPieces.join(''),
    toolCall,
    finishReason,
    usage,
    firstTokenMs: num(d, 'first-token-ms') ?? speed.firstTokenDelayMs,
    interTokenMs: tps > 0 ? 1000 / tps : 0,
    fault: fault(d),
  };
}

/** The request without a partial answer to continue, and that answer (null when there is none to continue). */
function continuation(req: ChatRequest): { req: ChatRequest; prefix: string | null } {
  const last = req.messages.at(-1);
  if (req.continue_final_message !== true || last?.role !== 'assistant' || typeof last.content !== 'string') return { req, prefix: null };
  const { continue_final_message: _c, ...rest } = req;
  return { req: { ...rest, messages: req.messages.slice(0, -1) } as ChatRequest, prefix: last.content };
}

/** The pieces after those that spell `prefix`; all of them when the prefix is not this answer's start (a model would diverge too). */
function afterPrefix(all: string[], prefix: string): string[] {
  let at = 0;
  for (let i = 0; i < all.length && at < prefix.length; i++) {
    if (!prefix.startsWith(all[i]!, at)) return all;
    at += all[i]!.length;
    if (at === prefix.length) return all.slice(i + 1);
  }
  return prefix.length === 0 ? all : [];
}

/** The plan as one `chat.completion` object, for `stream: false`. */
export function completionObject(plan: MockPlan): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: plan.toolCall ? null : plan.content, refusal: null };
  if (plan.toolCall) {
    message.tool_calls = [{ id: plan.toolCall.id, type: 'function', function: { name: plan.toolCall.name, arguments: plan.toolCall.arguments } }];
  }
  return {
    id: plan.id,
    object: 'chat.completion',
    created: plan.created,
    model: plan.model,
    system_fingerprint: 'fp_mock',
    choices: [{ index: 0, message, logprobs: null, finish_reason: plan.finishReason }],
    usage: plan.usage,
  };
}

export function mockModelList(): { id: string; object: 'model'; created: number; owned_by: string }[] {
  return MOCK_MODELS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'mock' }));
}
