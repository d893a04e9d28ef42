import t, { type Test } from 'tap';
import { MAX_BODY_DEPTH } from '../../src/schema/validate.js';
import { FAST_MOCK, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { openAIError, send } from '../helpers/http.js';

/**
 * The body's bytes: what is not UTF-8 is refused at the door (never decoded
 * with U+FFFD and forwarded), what is UTF-8 reaches the upstream byte for
 * byte, and a body nested too deep is refused naming its top-level field.
 * Asserted on the bytes the mock upstream itself received.
 */

async function setup(t: Test) {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  // Every byte the upstream received, per request, next to the mock's own record.
  const received: Buffer[] = [];
  mock.server.prependListener('request', (req) => {
    if (req.method !== 'POST') return;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => received.push(Buffer.concat(parts)));
  });
  const gw = await startGateway({ ...viaUpstream(baseUrl), mock: FAST_MOCK });
  t.teardown(async () => {
    await gw.close();
    await mock.close();
  });
  return { gw, mock, received };
}

/** A chat body whose user message is `before`, the raw bytes, then `after`. */
function bodyWith(bytes: Buffer, extra = ''): Buffer {
  return Buffer.concat([Buffer.from('{"model":"mock-1","messages":[{"role":"user","content":"a'), bytes, Buffer.from(`b"}]${extra}}`)]);
}

const INVALID: [string, Buffer][] = [
  ['a lone continuation byte', Buffer.from([0x80])],
  ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf])],
  ['an overlong 3-byte encoding of NUL', Buffer.from([0xe0, 0x80, 0x80])],
  ['a truncated 3-byte sequence', Buffer.from([0xe2, 0x82])],
  ['a truncated 4-byte sequence', Buffer.from([0xf0, 0x9f, 0x98])],
  ['a UTF-16 surrogate encoded in UTF-8', Buffer.from([0xed, 0xa0, 0x80])],
  ['a byte that never occurs in UTF-8', Buffer.from([0xff])],
  ['a code point above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
];

const ROUTES = [
  { url: '/v1/chat/completions', extra: '' },
  { url: '/v1/chat/completions', extra: ',"stream":true' },
  { url: '/v1/streams', extra: '' },
];

t.test('a body that is not valid UTF-8: 400 invalid_body, and nothing reaches the upstream', async (t) => {
  const { gw, mock, received } = await setup(t);
  for (const route of ROUTES) {
    for (const [name, bytes] of INVALID) {
      const res = await send(gw.url + route.url, { headers: { 'content-type': 'application/json' }, body: bodyWith(bytes, route.extra) });
      const err = openAIError(res.body);
      if (typeof err === 'string') {
        t.fail(`${route.url}${route.extra}, ${name}: ${err}`);
        continue;
      }
      t.equal(res.status, 400, `${route.url}${route.extra}, ${name}: 400`);
      t.equal(err.error.code, 'invalid_body', `${route.url}${route.extra}, ${name}: invalid_body`);
      t.match(err.error.message, /UTF-8/);
      t.notOk(res.body.includes('\ufffd'), 'no replacement character in the answer');
    }
  }
  // An invalid byte at the very end, where a decoder would also have to guess.
  const cut = await send(gw.url + '/v1/chat/completions', {
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: Buffer.concat([Buffer.from('{"model":"mock-1","messages":[]}'), Buffer.from([0xe6, 0xbc])]),
  });
  t.equal(cut.status, 400);
  t.equal((openAIError(cut.body) as { error: { code: string } }).error.code, 'invalid_body', 'checked before the JSON parse');
  // The same body, valid, does reach the upstream: the check above can fail.
  const good = await send(gw.url + '/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body: bodyWith(Buffer.from('x')) });
  t.equal(good.status, 200);
  t.equal(mock.requests.length, 1, 'only the valid body reached the upstream');
  t.equal(received.length, 1);
});

t.test('valid multi-byte UTF-8 reaches the upstream byte for byte', async (t) => {
  const { gw, mock, received } = await setup(t);
  const text = 'emoji 😀🧑‍🚀, CJK 漢字かな한글, accents é ü ñ, U+FFFF \uffff, U+10FFFF \u{10ffff}';
  const bytes = Buffer.from(text, 'utf8');
  t.ok(bytes.length > text.length, 'the text has multi-byte characters');
  for (const [i, extra] of ['', ',"stream":true'].entries()) {
    const res = await send(gw.url + '/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body: bodyWith(bytes, extra) });
    t.equal(res.status, 200, `stream ${extra !== ''}: 200`);
    t.equal(mock.requests[i]?.body.messages[0]?.content, `a${text}b`, 'the upstream parsed the same text');
    t.ok(received[i]?.includes(Buffer.concat([Buffer.from('a'), bytes, Buffer.from('b')])), 'the same bytes are in what the upstream received');
    t.notOk(received[i]?.includes(Buffer.from('\ufffd')), 'no replacement character upstream');
  }
});

t.test('a body nested too deep: 400 whose param names the top-level field', async (t) => {
  const { gw, mock } = await setup(t);
  const deep = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
  const user = '{"role":"user","content":"hi"}';
  const cases: [string, string][] = [
    ['messages', `{"model":"mock-1","messages":[{"role":"user","content":"hi","extra":${deep(100)}}]}`],
    ['messages', `{"model":"mock-1","messages":[${user}, ${deep(70)}]}`],
    ['tools', `{"model":"mock-1","messages":[${user}],"tools":[{"type":"function","function":{"name":"f","parameters":{"p":${deep(80)}}}}]}`],
    ['metadata', `{"model":"mock-1","metadata":{"k":${deep(1000)}},"messages":[${user}]}`],
    ['response_format', `{"model":"mock-1","messages":[${user}],"response_format":${deep(MAX_BODY_DEPTH)}}`],
  ];
  for (const [param, body] of cases) {
    const res = await send(gw.url + '/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body });
    const err = openAIError(res.body);
    if (typeof err === 'string') {
      t.fail(`${param}: ${err}`);
      continue;
    }
    t.equal(res.status, 400, `${param}: 400`);
    t.same([err.error.code, err.error.param], ['invalid_body', param], `${param}: invalid_body naming ${param}`);
    t.match(err.error.message, `nested deeper than ${MAX_BODY_DEPTH} levels`);
  }
  // One level less is within the limit: refused, if at all, for something else.
  const within = await send(gw.url + '/v1/chat/completions', {
    headers: { 'content-type': 'application/json' },
    body: `{"model":"mock-1","messages":[${user}],"response_format":${deep(MAX_BODY_DEPTH - 1)}}`,
  });
  t.notMatch(within.body, /nested deeper/, `${MAX_BODY_DEPTH} levels in all are allowed`);
  t.equal(mock.requests.length, 0, 'nothing reached the upstream');
});
