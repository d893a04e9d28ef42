import t from 'tap';
import { FAST_MOCK, chatBody, startGateway, startMock, viaUpstream } from '../helpers/gateway.js';
import { post } from '../helpers/sse.js';

// A finished stream is kept (for resume) long after its request: only its events may stay with it.
// A hook back into the generation would keep the whole request's machinery alive per kept stream.
t.test('a finished chat stream kept for resume holds no hook into its generation', async (t) => {
  const { mock, baseUrl } = await startMock(FAST_MOCK);
  for (const [name, overrides] of [
    ['built-in mock', { mock: FAST_MOCK }],
    ['HTTP upstream', viaUpstream(baseUrl)],
  ] as const) {
    const gw = await startGateway(overrides);
    // Short answers, read in one go: the generation can end before its route has finished setting up.
    for (let i = 0; i < 20; i++) {
      const res = await post(`${gw.url}/v1/chat/completions`, chatBody('[mock:tokens=2]', { stream: true }));
      t.equal(res.status, 200);
      const log = gw.store.get(res.headers['x-stream-id'] as string);
      t.ok(log?.end, `${name} ${i}: kept, and finished`);
      t.equal(log?.onReadersChange, null, `${name} ${i}: no readers hook left on the kept log`);
    }
    await gw.close();
  }
  await mock.close();
});
