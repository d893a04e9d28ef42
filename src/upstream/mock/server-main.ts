import { MockUpstreamServer } from './http-server.js';

/** `npm run mock-upstream`: the mock model as an OpenAI-compatible server. */
const port = Number(process.env.MOCK_PORT ?? 8081);
const host = process.env.MOCK_HOST ?? '127.0.0.1';
const tps = Number(process.env.MOCK_TOKENS_PER_SECOND ?? 40);
const first = Number(process.env.MOCK_FIRST_TOKEN_MS ?? 150);
for (const [name, v] of [['MOCK_PORT', port], ['MOCK_TOKENS_PER_SECOND', tps], ['MOCK_FIRST_TOKEN_MS', first]] as const) {
  if (!Number.isFinite(v) || v < 0) {
    console.error(`mock-upstream: ${name} must be a non-negative number`);
    process.exit(1);
  }
}
const server = new MockUpstreamServer({
  tokensPerSecond: tps,
  firstTokenDelayMs: first,
  ...(process.env.MOCK_API_KEY ? { apiKey: process.env.MOCK_API_KEY } : {}),
});
const url = await server.listen(port, host);
console.log(`mock upstream listening on ${url}`);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void server.close().then(() => process.exit(0)));
}
