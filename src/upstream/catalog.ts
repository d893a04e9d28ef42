import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import { GatewayError } from '../errors.js';
import { MOCK_MODELS } from './mock/model.js';
import type { ChatUpstream } from './types.js';

export interface Target {
  upstream: ChatUpstream;
  /** The model name the upstream knows. */
  model: string;
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

const LIST_TIMEOUT_MS = 5_000;

/**
 * Which model names the gateway serves, and where each goes (CONTRACT.md,
 * Models): config aliases; else the upstreams' own lists, refreshed
 * periodically (any name passes while no list can be read); else the mock's.
 */
export class ModelCatalog {
  private listed: Map<string, ChatUpstream[]> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly config: Config,
    private readonly upstreams: ReadonlyMap<string, ChatUpstream>,
    private readonly log: FastifyBaseLogger,
  ) {}

  private get mode(): 'aliases' | 'listed' | 'mock' {
    if (Object.keys(this.config.models).length > 0) return 'aliases';
    return Object.keys(this.config.upstreams).length > 0 ? 'listed' : 'mock';
  }

  /** Reads the upstreams' lists once, then every `modelsRefreshMs`. */
  async start(): Promise<void> {
    if (this.mode !== 'listed') return;
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.config.modelsRefreshMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const found = new Map<string, ChatUpstream[]>();
    let readable = false;
    for (const name of Object.keys(this.config.upstreams)) {
      const upstream = this.upstreams.get(name)!;
      try {
        const ids = await upstream.listModels(AbortSignal.timeout(LIST_TIMEOUT_MS));
        readable = true;
        // Every upstream that serves a model is a failover target for it, in config order.
        for (const id of ids) {
          const list = found.get(id);
          if (list) list.push(upstream);
          else found.set(id, [upstream]);
        }
      } catch (e) {
        this.log.warn({ upstream: name, err: (e as Error).message }, 'cannot read the upstream model list; passing any model through');
      }
    }
    this.listed = readable ? found : null;
  }

  /** Where a model is served, in priority order; 404 for a model outside the known list. */
  resolve(model: string): Target[] {
    switch (this.mode) {
      case 'aliases': {
        const route = Object.hasOwn(this.config.models, model) ? this.config.models[model] : undefined;
        if (route) return (Array.isArray(route) ? route : [route]).map((r) => ({ upstream: this.upstreams.get(r.upstream)!, model: r.model }));
        break;
      }
      case 'listed': {
        if (this.listed === null) return Object.keys(this.config.upstreams).map((n) => ({ upstream: this.upstreams.get(n)!, model }));
        const upstreams = this.listed.get(model);
        if (upstreams) return upstreams.map((upstream) => ({ upstream, model }));
        break;
      }
      case 'mock':
        if ((MOCK_MODELS as readonly string[]).includes(model)) return [{ upstream: this.upstreams.get('mock')!, model }];
    }
    throw new GatewayError('model_not_found', `The model '${model}' does not exist or is not served by this gateway`, { param: 'model' });
  }

  list(): ModelEntry[] {
    const entry = (id: string, owner: string): ModelEntry => ({ id, object: 'model', created: this.created, owned_by: owner });
    switch (this.mode) {
      case 'aliases':
        return Object.entries(this.config.models).map(([id, a]) => entry(id, (Array.isArray(a) ? a[0]! : a).upstream));
      case 'listed':
        return [...(this.listed ?? [])].map(([id, u]) => entry(id, u[0]!.name));
      case 'mock':
        return MOCK_MODELS.map((id) => entry(id, 'mock'));
    }
  }
}
