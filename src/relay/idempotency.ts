import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { GatewayError } from '../errors.js';
import { newStreamId } from '../streams/memory-store.js';

/**
 * Retried POSTs (`Idempotency-Key`): a caller's key names the stream its first
 * POST started, so a retry attaches to that stream instead of paying for a
 * second generation. One record per caller and key: `<state> <stream id>
 * <fingerprint>`, pending (`p`) until the stream can be read, then live (`l`).
 * A POST that fails before its stream begins frees its key again.
 */

/** Where records live: this process (MemoryKeyRecords), or Redis for every replica (RedisKeyRecords). */
export interface KeyRecords {
  /** Stores `value` under `key` unless the key holds one; returns that one, or null when `value` was stored. Atomic. */
  reserve(key: string, value: string, ttlMs: number): Promise<string | null>;
  /** Replaces `expected` with `value` (null deletes it); false when the key holds anything else. Atomic. */
  swap(key: string, expected: string, value: string | null, ttlMs: number): Promise<boolean>;
  get(key: string): Promise<string | null>;
}

/**
 * In-process records, bounded in count (the oldest go first) and in time.
 * Every method does its work before it first yields, so a reservation is
 * taken synchronously: two POSTs racing in one process cannot both get it.
 */
export class MemoryKeyRecords implements KeyRecords {
  private readonly records = new Map<string, { value: string; expiresAt: number }>();

  constructor(
    private readonly maxRecords: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.records.size;
  }

  async reserve(key: string, value: string, ttlMs: number): Promise<string | null> {
    const held = this.current(key);
    if (held !== null) return held;
    this.prune(1);
    this.records.set(key, { value, expiresAt: this.now() + ttlMs });
    return null;
  }

  async swap(key: string, expected: string, value: string | null, ttlMs: number): Promise<boolean> {
    if (this.current(key) !== expected) return false;
    this.records.delete(key);
    if (value !== null) this.records.set(key, { value, expiresAt: this.now() + ttlMs });
    return true;
  }

  async get(key: string): Promise<string | null> {
    return this.current(key);
  }

  private current(key: string): string | null {
    const r = this.records.get(key);
    if (!r) return null;
    if (r.expiresAt > this.now()) return r.value;
    this.records.delete(key);
    return null;
  }

  /** Drops expired records from the oldest on, and the oldest ones while `room` more would not fit. */
  private prune(room: number): void {
    const now = this.now();
    for (const [key, r] of this.records) {
      if (r.expiresAt > now && this.records.size + room <= this.maxRecords) break;
      this.records.delete(key);
    }
  }
}

/** What a POST's key found: the stream an earlier POST started, or a reservation to start one under. */
export type Claim = { readonly attached: true; readonly id: string } | Reservation;

/** This POST starts the stream `id`; it must call live() once the stream can be read, or release() if it never will. */
export class Reservation {
  readonly attached = false;
  private settled = false;

  constructor(
    readonly id: string,
    private readonly finish: (live: boolean) => Promise<void>,
  ) {}

  /** The stream can be read (on every replica): retries attach to it from now on. */
  live(): Promise<void> {
    return this.settle(true);
  }

  /** The POST failed before its stream began (answered 4xx/5xx): the key is free, and a waiting retry starts anew. */
  release(): Promise<void> {
    return this.settle(false);
  }

  private settle(live: boolean): Promise<void> {
    if (this.settled) return Promise.resolve();
    this.settled = true;
    return this.finish(live);
  }
}

export interface IdempotencyOptions {
  /** How long a record is kept: as long as its stream can be (the longest run, then the retention after its end). */
  ttlMs: number;
  /** Longest a retry waits for the POST that holds its key to start its stream. */
  waitMs: number;
}

/** A retry waiting on another replica's reservation looks again this often. */
const POLL_MS = 50;
/** Each round either returns or follows a change of the record (a failure freed it, a stream expired): a few suffice. */
const MAX_ROUNDS = 8;

export class IdempotencyKeys {
  /** Reservations this process holds and has not settled: a duplicate here waits for them without polling. */
  private readonly pending = new Map<string, { value: string; settled: Promise<void> }>();

  constructor(
    private readonly records: KeyRecords,
    private readonly opts: IdempotencyOptions,
  ) {}

  /**
   * The first call to the records happens before this yields, so a caller
   * that claims before its own first await is safe from a racing duplicate.
   * Throws 409 `idempotency_key_reused` when the key's stream was asked for
   * with another body. `exists` tells whether a stream is still kept.
   */
  async claim(caller: string, key: string, fingerprint: string, exists: (id: string) => Promise<boolean>): Promise<Claim> {
    const slot = digest(`${caller}\n${key}`);
    const id = newStreamId();
    const mine = `p ${id} ${fingerprint}`;
    const deadline = Date.now() + this.opts.waitMs;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const held = await this.records.reserve(slot, mine, this.opts.ttlMs);
      if (held === null) return this.reserved(slot, id, mine, fingerprint);
      const [state, heldId = '', heldPrint] = held.split(' ');
      if (state === 'p') {
        if (heldPrint !== fingerprint) throw reused();
        // Still opening: wait for its first byte (or its failure), then look again.
        if (await this.changes(slot, held, deadline)) continue;
        // Still pending past any first-byte deadline: whoever held it is gone.
        if (await this.records.swap(slot, held, mine, this.opts.ttlMs)) return this.reserved(slot, id, mine, fingerprint);
        continue;
      }
      if (await exists(heldId)) {
        if (heldPrint !== fingerprint) throw reused();
        return { attached: true, id: heldId };
      }
      // Its stream is no longer kept: the key is forgotten with it.
      if (await this.records.swap(slot, held, mine, this.opts.ttlMs)) return this.reserved(slot, id, mine, fingerprint);
    }
    throw new GatewayError('idempotency_key_reused', 'Requests with this Idempotency-Key keep failing to start; retry later');
  }

  private reserved(slot: string, id: string, mine: string, fingerprint: string): Reservation {
    let wake!: () => void;
    this.pending.set(slot, { value: mine, settled: new Promise<void>((r) => (wake = r)) });
    return new Reservation(id, async (live) => {
      try {
        await this.records.swap(slot, mine, live ? `l ${id} ${fingerprint}` : null, this.opts.ttlMs);
      } catch {
        // The record then expires by itself; a retry meanwhile waits or attaches as it finds it.
      } finally {
        if (this.pending.get(slot)?.value === mine) this.pending.delete(slot);
        wake();
      }
    });
  }

  /** Waits until the record is no longer `held`: true if it changed, false at the deadline. */
  private async changes(slot: string, held: string, deadline: number): Promise<boolean> {
    const local = this.pending.get(slot);
    if (local?.value === held) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<boolean>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()), false)));
      try {
        return await Promise.race([local.settled.then(() => true), late]);
      } finally {
        clearTimeout(timer);
      }
    }
    // Another replica holds it: look again until it changes (bounded by the deadline).
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if ((await this.records.get(slot)) !== held) return true;
    }
    return false;
  }
}

/** The request's `Idempotency-Key`, or null without one. 400 when it is not 1–255 printable ASCII characters. */
export function idempotencyKeyOf(request: FastifyRequest): string | null {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return null;
  const key = (Array.isArray(raw) ? raw[0]! : raw).trim();
  if (!/^[\x20-\x7e]{1,255}$/.test(key)) {
    throw new GatewayError('invalid_body', 'Idempotency-Key must be 1 to 255 printable ASCII characters', { param: 'Idempotency-Key' });
  }
  return key;
}

/**
 * What "the same request" means for a retry: the route and a body of equal
 * JSON (key order, spacing and number spelling aside). Another endpoint under
 * the same key is another request.
 */
export function requestFingerprint(request: FastifyRequest): string {
  return digest(`${request.routeOptions.url ?? request.url}\n${canonicalJson(request.body)}`);
}

/** JSON with every object's keys sorted: equal JSON values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

function reused(): GatewayError {
  return new GatewayError('idempotency_key_reused', 'This Idempotency-Key was already used with another request body (or endpoint)', {
    param: 'Idempotency-Key',
  });
}
