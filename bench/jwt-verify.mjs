// What verifying a JWT whose key is cached adds to a request (browser auth, issue 15).
//
//   npm run build --silent && node bench/jwt-verify.mjs [requests]
//
// Everything on 127.0.0.1: a JWKS endpoint (node:http) publishing an RS256
// (2048-bit), an ES256 and an EdDSA key, each fetched once and then cached.
//   micro   JwtVerifier.verify() alone, warm (a token seen for the first time, its
//           key cached): µs per call for each algorithm and for HS256
//           (AUTH_JWT_SECRET); JwtVerifier.cached() (a token verified before: what
//           a browser's every next request costs); beside the static-key check
//           (SHA-256 of the credential + timingSafeEqual), which every request with
//           a credential does first. Each case runs ~1 s after a warm-up.
//   e2e     one gateway (buildGateway, LOG_LEVEL=warn) with a static key and the
//           JWKS; sequential GET /v1/models (auth, rate limit, a small JSON
//           answer: no upstream call) over one keep-alive connection, in rounds
//           that alternate the cases, [requests] per case (default 4000): the
//           static key; one JWT per algorithm sent again and again (as a browser
//           does); a new JWT on every request (RS256 and ES256, the key cached:
//           the worst case). Median and p99 of each, and the median added over the key.
// Bounded: ~25 s.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { JwtVerifier } from '../dist/auth/jwt-verifier.js';
import { buildGateway } from '../dist/app.js';
import { JWKS_TIMINGS, defaultConfig } from '../dist/config.js';
import { createLogger } from '../dist/logger.js';

const REQUESTS = Math.min(Math.max(Number(process.argv[2] ?? 4000) || 4000, 200), 50_000);
const CASE_MS = 1000;
const ALGS = ['RS256', 'ES256', 'EdDSA'];
const SECRET = 'bench-shared-secret-of-at-least-32-characters';

const keys = {};
for (const alg of ALGS) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  keys[alg] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid: `k-${alg}`, alg, use: 'sig' } };
}
const jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: ALGS.map((a) => keys[a].jwk) })));
await new Promise((r) => jwks.listen(0, '127.0.0.1', r));
const jwksUrl = `http://127.0.0.1:${jwks.address().port}/jwks.json`;

const now = Math.floor(Date.now() / 1000);
const claims = { sub: 'bench-user-0001', iss: 'https://idp.bench/', aud: 'sse-gateway', iat: now, exp: now + 3600 };
const tokens = {};
for (const alg of ALGS) tokens[alg] = await new SignJWT(claims).setProtectedHeader({ alg, kid: `k-${alg}`, typ: 'JWT' }).sign(keys[alg].privateKey);
tokens.HS256 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(SECRET));

const silent = createLogger('silent');
const jwtConfig = { ...JWKS_TIMINGS, jwksUrl, issuer: claims.iss, audience: [claims.aud] };
const viaJwks = new JwtVerifier(jwtConfig, silent);
const viaSecret = new JwtVerifier({ ...JWKS_TIMINGS, secret: SECRET, issuer: claims.iss, audience: [claims.aud] }, silent);

async function time(name, fn) {
  for (let i = 0; i < 200; i++) await fn(); // warm-up (and the first JWKS fetch)
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < CASE_MS && n < 1_000_000) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
  }
  const us = ((performance.now() - start) * 1000) / n;
  console.log(`  ${name.padEnd(38)} ${us.toFixed(2).padStart(8)} µs/call  (${n} calls)`);
  return us;
}

console.log(`micro (node ${process.version}, warm, key cached):`);
const digest = (s) => createHash('sha256').update(s).digest();
const known = digest('sk-bench-static-key');
await time('static key (sha256 + timingSafeEqual)', async () => timingSafeEqual(digest('sk-bench-static-key'), known));
const digests = Object.fromEntries(Object.entries(tokens).map(([alg, tok]) => [alg, digest(tok)]));
for (const alg of ALGS) await time(`verify ${alg} (JWKS), first sight`, () => viaJwks.verify(tokens[alg], digests[alg]));
await time('verify HS256 (AUTH_JWT_SECRET)', () => viaSecret.verify(tokens.HS256, digests.HS256));
await time('seen before: sha256 + cached()', async () => viaJwks.cached(digest(tokens.RS256)));

// --- end to end ---
const gw = await buildGateway(
  defaultConfig({ gatewayApiKeys: ['sk-bench-static-key'], jwt: jwtConfig, rateLimit: { max: 1e9, windowMs: 60_000 } }),
  { logger: createLogger('warn') },
);
await gw.app.listen({ host: '127.0.0.1', port: 0 });
const port = gw.app.server.address().port;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const get = (credential) =>
  new Promise((resolve, reject) => {
    const t0 = performance.now();
    request({ host: '127.0.0.1', port, path: '/v1/models', agent, headers: { authorization: `Bearer ${credential}` } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
    })
      .on('error', reject)
      .end();
  });

// Fresh tokens: distinct by jti, signed up front (signing is the IdP's cost, not ours).
const fresh = {};
for (const alg of ['RS256', 'ES256']) {
  fresh[alg] = [];
  for (let i = 0; i < REQUESTS + 500; i++) {
    fresh[alg].push(await new SignJWT({ ...claims, jti: `${alg}-${i}` }).setProtectedHeader({ alg, kid: `k-${alg}`, typ: 'JWT' }).sign(keys[alg].privateKey));
  }
}
const next = { RS256: 0, ES256: 0 };
const cases = {
  'static key': () => 'sk-bench-static-key',
  'JWT RS256, same token': () => tokens.RS256,
  'JWT ES256, same token': () => tokens.ES256,
  'JWT EdDSA, same token': () => tokens.EdDSA,
  'JWT RS256, new token': () => fresh.RS256[next.RS256++],
  'JWT ES256, new token': () => fresh.ES256[next.ES256++],
};
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let i = 0; i < 500; i++) for (const c of Object.values(cases)) await get(c()); // warm-up
const ROUND = 50;
for (let done = 0; done < REQUESTS; done += ROUND) {
  for (const [name, credential] of Object.entries(cases)) for (let i = 0; i < ROUND; i++) samples[name].push(await get(credential()));
}
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
console.log(`\ne2e: GET /v1/models, sequential, one keep-alive connection, ${REQUESTS} per case:`);
const base = pct(samples['static key'], 50);
for (const [name, xs] of Object.entries(samples)) {
  const p50 = pct(xs, 50);
  const added = name === 'static key' ? '' : `  added ${((p50 - base) * 1000).toFixed(0).padStart(4)} µs`;
  console.log(`  ${name.padEnd(22)} p50 ${(p50 * 1000).toFixed(0).padStart(5)} µs  p99 ${(pct(xs, 99) * 1000).toFixed(0).padStart(5)} µs${added}`);
}
agent.destroy();
await gw.app.close();
viaJwks.close();
jwks.close();
