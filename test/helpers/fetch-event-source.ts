import { fetchEventSource, type EventSourceMessage } from '@microsoft/fetch-event-source';

// fetch-event-source is written for browsers: it reaches for window.setTimeout/fetch and, even with
// openWhenHidden, document.removeEventListener when it is done. Node has the rest on globalThis.
const g = globalThis as Record<string, unknown>;
g.window ??= globalThis;
g.document ??= { hidden: false, addEventListener() {}, removeEventListener() {} };

export interface PostedStream {
  /** Every message the library dispatched, in order. */
  messages: EventSourceMessage[];
  /** Per response opened (the first try, then each retry): its status and X-Stream-Id. */
  opens: { status: number; streamId: string | null }[];
  /** The errors the library retried after. */
  errors: unknown[];
}

/**
 * POSTs a streaming request with the real @microsoft/fetch-event-source,
 * letting the library retry by itself (with its Last-Event-ID) after a cut,
 * up to `maxRetries` times; resolves when a response ends normally.
 * `trackDispatched` sends the id of the last message dispatched instead of
 * the library's own (see README: Retried POSTs).
 */
export async function postEventStream(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  opts: { maxRetries?: number; retryMs?: number; trackDispatched?: boolean } = {},
): Promise<PostedStream> {
  const out: PostedStream = { messages: [], opens: [], errors: [] };
  let lastSeen: string | undefined;
  const maxRetries = opts.maxRetries ?? 3;
  await fetchEventSource(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    openWhenHidden: true,
    ...(opts.trackDispatched
      ? {
          fetch: (input: RequestInfo | URL, init?: RequestInit) => {
            const h = { ...(init?.headers as Record<string, string>) };
            delete h['last-event-id'];
            if (lastSeen !== undefined) h['last-event-id'] = lastSeen;
            return fetch(input, { ...init, headers: h });
          },
        }
      : {}),
    async onopen(res) {
      out.opens.push({ status: res.status, streamId: res.headers.get('x-stream-id') });
      if (res.status !== 200 || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
        throw new Error(`fatal: ${res.status} ${await res.text()}`);
      }
    },
    onmessage(m) {
      out.messages.push(m);
      if (m.id) lastSeen = m.id;
    },
    onerror(err) {
      out.errors.push(err);
      // Rethrowing stops the library; a number is how long it waits before its own retry.
      if (String(err).includes('fatal') || out.errors.length > maxRetries) throw err;
      return opts.retryMs ?? 20;
    },
  });
  return out;
}
