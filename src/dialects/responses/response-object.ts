import type { Usage } from '../../streams/stream-log.js';
import type { ResponsesRequest } from './request.js';

/**
 * The OpenAI Responses API `response` object, built the same way for a
 * stream's events, its final event, `GET /v1/responses/{id}` and
 * `stream: false`. Field names and shapes follow the openai SDK's
 * `Response` type (resources/responses/responses.d.ts); the unit tests
 * check them against it. `output_text` is not sent: the SDKs compute it.
 */

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';
export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled';

export interface OutputText {
  type: 'output_text';
  annotations: never[];
  logprobs: never[];
  text: string;
}

export interface MessageItem {
  id: string;
  type: 'message';
  status: ItemStatus;
  content: OutputText[];
  role: 'assistant';
}

export interface FunctionCallItem {
  id: string;
  type: 'function_call';
  status: ItemStatus;
  arguments: string;
  call_id: string;
  name: string;
}

export type OutputItem = MessageItem | FunctionCallItem;

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number; cache_write_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export type TextFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | { type: 'json_schema'; name: string; schema: Record<string, unknown>; strict?: boolean | null; description?: string };

export interface FunctionToolEcho {
  type: 'function';
  name: string;
  description?: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean | null;
}

/** What a response repeats of its request, with the API's defaults filled in. */
export interface ResponseEcho {
  instructions: string | null;
  max_output_tokens: number | null;
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  background: boolean;
  store: boolean;
  temperature: number | null;
  text: { format: TextFormat };
  tool_choice: 'none' | 'auto' | 'required' | { type: 'function'; name: string };
  tools: FunctionToolEcho[];
  top_p: number | null;
  user?: string;
  metadata: Record<string, string>;
}

/** Who a response is: fixed when it starts. */
export interface ResponseMeta {
  /** `resp_…`; item ids are derived from it (see itemId). */
  id: string;
  /** The model as the client named it. */
  model: string;
  /** Unix seconds. */
  createdAt: number;
  echo: ResponseEcho;
}

export interface ResponseObject extends ResponseEcho {
  id: string;
  object: 'response';
  created_at: number;
  status: ResponseStatus;
  completed_at: number | null;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: 'max_output_tokens' | 'content_filter' } | null;
  model: string;
  output: OutputItem[];
  truncation: 'disabled';
  usage: ResponseUsage | null;
}

/** How a response stands: what changes between its events. */
export interface ResponseState {
  status: ResponseStatus;
  output: OutputItem[];
  usage: ResponseUsage | null;
  error?: { code: string; message: string } | null;
  incompleteReason?: 'max_output_tokens' | 'content_filter' | null;
  /** Unix seconds, for a completed response. */
  completedAt?: number | null;
}

export function echoOf(body: ResponsesRequest): ResponseEcho {
  const echo: ResponseEcho = {
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    background: body.background ?? false,
    store: body.store ?? true,
    temperature: body.temperature ?? null,
    text: { format: body.text?.format ?? { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: (body.tools ?? []).map((t) => ({
      type: 'function',
      name: t.name,
      ...(t.description != null ? { description: t.description } : {}),
      parameters: t.parameters ?? null,
      strict: t.strict ?? null,
    })),
    top_p: body.top_p ?? null,
    metadata: body.metadata ?? {},
  };
  if (body.user != null) echo.user = body.user;
  return echo;
}

/** The one builder of the response object; key order as OpenAI sends it. */
export function buildResponse(meta: ResponseMeta, state: ResponseState): ResponseObject {
  const e = meta.echo;
  const out: ResponseObject = {
    id: meta.id,
    object: 'response',
    created_at: meta.createdAt,
    status: state.status,
    background: e.background,
    completed_at: state.completedAt ?? null,
    error: state.error ?? null,
    incomplete_details: state.incompleteReason ? { reason: state.incompleteReason } : null,
    instructions: e.instructions,
    max_output_tokens: e.max_output_tokens,
    model: meta.model,
    output: state.output,
    parallel_tool_calls: e.parallel_tool_calls,
    previous_response_id: e.previous_response_id,
    store: e.store,
    temperature: e.temperature,
    text: e.text,
    tool_choice: e.tool_choice,
    tools: e.tools,
    top_p: e.top_p,
    truncation: 'disabled',
    usage: state.usage,
    metadata: e.metadata,
  };
  if (e.user !== undefined) out.user = e.user;
  return out;
}

/**
 * Item ids carry their response's id and their output index, so an
 * `item_reference` a client sends back (the AI SDK does, with `store`) leads
 * to the stored response that holds the item: see itemAddress.
 */
export function itemId(responseId: string, kind: 'msg' | 'fc', outputIndex: number): string {
  return `${kind}_${responseId.startsWith('resp_') ? responseId.slice(5) : responseId}_${outputIndex}`;
}

/** The response id and output index an item id names, or null for an id this gateway did not make. */
export function itemAddress(id: string): { responseId: string; outputIndex: number } | null {
  const m = /^(?:msg|fc)_(.+)_(\d{1,6})$/.exec(id);
  return m ? { responseId: `resp_${m[1]!}`, outputIndex: Number(m[2]) } : null;
}

/**
 * The final status for a chat finish_reason. `length` is the max_output_tokens
 * cut; anything else that is not a content filter (stop, tool_calls, a
 * provider's own reason, or none at a clean end) completed.
 */
export function finishState(finishReason: string | null): Pick<ResponseState, 'status' | 'incompleteReason'> {
  if (finishReason === 'length') return { status: 'incomplete', incompleteReason: 'max_output_tokens' };
  if (finishReason === 'content_filter') return { status: 'incomplete', incompleteReason: 'content_filter' };
  return { status: 'completed', incompleteReason: null };
}

type ChatUsage = Usage | Record<string, unknown>;

/**
 * A chat `usage` in the Responses shape. `details` is the upstream's own
 * usage object, for the cached and reasoning token counts a bare `Usage`
 * (the relay's) does not carry; without `u`, it gives the counts as well.
 */
export function usageOf(u: ChatUsage | null | undefined, details?: ChatUsage | null): ResponseUsage | null {
  const counts = (u ?? details) as Record<string, unknown> | null | undefined;
  if (!counts || typeof counts !== 'object') return null;
  const d = (details ?? counts) as Record<string, unknown>;
  const input = count(counts.prompt_tokens);
  const output = count(counts.completion_tokens);
  const total = typeof counts.total_tokens === 'number' ? counts.total_tokens : input + output;
  return {
    input_tokens: input,
    // Chat completions reports no cache writes.
    input_tokens_details: { cached_tokens: count(detail(counts.prompt_tokens_details ?? d.prompt_tokens_details, 'cached_tokens')), cache_write_tokens: 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: count(detail(counts.completion_tokens_details ?? d.completion_tokens_details, 'reasoning_tokens')) },
    total_tokens: total,
  };
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

function detail(v: unknown, key: string): unknown {
  return v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
}

export function messageItem(id: string, text: string, status: ItemStatus): MessageItem {
  return { id, type: 'message', status, content: [outputText(text)], role: 'assistant' };
}

export function outputText(text: string): OutputText {
  return { type: 'output_text', annotations: [], logprobs: [], text };
}

export function functionCallItem(id: string, callId: string, name: string, args: string, status: ItemStatus): FunctionCallItem {
  return { id, type: 'function_call', status, arguments: args, call_id: callId, name };
}
