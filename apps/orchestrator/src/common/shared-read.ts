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
