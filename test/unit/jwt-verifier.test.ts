import { createHash } from 'node:crypto';
import t from 'tap';
import { SignJWT } from 'jose';
import { userIdOf } from '../../src/auth/identity.js';
import { JwtVerifier } from '../../src/auth/jwt-verifier.js';
import { VerifiedTokens } from '../../src/auth/verified-tokens.js';
import { JWKS_TIMINGS } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';

/** The verifier in HS256 mode (no network) and its cache of verified tokens. */

const SECRET = 'unit-test-secret-of-at-least-32-characters';
const sha = (s: string) => createHash('sha256').update(s).digest();
const hs256 = (claims: Record<string, unknown>, exp: number) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));

t.test('a verified token is its user, found again by digest until exp + 30 s', async (t) => {
  const verifier = new JwtVerifier({ ...JWKS_TIMINGS, secret: SECRET }, createLogger('silent'));
  const exp = Math.floor(Date.now() / 1000) + 10;
  const token = await hs256({ sub: 'ann', models: ['mock-1'] }, exp);
  t.equal(verifier.cached(sha(token)), null, 'not before it was verified');
  const identity = await verifier.verify(token, sha(token));
  t.match(identity, { kind: 'user', id: userIdOf('ann') });
  t.same(identity.kind === 'user' && [...(identity.models ?? [])], ['mock-1']);
  t.equal(verifier.cached(sha(token)), identity, 'found by its digest');
  t.equal(verifier.cached(sha(token + 'x')), null, 'another digest: nothing');

  const tokens = new VerifiedTokens();
  tokens.set(sha(token), identity, (exp + 30) * 1000);
  t.equal(tokens.get(sha(token), (exp + 29) * 1000), identity, 'within the leeway');
  t.equal(tokens.get(sha(token), (exp + 31) * 1000), null, 'past it: gone');
  t.equal(tokens.size, 0, 'and dropped');
});

t.test('failures are not kept', async (t) => {
  const verifier = new JwtVerifier({ ...JWKS_TIMINGS, secret: SECRET }, createLogger('silent'));
  const expired = await hs256({ sub: 'ann' }, Math.floor(Date.now() / 1000) - 120);
  await t.rejects(verifier.verify(expired, sha(expired)), { code: 'unauthorized', message: /expired/ });
  t.equal(verifier.cached(sha(expired)), null);
});

t.test('bounded: past max, the oldest goes first', async (t) => {
  const tokens = new VerifiedTokens(2);
  const who = (id: string) => ({ kind: 'user' as const, id, models: null });
  const far = Date.now() + 60_000;
  tokens.set(sha('a'), who('a'), far);
  tokens.set(sha('b'), who('b'), far);
  tokens.set(sha('c'), who('c'), far);
  t.equal(tokens.size, 2);
  t.equal(tokens.get(sha('a')), null, 'a evicted');
  t.match(tokens.get(sha('c')), { id: 'c' });
  tokens.clear();
  t.equal(tokens.size, 0);
});
