import type { OutputItem } from './response-object.js';
import { itemAddress } from './response-object.js';
import type { ChatMessage } from './to-chat.js';

export interface KeptLimits {
  /** Responses kept at most; the oldest go first. */
  maxCount: number;
  /** Their conversations and outputs, in JSON characters, at most; the oldest go first. */
  maxChars: number;
  /** How long one is kept after it ended (the stream logs' retention, STREAM_TTL_MS). */
  ttlMs: number;
}

/** What a replica keeps for previous_response_id and item_reference unless configured otherwise. */
export const KEPT_RESPONSES = { maxCount: 2000, maxChars: 32 * 1024 * 1024 } as const;

interface Kept {
  owner: string;
  conversation: readonly ChatMessage[];
  output: readonly OutputItem[];
  chars: number;
  endedAt: number;
}

/**
 * The finished responses a later request may continue (`previous_response_id`)
 * or point into (`item_reference`), in this process. Bounded in count, in
 * size and in time, oldest first, so it never grows with the requests served:
 * a continuation past those bounds gets 400 previous_response_not_found. Only
 * the owner (the key that created a response) can continue it; to anyone else
 * it does not exist.
 */
export class KeptResponses {
  /** In the order they ended: a Map iterates in insertion order, so the first entry is the oldest. */
  private readonly kept = new Map<string, Kept>();
  private chars = 0;

  constructor(
    private readonly limits: KeptLimits,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.kept.size;
  }

  /** JSON characters held (conversations share messages in memory, so this over-counts). */
  get totalChars(): number {
    return this.chars;
  }

  keep(id: string, owner: string, conversation: readonly ChatMessage[], output: readonly OutputItem[]): void {
    // Once per response, never per chunk.
    const chars = JSON.stringify(conversation).length + JSON.stringify(output).length;
    this.drop(id);
    this.expire();
    // One larger than the whole bound is not kept (and pushes nothing out).
    if (chars > this.limits.maxChars || this.limits.maxCount === 0) return;
    this.kept.set(id, { owner, conversation, output, chars, endedAt: this.now() });
    this.chars += chars;
    while (this.kept.size > this.limits.maxCount || this.chars > this.limits.maxChars) this.drop(this.kept.keys().next().value!);
  }

  /** The conversation after response `id` (input then output, without instructions), if `owner` may continue it. */
  conversation(id: string, owner: string): readonly ChatMessage[] | undefined {
    return this.get(id, owner)?.conversation;
  }

  /** An output item by its id (`msg_…`/`fc_…`, which names its response), if `owner` may use it. */
  item(itemId: string, owner: string): OutputItem | undefined {
    const at = itemAddress(itemId);
    const item = at ? this.get(at.responseId, owner)?.output[at.outputIndex] : undefined;
    return item?.id === itemId ? item : undefined;
  }

  private get(id: string, owner: string): Kept | undefined {
    const k = this.kept.get(id);
    if (!k) return undefined;
    if (this.now() - k.endedAt > this.limits.ttlMs) {
      this.drop(id);
      return undefined;
    }
    return k.owner === owner ? k : undefined;
  }

  /** Drops the expired ones from the front (the oldest). */
  private expire(): void {
    const cutoff = this.now() - this.limits.ttlMs;
    for (const [id, k] of this.kept) {
      if (k.endedAt >= cutoff) break;
      this.drop(id);
    }
  }

  private drop(id: string): void {
    const k = this.kept.get(id);
    if (!k) return;
    this.kept.delete(id);
    this.chars -= k.chars;
  }
}
