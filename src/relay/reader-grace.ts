import type { AbortReason } from '../errors.js';
import type { Generation } from './generation.js';

/**
 * Aborts a generation once it has had no reader for `graceMs` (at once for 0),
 * and forgives it when a reader comes back in time.
 */
export function watchReaders(
  gen: Generation,
  graceMs: number,
  reason: AbortReason,
  remoteReaders?: (id: string) => Promise<number>,
): void {
  // A short answer can be over before its route gets here: nothing to watch then, and hooks set now
  // would never be undone, keeping the whole generation alive for as long as its log is kept.
  if (gen.outcome !== null) return;
  let timer: NodeJS.Timeout | null = null;
  const log = gen.log;
  const expire = async () => {
    timer = null;
    // Readers on other replicas (Redis) count too: look before stopping the generation.
    const elsewhere = remoteReaders ? await remoteReaders(log.id).catch(() => 0) : 0;
    if (log.end || log.readerCount > 0) return;
    if (elsewhere > 0) arm();
    else gen.abort(reason);
  };
  const arm = () => {
    timer ??= setTimeout(() => void expire(), graceMs);
    timer.unref();
  };
  const onChange = (readers: number) => {
    if (readers > 0 || log.end) {
      if (timer) clearTimeout(timer);
      timer = null;
      return;
    }
    if (graceMs === 0) return gen.abort(reason);
    arm();
  };
  log.onReadersChange = onChange;
  const previous = gen.onFinished;
  gen.onFinished = () => {
    if (timer) clearTimeout(timer);
    log.onReadersChange = null;
    previous?.();
  };
  if (log.readerCount === 0 && graceMs > 0 && !log.end) onChange(0);
}
