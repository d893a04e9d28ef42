/**
 * What the gateway reads from one upstream chunk's JSON text: its finish
 * reason, its usage, whether it exists only for the usage, and whether it is
 * an in-band error. The answers are exactly what JSON.parse and reading those
 * fields would give, for any valid JSON: compact or spaced, several lines,
 * keys in any order or written in `\u` escapes, the same names nested deeper.
 *
 * Most chunks hold none of them, and a few substring searches prove it; only
 * a chunk that may hold one is parsed (in a stream: the finish chunk and the
 * usage chunk). The proof: without a `\u` escape of an ASCII character, a key
 * named `usage` is written `"usage"`. A `"` right after a letter is always a
 * string's closing quote (an escaped one has a backslash before it), and the
 * string is a key exactly when a `:` follows. So if every `usage"` followed
 * by `:` is followed by `null` after it, no `usage` key at any depth holds
 * anything but null. The same goes for `finish_reason` and `error`. Text in
 * string values ("an error", `\"usage\":{`, a content of just "usage") never
 * looks like such a key, and changes nothing.
 */

export interface ChunkFields {
  /** The first `choices[i].finish_reason` that is a string; null when none is. */
  readonly finishReason: string | null;
  /** The top-level `usage`, when it is an object; null otherwise. */
  readonly usage: object | null;
  /** It carries usage and `choices` is an empty array: the chunk exists only for the usage. */
  readonly usageOnly: boolean;
}

/** The answer for a chunk holding none of them: shared, so the common case allocates nothing. */
export const NO_FIELDS: ChunkFields = Object.freeze({ finishReason: null, usage: null, usageOnly: false });

/** The finish reason and usage of one chunk. Text that is not JSON holds neither. */
export function chunkFields(json: string): ChunkFields {
  if (!escapesAscii(json) && onlyNull(json, 'finish_reason"', 'finish_reason"') && onlyNull(json, 'usage"', 'usage"')) return NO_FIELDS;
  const chunk = parseObject(json);
  if (chunk === null) return NO_FIELDS;
  const choices = chunk.choices;
  let finishReason: string | null = null;
  if (Array.isArray(choices)) {
    for (const choice of choices) {
      const reason = isObject(choice) ? choice.finish_reason : undefined;
      if (typeof reason === 'string') {
        finishReason = reason;
        break;
      }
    }
  }
  const usage = isObject(chunk.usage) ? chunk.usage : null;
  if (finishReason === null && usage === null) return NO_FIELDS;
  return { finishReason, usage, usageOnly: usage !== null && Array.isArray(choices) && choices.length === 0 };
}

/**
 * Whether an event's data is an in-band error report: a JSON object with a
 * top-level `error` that is not null (OpenAI's `{"error": {…}}`, or a bare
 * string). A null `error` beside an ordinary chunk reports nothing.
 */
export function isErrorChunk(data: string): boolean {
  // Anchored on `rror"`: an `e` starts a search at nearly every word of a chunk, an `r` at far fewer.
  if (!escapesAscii(data) && onlyNull(data, 'error"', 'rror"')) return false;
  const chunk = parseObject(data);
  return chunk !== null && chunk.error !== undefined && chunk.error !== null;
}

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseObject(json: string): JsonObject | null {
  try {
    const v: unknown = JSON.parse(json);
    return isObject(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * Whether the text holds a `\u` escape of an ASCII character (\u0000–\u007F),
 * which could spell a key name. Escaped non-ASCII text (what ensure_ascii
 * encoders send) cannot, so it keeps the fast path. An escaped backslash
 * followed by `u00…` also counts: a needless parse, never a wrong answer.
 */
function escapesAscii(json: string): boolean {
  for (let at = json.indexOf('\\u'); at !== -1; at = json.indexOf('\\u', at + 2)) {
    if (json.charCodeAt(at + 2) === 48 /* 0 */ && json.charCodeAt(at + 3) === 48 && json.charCodeAt(at + 4) <= 55 /* 7 */) return true;
  }
  return false;
}

/**
 * Whether every key ending in `needle` (a name and its closing quote) holds null: each occurrence
 * followed by `:` is followed by `null` after it (JSON whitespace allowed around the colon). The
 * search runs on `anchor`, the needle's tail, and each hit is checked for the whole needle.
 */
function onlyNull(json: string, needle: string, anchor: string): boolean {
  const lead = needle.length - anchor.length;
  for (let hit = json.indexOf(anchor); hit !== -1; hit = json.indexOf(anchor, hit + anchor.length)) {
    if (lead !== 0 && (hit < lead || !json.startsWith(needle, hit - lead))) continue;
    let i = hit + anchor.length;
    if (json.charCodeAt(i) !== 58 /* : */) {
      i = skipSpace(json, i);
      // Not a key: the string is a value (`"content":"error"`).
      if (json.charCodeAt(i) !== 58) continue;
    }
    i = skipSpace(json, i + 1);
    if (json.charCodeAt(i) !== 110 /* n */ || json.charCodeAt(i + 1) !== 117 /* u */ || json.charCodeAt(i + 2) !== 108 /* l */ || json.charCodeAt(i + 3) !== 108) return false;
  }
  return true;
}

/** The index of the first non-whitespace character at or after `i` (JSON's whitespace: space, tab, LF, CR). */
function skipSpace(json: string, i: number): number {
  for (;;) {
    const c = json.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) return i;
    i++;
  }
}
