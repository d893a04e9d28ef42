/**
 * The fast path for the chunk most of a stream is made of: one choice whose
 * delta carries only text. The encoders read such a chunk's text without
 * JSON.parse, and write its JSON string as the upstream escaped it when
 * JSON.stringify would have written the same.
 *
 * A chunk is matched against a shape: the text of a chunk that JSON.parse
 * read as text only (isTextOnly), earlier in the stream or in the last
 * stream that learnt one, character for character, except for the string
 * and number values no encoder reads (id, created, model, role,
 * obfuscation, …), each of which matches any one JSON string (number), and
 * the content, which matches any one JSON string and is captured. Keys as
 * written (`\u` escapes too), whitespace, structure, null/true/false, and
 * every value an encoder reads (usage, index, finish_reason, tool_calls,
 * refusal, …) must be the same.
 *
 * Why that is JSON.parse's answer: a text that matches is the parsed chunk
 * with some string and number tokens swapped for others of the same kind,
 * each one complete. A swapped token starts where a value does (after `:`,
 * `,`, `[` or whitespace, which end a token whatever follows) and ends where
 * one did (before `,`, `}`, `]` or whitespace), so the text reads as the
 * same tokens: valid JSON with the same keys in the same places and the same
 * values wherever an encoder looks. It is text only, and its text is the
 * captured string. That holds for any text at all, JSON or not: what does
 * not match is parsed. A shape is one regular expression, compiled once and
 * shared by all streams.
 */

/** Any one JSON string token: exactly what JSON.parse accepts between quotes. */
const STRING = String.raw`"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"`;
/** Any one JSON number token. */
const NUMBER = String.raw`-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?`;
/**
 * The content. Group 1: a string as JSON.stringify writes one: `"` and `\`
 * escaped as `\"` and `\\`, no other escape but `\b \f \n \r \t`, no raw
 * control character, no lone surrogate. Group 2: any other string.
 */
const CONTENT =
  String.raw`(?:("(?:[^"\\\x00-\x1f\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff]|\\["\\bfnrt])*")|(` + STRING + '))';

/** A JSON text's tokens; only run on text JSON.parse accepted. */
const TOKEN = /[ \t\n\r]+|"(?:[^"\\]|\\.)*"|[-0-9][-+.0-9eE]*|true|false|null|[{}[\]:,]/y;

/** Shapes learnt per stream at most: a stream whose text chunks keep changing shape is parsed. */
const LEARNS_PER_STREAM = 3;
/** Compiled shapes kept across streams (one or two per upstream model, usually). */
const MAX_SHAPES = 64;
const shapes = new Map<string, RegExp>();
/** The shape learnt last: a new stream from the same upstream starts with it and learns nothing. */
let recent: RegExp | null = null;

/**
 * Where a value sits, for what its shape is: `free` (no encoder reads it:
 * a string or number there matches any), `fixed` (an encoder reads it: as
 * written), or one of the places on the way to the content.
 */
type At = 'free' | 'fixed' | 'chunk' | 'choices' | 'choice' | 'delta' | 'content';

/** What the encoders read, by where (everything else is free). */
function childAt(parent: At, key: string | null): At {
  switch (parent) {
    case 'chunk':
      return key === 'choices' ? 'choices' : key === 'usage' ? 'fixed' : 'free';
    case 'choices':
      return 'choice';
    case 'choice':
      return key === 'delta' ? 'delta' : key === 'index' || key === 'finish_reason' || key === 'stop_reason' ? 'fixed' : 'free';
    case 'delta':
      return key === 'content' ? 'content' : key === 'tool_calls' || key === 'refusal' ? 'fixed' : 'free';
    default:
      return parent;
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Whether a parsed chunk is text only: no usage, one choice (index 0), no
 * finish reason, and a delta with a non-empty string content and neither
 * tool calls nor a refusal. Both encoders then only add its text.
 */
export function isTextOnly(chunk: unknown): boolean {
  if (!isObject(chunk) || chunk.usage != null) return false;
  const choices = chunk.choices;
  if (!Array.isArray(choices) || choices.length !== 1) return false;
  const choice: unknown = choices[0];
  if (!isObject(choice) || (choice.index != null && choice.index !== 0) || choice.finish_reason != null) return false;
  const delta = choice.delta;
  return isObject(delta) && typeof delta.content === 'string' && delta.content !== '' && delta.tool_calls == null && delta.refusal == null;
}

/**
 * The shape of a text-only chunk's JSON text, as a regular expression's
 * source; null when a key appears twice in the chunk, its choice or its
 * delta (JSON.parse keeps the last one: not worth a shape).
 */
export function shapeOf(json: string): string | null {
  let source = '^';
  /** The start of the text not in `source` yet: it goes in as written. */
  let written = 0;
  /** Per open container: where it sits, whether it is an object, and (objects the encoders read) its keys so far. */
  const open: { at: At; object: boolean; keys: string[] | null; key: boolean }[] = [];
  let next: At = 'chunk';
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < json.length) {
    const start = TOKEN.lastIndex;
    if (!TOKEN.test(json)) return null;
    const c = json.charCodeAt(start);
    const top = open[open.length - 1];
    let hole: string | null = null;
    if (c === 34 /* " */ && top?.object && top.key) {
      top.key = false;
      const token = json.slice(start, TOKEN.lastIndex);
      const key: string = token.indexOf('\\') === -1 ? token.slice(1, -1) : JSON.parse(token);
      if (top.keys !== null) {
        if (top.keys.includes(key)) return null;
        top.keys.push(key);
      }
      next = childAt(top.at, key);
    } else if (c === 34) {
      hole = next === 'content' ? CONTENT : next === 'free' ? STRING : null;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      hole = next === 'free' ? NUMBER : null;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      const object = c === 123;
      const tracked = next === 'chunk' || next === 'choice' || next === 'delta';
      open.push({ at: next, object, keys: tracked ? [] : null, key: object });
      if (!object) next = childAt(next, null);
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      open.pop();
    } else if (c === 44 /* , */) {
      if (top!.object) top!.key = true;
      else next = childAt(top!.at, null);
    }
    if (hole !== null) {
      source += escape(json.slice(written, start)) + hole;
      written = TOKEN.lastIndex;
    }
  }
  return source + escape(json.slice(written)) + '$';
}

function escape(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

function compiled(source: string): RegExp {
  let shape = shapes.get(source);
  if (shape === undefined) {
    if (shapes.size >= MAX_SHAPES) shapes.clear();
    shape = new RegExp(source);
    shapes.set(source, shape);
  }
  return shape;
}

/**
 * One stream's text-only chunks. `read` answers whether a chunk is one (and
 * then sets `text` and `literal`); `learn` takes the shape of a chunk the
 * encoder had to parse.
 */
export class TextChunkReader {
  /** The text of the chunk last read. */
  text = '';
  /** JSON.stringify(text), as an encoder writes it in its delta event. */
  literal = '';
  private shape: RegExp | null = recent;
  private learns = LEARNS_PER_STREAM;

  /** Whether `json` is text only, by the stream's shape; false says nothing: parse it. */
  read(json: string): boolean {
    const shape = this.shape;
    if (shape === null) return false;
    const m = shape.exec(json);
    if (m === null) {
      // The stream changed shape: learn the next one, or stop trying.
      if (this.learns === 0) this.shape = null;
      return false;
    }
    const plain = m[1];
    if (plain !== undefined) {
      this.literal = plain;
      // V8 copies a slice shorter than 13 characters; a longer one is a view that would keep the
      // upstream's whole read alive as long as the answer's text is: JSON.parse makes a copy.
      this.text = plain.length <= 14 && plain.indexOf('\\') === -1 ? plain.slice(1, -1) : (JSON.parse(plain) as string);
    } else {
      this.text = JSON.parse(m[2]!) as string;
      this.literal = JSON.stringify(this.text);
    }
    return true;
  }

  /** Learns the shape of a chunk the encoder parsed (`chunk` is JSON.parse(json)), if it is text only. */
  learn(json: string, chunk: unknown): void {
    if (this.learns === 0 || !isTextOnly(chunk)) return;
    this.learns--;
    const source = shapeOf(json);
    if (source !== null) this.shape = recent = compiled(source);
  }
}
