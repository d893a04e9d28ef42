/** Runs `fn` counting the JSON.parse calls made meanwhile (the fast paths promise to make none). */
export function parsesDuring(fn: () => void): number {
  const parse = JSON.parse;
  let calls = 0;
  JSON.parse = ((...args: Parameters<typeof JSON.parse>) => {
    calls++;
    return parse(...args);
  }) as typeof JSON.parse;
  try {
    fn();
  } finally {
    JSON.parse = parse;
  }
  return calls;
}
