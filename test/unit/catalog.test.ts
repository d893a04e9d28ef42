import t from 'tap';
import { defaultConfig } from '../../src/config.js';
import { GatewayError } from '../../src/errors.js';
import { ModelCatalog } from '../../src/upstream/catalog.js';
import type { ChatUpstream } from '../../src/upstream/types.js';

const silent = { warn() {}, info() {}, error() {}, debug() {} } as never;

function fakeUpstream(name: string, list: () => Promise<string[]>): ChatUpstream {
  return {
    name,
    stream: () => {
      throw new Error('not used');
    },
    complete: () => Promise.reject(new Error('not used')),
    listModels: list,
  };
}

t.test('only UPSTREAM_BASE_URL: the upstream list decides, unknown → 404', async (t) => {
  const up = fakeUpstream('default', async () => ['llama-3', 'qwen']);
  const config = defaultConfig({ upstreams: { default: { baseUrl: 'http://127.0.0.1:1/v1' } } });
  const catalog = new ModelCatalog(config, new Map([['default', up]]), silent);
  await catalog.start();
  t.teardown(() => catalog.close());
  t.equal(catalog.resolve('qwen')[0]!.upstream, up);
  t.equal(catalog.resolve('qwen')[0]!.model, 'qwen');
  t.same(catalog.list().map((m) => m.id), ['llama-3', 'qwen']);
  const err = t.throws(() => catalog.resolve('gpt-9')) as GatewayError;
  t.equal(err.status, 404);
  t.equal(err.code, 'model_not_found');
});

t.test('while the list cannot be read, any name passes through; a later refresh restores it', async (t) => {
  let up = false;
  const upstream = fakeUpstream('default', async () => {
    if (!up) throw new Error('connection refused');
    return ['llama-3'];
  });
  const config = defaultConfig({ upstreams: { default: { baseUrl: 'http://127.0.0.1:1/v1' } } });
  const catalog = new ModelCatalog(config, new Map([['default', upstream]]), silent);
  await catalog.start();
  t.teardown(() => catalog.close());
  t.equal(catalog.resolve('anything')[0]!.model, 'anything', 'pass-through');
  up = true;
  await catalog.refresh();
  t.throws(() => catalog.resolve('anything'));
  t.equal(catalog.resolve('llama-3')[0]!.model, 'llama-3');
});

t.test('config aliases map to an upstream and its own model name', async (t) => {
  const a = fakeUpstream('a', async () => []);
  const config = defaultConfig({
    upstreams: { a: { baseUrl: 'http://127.0.0.1:1/v1' } },
    models: { fast: { upstream: 'a', model: 'meta/llama-8b' }, demo: { upstream: 'mock', model: 'mock-1' } },
  });
  const mock = fakeUpstream('mock', async () => ['mock-1']);
  const catalog = new ModelCatalog(config, new Map([['a', a], ['mock', mock]]), silent);
  await catalog.start();
  t.same(catalog.resolve('fast'), [{ upstream: a, model: 'meta/llama-8b' }]);
  t.equal(catalog.resolve('demo')[0]!.upstream, mock);
  t.throws(() => catalog.resolve('meta/llama-8b'), 'the upstream name itself is not an alias');
  t.throws(() => catalog.resolve('__proto__'));
  t.same(catalog.list().map((m) => [m.id, m.owned_by]), [['fast', 'a'], ['demo', 'mock']]);
});

t.test('no upstream: the mock models', async (t) => {
  const catalog = new ModelCatalog(defaultConfig(), new Map([['mock', fakeUpstream('mock', async () => [])]]), silent);
  t.equal(catalog.resolve('mock-1')[0]!.model, 'mock-1');
  t.throws(() => catalog.resolve('gpt-4o'));
});
