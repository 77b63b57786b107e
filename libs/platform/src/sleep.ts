/**
 * Waits `ms`, or less when `signal` aborts first; never rejects, so a loop that sleeps between attempts checks the
 * signal itself afterwards. The abort listener goes when the time is up: a long-running loop does not pile them up.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
