/**
 * `read`, shared by the callers that ask while one is under way (each gets the same value: read-only use), and
 * for `maxAgeMs` after that read started, answered from it again. A failed read is not kept.
 */
export function sharedRead<T>(read: () => Promise<T>, maxAgeMs = 0, now = () => Date.now()): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  let kept: { value: T; at: number } | undefined;
  return () => {
    if (kept && now() - kept.at < maxAgeMs) return Promise.resolve(kept.value);
    if (inFlight) return inFlight;
    const at = now();
    inFlight = read()
      .then((value) => {
        kept = { value, at };
        return value;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };
}

/**
 * `sharedRead` per key (`keyOf` of the argument): a read of a key started less than `maxAgeMs` ago (under way or
 * done) answers every caller asking for that key. A failed read is not kept; past `maxEntries` keys the stale
 * ones are dropped.
 */
export function sharedReadBy<A, T>(
  keyOf: (arg: A) => string,
  read: (arg: A) => Promise<T>,
  maxAgeMs: number,
  now = () => Date.now(),
  maxEntries = 4096,
): (arg: A) => Promise<T> {
  const kept = new Map<string, { value: Promise<T>; at: number }>();
  return (arg) => {
    const key = keyOf(arg);
    const at = now();
    const hit = kept.get(key);
    if (hit && at - hit.at < maxAgeMs) return hit.value;
    if (kept.size >= maxEntries) for (const [k, e] of kept) if (at - e.at >= maxAgeMs) kept.delete(k);
    const value = read(arg);
    kept.set(key, { value, at });
    value.catch(() => {
      if (kept.get(key)?.value === value) kept.delete(key);
    });
    return value;
  };
}
