import { namedFrame } from '../../sse/frame.js';
import type { StreamEnd } from '../../streams/stream-log.js';
import { TextChunkReader } from '../chunk-delta.js';
import type { EncodedFrames, StreamEncoder } from '../types.js';
import { anthropicError, errorTypeForStreamEnd } from './error-type.js';
import {
  buildMessage,
  matchedStopSequence,
  messageUsage,
  stopReason,
  textBlock,
  toolUseBlock,
  type ChatUsage,
  type Message,
  type StopReason,
} from './message.js';

export interface MessagesEncoderOptions {
  /** `msg_…` (newMessageId). */
  id: string;
  /** The model as the client named it. */
  model: string;
  /** Input tokens for message_start, before the upstream's usage is known (estimateInputTokens). */
  inputTokens: number;
  /** The request's stop_sequences, to name the one the upstream stopped on. */
  stopSequences: readonly string[];
  /** Read text-only chunks without JSON.parse (chunk-delta.ts); default true. */
  fastPath?: boolean;
}

interface ToolCall {
  id: string;
  name: string;
  /** The arguments so far, as the upstream sent them. */
  args: string;
}

type Block = { kind: 'text'; text: string } | { kind: 'tool'; call: ToolCall };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Upstream chat.completion.chunk JSON → Anthropic Messages stream events:
 * message_start, then content_block_start / content_block_delta /
 * content_block_stop per block, and message_delta + message_stop (or an
 * `error` event) at the end.
 *
 * Anthropic's blocks follow one another; chat's tool calls may interleave
 * their argument deltas (by `index`), and text may come between them. So a
 * text block stays open until a tool call starts; a tool call's block stays
 * open, its arguments streamed as they come, until the end of the answer,
 * because chat never says that a tool call is complete. Whatever arrives
 * while a tool call's block is open (another tool call, more text) is held
 * and written at the end, each as a whole block, in the order it began.
 * Nothing is ever written out of order or lost, and the usual answer (text,
 * then one tool call) streams entirely live; the price is that a second tool
 * call, even one that starts after the first is complete (OpenAI's parallel
 * calls do), reaches the client whole at the end. Tool arguments are passed
 * on as the model wrote them: the client parses them.
 *
 * Output depends only on the chunks, not on how they were batched: one
 * stream's frames are byte-identical however its reads were split.
 */
export class MessagesEncoder implements StreamEncoder {
  /** Blocks written so far, at their Anthropic index. */
  private readonly blocks: Block[] = [];
  /** Whether the last of `blocks` is still open. */
  private blockOpen = false;
  /** Blocks held until the end (see above). */
  private readonly held: Block[] = [];
  private readonly calls = new Map<number, ToolCall>();
  private finishReason: string | null = null;
  private stopSequence: string | null = null;
  private stop: StopReason | null = null;
  private usage: ChatUsage | null = null;
  /** Chunks that carried output: the output estimate when the upstream reports no usage (as relay/token-budget.ts counts). */
  private outputChunks = 0;
  private frames = '';
  private nextId = 0;
  private readonly textChunks: TextChunkReader | null;

  constructor(private readonly o: MessagesEncoderOptions) {
    this.textChunks = o.fastPath === false ? null : new TextChunkReader();
  }

  open(firstId: number): EncodedFrames {
    this.nextId = firstId;
    const message = this.message([], null, messageUsage(null, this.o.inputTokens, 0));
    this.emit('message_start', JSON.stringify({ type: 'message_start', message }));
    return this.take(firstId);
  }

  batch(chunks: readonly string[], firstId: number): EncodedFrames {
    this.nextId = firstId;
    for (let i = 0; i < chunks.length; i++) this.chunk(chunks[i]!);
    return this.take(firstId);
  }

  close(end: StreamEnd, firstId: number): EncodedFrames {
    this.nextId = firstId;
    if (end.kind === 'error') {
      // As Anthropic does: the error event alone, open blocks left as they are.
      const body = anthropicError(errorTypeForStreamEnd(end), end.message, end.code ?? end.type);
      this.emit('error', JSON.stringify(body));
      return this.take(firstId);
    }
    this.closeBlock();
    for (const block of this.held) {
      this.startBlock(block);
      if (block.kind === 'text') this.textDelta(JSON.stringify(block.text));
      else if (block.call.args !== '') this.jsonDelta(block.call.args);
      this.closeBlock();
    }
    this.held.length = 0;
    const finish = end.finish_reason ?? this.finishReason;
    this.stop = stopReason(finish, this.blocks.some((b) => b.kind === 'tool'), this.stopSequence);
    const u = this.currentUsage();
    const usage = {
      input_tokens: u.input_tokens,
      output_tokens: u.output_tokens,
      cache_creation_input_tokens: u.cache_creation_input_tokens,
      cache_read_input_tokens: u.cache_read_input_tokens,
      output_tokens_details: null,
      server_tool_use: null,
    };
    const delta = { stop_reason: this.stop, stop_sequence: this.stop === 'stop_sequence' ? this.stopSequence : null, stop_details: null, container: null };
    this.emit('message_delta', JSON.stringify({ type: 'message_delta', delta, usage }));
    this.emit('message_stop', '{"type":"message_stop"}');
    return this.take(firstId);
  }

  /** The Message as a client following the events has it now (the official SDK's accumulated message). */
  snapshot(): Message {
    const content = this.blocks.map((b) => (b.kind === 'text' ? textBlock(b.text) : toolUseBlock(b.call.id, b.call.name, b.call.args)));
    return this.message(content, this.stop, this.currentUsage());
  }

  private message(content: Message['content'], stop: StopReason | null, usage: Message['usage']): Message {
    return buildMessage({ id: this.o.id, model: this.o.model, content, stopReason: stop, stopSequence: this.stopSequence, usage });
  }

  private currentUsage(): Message['usage'] {
    return messageUsage(this.usage, this.o.inputTokens, this.outputChunks);
  }

  private chunk(json: string): void {
    const fast = this.textChunks;
    if (fast !== null && fast.read(json)) {
      if (fast.text !== '') {
        this.text(fast.text, fast.literal);
        this.outputChunks++;
      }
      return;
    }
    let chunk: unknown;
    try {
      chunk = JSON.parse(json);
    } catch {
      return;
    }
    if (!isObject(chunk)) return;
    fast?.learn(json, chunk);
    if (isObject(chunk.usage)) this.usage = chunk.usage as ChatUsage;
    // Usage-only chunks have `choices: []`.
    const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
    if (!isObject(choice)) return;
    if (typeof choice.finish_reason === 'string' && this.finishReason === null) {
      this.finishReason = choice.finish_reason;
      this.stopSequence = matchedStopSequence(choice.stop_reason, this.o.stopSequences);
    }
    const delta = choice.delta;
    if (!isObject(delta)) return;
    let output = false;
    if (typeof delta.content === 'string' && delta.content !== '') {
      this.text(delta.content, null);
      output = true;
    }
    // A refusal is text to an Anthropic client. Reasoning deltas (`reasoning_content`) are not
    // written: thinking is off, the only setting the gateway accepts.
    if (typeof delta.refusal === 'string' && delta.refusal !== '') {
      this.text(delta.refusal, null);
      output = true;
    }
    if (Array.isArray(delta.tool_calls)) for (const call of delta.tool_calls) if (isObject(call) && this.toolCall(call)) output = true;
    if (output) this.outputChunks++;
  }

  /** `literal`: JSON.stringify(text) when the chunk held it so (chunk-delta.ts). */
  private text(text: string, literal: string | null): void {
    const last = this.blocks[this.blocks.length - 1];
    if (this.blockOpen && last!.kind === 'text') {
      last!.text += text;
      this.textDelta(literal ?? JSON.stringify(text));
    } else if (this.blockOpen) {
      const held = this.held[this.held.length - 1];
      if (held?.kind === 'text') held.text += text;
      else this.held.push({ kind: 'text', text });
    } else {
      this.startBlock({ kind: 'text', text });
      this.textDelta(literal ?? JSON.stringify(text));
    }
  }

  /** One entry of a chunk's `delta.tool_calls`; true when it carried output. */
  private toolCall(delta: Json): boolean {
    const index = typeof delta.index === 'number' ? delta.index : 0;
    const fn = isObject(delta.function) ? delta.function : undefined;
    const args = typeof fn?.arguments === 'string' ? fn.arguments : '';
    let call = this.calls.get(index);
    const isNew = call === undefined;
    if (call === undefined) {
      // OpenAI-compatible servers send the id and name with a call's first delta.
      const id = typeof delta.id === 'string' && delta.id !== '' ? delta.id : `toolu_${this.o.id.slice(4)}_${index}`;
      call = { id, name: typeof fn?.name === 'string' ? fn.name : '', args: '' };
      this.calls.set(index, call);
      const block: Block = { kind: 'tool', call };
      if (this.blockOpen && this.blocks[this.blocks.length - 1]!.kind === 'tool') {
        this.held.push(block);
      } else {
        this.closeBlock();
        this.startBlock(block);
      }
    }
    if (args !== '') {
      call.args += args;
      const last = this.blocks[this.blocks.length - 1];
      if (this.blockOpen && last!.kind === 'tool' && last!.call === call) this.jsonDelta(args);
    }
    return isNew || args !== '';
  }

  private startBlock(block: Block): void {
    const index = this.blocks.length;
    this.blocks.push(block);
    this.blockOpen = true;
    const start =
      block.kind === 'text'
        ? '{"type":"text","text":"","citations":null}'
        : `{"type":"tool_use","id":${JSON.stringify(block.call.id)},"name":${JSON.stringify(block.call.name)},"input":{},"caller":{"type":"direct"}}`;
    this.emit('content_block_start', `{"type":"content_block_start","index":${index},"content_block":${start}}`);
  }

  private closeBlock(): void {
    if (!this.blockOpen) return;
    this.blockOpen = false;
    this.emit('content_block_stop', `{"type":"content_block_stop","index":${this.blocks.length - 1}}`);
  }

  /** `literal`: the text as a JSON string. */
  private textDelta(literal: string): void {
    const index = this.blocks.length - 1;
    this.emit('content_block_delta', `{"type":"content_block_delta","index":${index},"delta":{"type":"text_delta","text":${literal}}}`);
  }

  private jsonDelta(partial: string): void {
    const index = this.blocks.length - 1;
    this.emit(
      'content_block_delta',
      `{"type":"content_block_delta","index":${index},"delta":{"type":"input_json_delta","partial_json":${JSON.stringify(partial)}}}`,
    );
  }

  private emit(event: string, payload: string): void {
    this.frames += namedFrame(event, this.nextId++, payload);
  }

  private take(firstId: number): EncodedFrames {
    const out = { text: this.frames, count: this.nextId - firstId };
    this.frames = '';
    return out;
  }
}
