/**
 * Writes a JSON string literal the many valid ways encoders do (for property
 * tests against JSON.parse): keys partly or wholly \u-escaped, non-ASCII as
 * \uXXXX (Python's ensure_ascii), ordinary characters escaped anyway (`\/`,
 * \u0041), upper- or lower-case hex.
 */
export interface JsonStringStyle {
  /** Key characters written as \uXXXX: none, some, or all. */
  escapeKeys: 'none' | 'some' | 'all';
  asciiOnly: boolean;
  oddEscapes: boolean;
  upperHex: boolean;
}

function hex(c: number, upper: boolean): string {
  const h = c.toString(16).padStart(4, '0');
  return '\\u' + (upper ? h.toUpperCase() : h);
}

/** `next` is the test's seeded random source, so a failing case replays. */
export function writeJsonString(s: string, style: JsonStringStyle, next: () => number, isKey: boolean): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const escapeKey = isKey && (style.escapeKeys === 'all' || (style.escapeKeys === 'some' && next() < 0.4));
    if (escapeKey || (style.asciiOnly && c > 0x7e) || (style.oddEscapes && next() < 0.1)) out += c === 0x2f && next() < 0.5 ? '\\/' : hex(c, style.upperHex);
    else if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c < 0x20) out += c === 10 ? '\\n' : c === 13 ? '\\r' : c === 9 ? '\\t' : c === 8 ? '\\b' : c === 12 ? '\\f' : hex(c, style.upperHex);
    else out += s[i];
  }
  return out + '"';
}
