import type { Config } from '../config.js';
import { MockUpstream } from './mock/mock-upstream.js';
import { OpenAIUpstream } from './openai.js';
import type { ChatUpstream } from './types.js';

/** One client per configured upstream, plus the built-in mock under the name "mock". */
export function buildUpstreams(config: Config): Map<string, ChatUpstream> {
  const out = new Map<string, ChatUpstream>();
  out.set('mock', new MockUpstream(config.mock));
  for (const [name, u] of Object.entries(config.upstreams)) out.set(name, new OpenAIUpstream(name, u, config.connectTimeoutMs));
  return out;
}

/** Every secret an upstream error message must never carry out. */
export function upstreamSecrets(config: Config): string[] {
  return Object.values(config.upstreams).flatMap((u) => (u.apiKey ? [u.apiKey] : []));
}
