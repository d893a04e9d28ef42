import { namedFrame } from '../../sse/frame.js';
import type { StreamEnd } from '../../streams/stream-log.js';
import { TextChunkReader } from '../chunk-delta.js';
import type { EncodedFrames, StreamEncoder } from '../types.js';
import {
  buildResponse,
  finishState,
  functionCallItem,
  itemId,
  outputText,
  usageOf,
  type FunctionCallItem,
  type ItemStatus,
  type MessageItem,
  type OutputItem,
  type ResponseMeta,
  type ResponseObject,
} from './response-object.js';

/**
 * Upstream chat.completion.chunk JSON → Responses API stream events
 * (`response.created` … `response.completed`). Every event is
 * `id: n` / `event: <type>` / `data: {"type":…,"sequence_number":n}`, n
 * being the stream log's id, so OpenAI's `starting_after` and
 * Last-Event-ID name the same events.
 *
 * The events depend only on the chunks, never on how reads split them, so
 * a replay is byte-identical. Items: the message item closes when a function
 * call starts; function calls stay open together (chat streams interleave
 * parallel calls' arguments by `index`) until text starts again or the end.
 */

interface OpenText {
  item: MessageItem;
  outputIndex: number;
  /** The delta event's JSON up to its delta value: built once per item. */
  deltaPrefix: string;
}

interface OpenCall {
  item: FunctionCallItem;
  outputIndex: number;
  deltaPrefix: string;
}

const TEXT_DELTA = 'response.output_text.delta';
const ARGS_DELTA = 'response.function_call_arguments.delta';

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ResponsesEncoder implements StreamEncoder {
  /** The live output: items are updated in place as deltas arrive. */
  private readonly output: OutputItem[] = [];
  private text: OpenText | null = null;
  /** Open function calls by the chat tool call's `index`, in output order. */
  private readonly calls = new Map<number, OpenCall>();
  private usage: Json | null = null;
  private finishReason: string | null = null;
  private final: ResponseObject | null = null;
  private frames = '';
  private nextId = 0;
  /** Text-only chunks without JSON.parse (chunk-delta.ts); null: every chunk parsed. */
  private readonly textChunks: TextChunkReader | null;

  constructor(
    private readonly meta: ResponseMeta,
    /** Clock for `completed_at` (ms). */
    private readonly now: () => number = Date.now,
    fastPath = true,
  ) {
    this.textChunks = fastPath ? new TextChunkReader() : null;
  }

  open(firstId: number): EncodedFrames {
    this.begin(firstId);
    // One response object in both events: serialized once.
    const response = '"response":' + JSON.stringify(this.snapshot());
    this.emitJson('response.created', response);
    this.emitJson('response.in_progress', response);
    return this.done(firstId);
  }

  batch(chunks: readonly string[], firstId: number): EncodedFrames {
    this.begin(firstId);
    if (!this.final) for (let i = 0; i < chunks.length; i++) this.chunk(chunks[i]!);
    return this.done(firstId);
  }

  close(end: StreamEnd, firstId: number): EncodedFrames {
    this.begin(firstId);
    if (this.final) return this.done(firstId);
    if (end.kind === 'done') {
      const { status, incompleteReason } = finishState(end.finish_reason ?? this.finishReason);
      const itemStatus: ItemStatus = status === 'incomplete' ? 'incomplete' : 'completed';
      this.closeText(itemStatus);
      this.closeCalls(itemStatus);
      this.final = buildResponse(this.meta, {
        status,
        incompleteReason,
        output: this.output,
        usage: usageOf(end.usage, this.usage),
        completedAt: status === 'completed' ? Math.floor(this.now() / 1000) : null,
      });
      this.emit(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: this.final });
    } else {
      // Open items stay as they are, unfinished: no done events after a failure.
      for (const item of this.output) if (item.status === 'in_progress') item.status = 'incomplete';
      this.text = null;
      this.calls.clear();
      const cancelled = end.type === 'cancelled' || end.type === 'deleted';
      this.final = buildResponse(this.meta, {
        status: cancelled ? 'cancelled' : 'failed',
        error: cancelled ? null : { code: end.code ?? end.type, message: end.message },
        output: this.output,
        usage: usageOf(null, this.usage),
      });
      this.emit('response.failed', { response: this.final });
    }
    return this.done(firstId);
  }

  /**
   * The response as it stands: in progress (a copy, the live items keep
   * changing), or the final object once closed. Callers must not modify it.
   */
  snapshot(): ResponseObject {
    return this.final ?? buildResponse(this.meta, { status: 'in_progress', output: this.output.length === 0 ? [] : structuredClone(this.output), usage: null });
  }

  private begin(firstId: number): void {
    this.frames = '';
    this.nextId = firstId;
  }

  private done(firstId: number): EncodedFrames {
    const out = { text: this.frames, count: this.nextId - firstId };
    this.frames = '';
    return out;
  }

  private emit(type: string, fields: Json): void {
    const id = this.nextId++;
    this.frames += namedFrame(type, id, JSON.stringify({ type, ...fields, sequence_number: id }));
  }

  /** emit() with the fields already written as JSON (`"k":v,…`); the same bytes. */
  private emitJson(type: string, fields: string): void {
    const id = this.nextId++;
    this.frames += namedFrame(type, id, '{"type":"' + type + '",' + fields + ',"sequence_number":' + id + '}');
  }

  private chunk(json: string): void {
    const fast = this.textChunks;
    if (fast !== null && fast.read(json)) {
      if (fast.text.length > 0) this.textDelta(fast.text, fast.literal);
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(json);
    } catch {
      return; // the relay frames only JSON objects; nothing to say about anything else
    }
    if (!isObject(chunk)) return;
    fast?.learn(json, chunk);
    if (isObject(chunk.usage)) this.usage = chunk.usage;
    const choices = chunk.choices;
    if (!Array.isArray(choices)) return;
    for (const choice of choices) {
      // One answer per request (n = 1): choice 0.
      if (!isObject(choice) || (choice.index ?? 0) !== 0) continue;
      const delta = choice.delta;
      if (isObject(delta)) {
        if (typeof delta.content === 'string' && delta.content.length > 0) this.textDelta(delta.content, JSON.stringify(delta.content));
        const calls = delta.tool_calls;
        if (Array.isArray(calls)) for (let i = 0; i < calls.length; i++) if (isObject(calls[i])) this.callDelta(calls[i] as Json, i);
      }
      if (typeof choice.finish_reason === 'string') this.finishReason = choice.finish_reason;
    }
  }

  /** `literal` is JSON.stringify(delta). */
  private textDelta(delta: string, literal: string): void {
    const open = this.text ?? this.openText();
    open.item.content[0]!.text += delta;
    const id = this.nextId++;
    this.frames += namedFrame(TEXT_DELTA, id, open.deltaPrefix + literal + ',"logprobs":[],"sequence_number":' + id + '}');
  }

  private openText(): OpenText {
    this.closeCalls('completed');
    const outputIndex = this.output.length;
    const id = itemId(this.meta.id, 'msg', outputIndex);
    const item: MessageItem = { id, type: 'message', status: 'in_progress', content: [], role: 'assistant' };
    this.emit('response.output_item.added', { output_index: outputIndex, item });
    const part = outputText('');
    this.emit('response.content_part.added', { item_id: id, output_index: outputIndex, content_index: 0, part });
    item.content.push(part);
    this.output.push(item);
    const deltaPrefix = `{"type":"${TEXT_DELTA}","item_id":${JSON.stringify(id)},"output_index":${outputIndex},"content_index":0,"delta":`;
    return (this.text = { item, outputIndex, deltaPrefix });
  }

  private closeText(status: ItemStatus): void {
    const open = this.text;
    if (!open) return;
    this.text = null;
    const { item, outputIndex } = open;
    const part = item.content[0]!;
    this.emit('response.output_text.done', { item_id: item.id, output_index: outputIndex, content_index: 0, text: part.text, logprobs: [] });
    this.emit('response.content_part.done', { item_id: item.id, output_index: outputIndex, content_index: 0, part });
    item.status = status;
    this.emit('response.output_item.done', { output_index: outputIndex, item });
  }

  /** One entry of a chunk's `delta.tool_calls`: the first for an index starts the call, the rest carry its arguments. */
  private callDelta(call: Json, position: number): void {
    const index = typeof call.index === 'number' ? call.index : position;
    const fn = isObject(call.function) ? call.function : {};
    let open = this.calls.get(index);
    if (!open) open = this.openCall(index, typeof call.id === 'string' && call.id ? call.id : null, typeof fn.name === 'string' ? fn.name : '');
    // Announced already: a name that arrives late completes it; one repeated later changes nothing.
    else if (!open.item.name && typeof fn.name === 'string') open.item.name = fn.name;
    const args = fn.arguments;
    if (typeof args !== 'string' || args.length === 0) return;
    open.item.arguments += args;
    const id = this.nextId++;
    this.frames += namedFrame(ARGS_DELTA, id, open.deltaPrefix + JSON.stringify(args) + ',"sequence_number":' + id + '}');
  }

  private openCall(index: number, callId: string | null, name: string): OpenCall {
    this.closeText('completed');
    const outputIndex = this.output.length;
    const id = itemId(this.meta.id, 'fc', outputIndex);
    const item = functionCallItem(id, callId ?? `call_${id.slice(3)}`, name, '', 'in_progress');
    this.output.push(item);
    this.emit('response.output_item.added', { output_index: outputIndex, item });
    const deltaPrefix = `{"type":"${ARGS_DELTA}","item_id":${JSON.stringify(id)},"output_index":${outputIndex},"delta":`;
    const open = { item, outputIndex, deltaPrefix };
    this.calls.set(index, open);
    return open;
  }

  private closeCalls(status: ItemStatus): void {
    for (const { item, outputIndex } of this.calls.values()) {
      this.emit('response.function_call_arguments.done', { item_id: item.id, output_index: outputIndex, name: item.name, arguments: item.arguments });
      item.status = status;
      this.emit('response.output_item.done', { output_index: outputIndex, item });
    }
    this.calls.clear();
  }
}
