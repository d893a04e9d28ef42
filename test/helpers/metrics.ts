import type { FastifyInstance } from 'fastify';

/** One exposition line: `name{label="value",…} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** A tiny Prometheus text-format reader: samples only, comments skipped, label escapes undone. */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1]!] = l[2]!.replace(/\\(["\\n])/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include every label given. */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

export async function scrapeText(app: FastifyInstance): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}`);
  return res.body;
}

export async function scrape(app: FastifyInstance): Promise<Sample[]> {
  return parseExposition(await scrapeText(app));
}

/**
 * Scrapes until `name{labels}` reaches `atLeast` (metrics are fed when a
 * generation or a response ends, which a client sees a moment earlier).
 * Bounded: fails after `tries` scrapes instead of hanging the test.
 */
export async function waitForMetric(
  app: FastifyInstance,
  name: string,
  labels: Record<string, string>,
  atLeast: number,
  tries = 500,
): Promise<Sample[]> {
  for (let i = 0; i < tries; i++) {
    const samples = await scrape(app);
    if (valueOf(samples, name, labels) >= atLeast) return samples;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${name}${JSON.stringify(labels)} never reached ${atLeast}`);
}
