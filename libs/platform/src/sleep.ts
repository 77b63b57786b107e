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

/**
 * A work loop's idle wait that a wake-up cuts short. A wake-up that comes while the loop is busy is kept, so the
 * next wait returns at once instead of sleeping through the work that was just queued; the loop forgets it with
 * `clear()` just before it looks for work, since that look sees whatever the wake-up was for.
 */
export interface IdleWait {
  /** Waits `ms`, or less: at once when woken since the last `clear()` or when `stopped()`. */
  idle(ms: number): Promise<void>;
  /** Ends the current wait now, or the next one when the loop is busy. */
  wake(): void;
  clear(): void;
}

export function createIdleWait(stopped: () => boolean): IdleWait {
  let woken = false;
  let end: (() => void) | undefined;
  return {
    idle(ms) {
      return new Promise((resolve) => {
        if (woken || stopped()) {
          woken = false;
          return resolve();
        }
        const t = setTimeout(done, ms);
        function done(): void {
          clearTimeout(t);
          end = undefined;
          woken = false;
          resolve();
        }
        end = done;
      });
    },
    wake() {
      woken = true;
      end?.();
    },
    clear() {
      woken = false;
    },
  };
}
