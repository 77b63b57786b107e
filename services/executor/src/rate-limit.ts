/**
 * Failed sign-ins and bearer tokens, per source address, with backoff: at `maxFailures` inside `windowMs` a source
 * is refused (429) for `baseBlockMs`, doubled at every further failure up to `maxBlockMs`, without its token even
 * being looked at. Only failures count, so a right token from another source is never slowed by an attacker's.
 * In memory and per executor: the point is to make guessing slow, not to be exact across replicas.
 */
export interface FailureLimiter {
  /** Milliseconds until this source may try again; 0 when it may now. */
  retryAfterMs(source: string): number;
  fail(source: string): void;
}

export interface FailureLimiterOptions {
  maxFailures?: number;
  windowMs?: number;
  baseBlockMs?: number;
  maxBlockMs?: number;
  /** Most sources remembered; the oldest are forgotten first. */
  maxSources?: number;
  now?: () => number;
}

interface Entry {
  first: number;
  failures: number;
  blockedUntil: number;
}

export function createFailureLimiter(o: FailureLimiterOptions = {}): FailureLimiter {
  const maxFailures = o.maxFailures ?? 10;
  const windowMs = o.windowMs ?? 10 * 60_000;
  const base = o.baseBlockMs ?? 1000;
  const cap = o.maxBlockMs ?? 15 * 60_000;
  const maxSources = o.maxSources ?? 10_000;
  const now = o.now ?? Date.now;
  const entries = new Map<string, Entry>();

  return {
    retryAfterMs(source) {
      const e = entries.get(source);
      return e ? Math.max(0, e.blockedUntil - now()) : 0;
    },
    fail(source) {
      const t = now();
      let e = entries.get(source);
      if (!e || (t - e.first > windowMs && e.blockedUntil <= t)) e = { first: t, failures: 0, blockedUntil: 0 };
      entries.delete(source);
      e.failures += 1;
      const over = e.failures - maxFailures;
      if (over >= 0) e.blockedUntil = t + Math.min(cap, base * 2 ** Math.min(over, 30));
      entries.set(source, e);
      while (entries.size > maxSources) {
        const oldest = entries.keys().next();
        if (oldest.done) break;
        entries.delete(oldest.value);
      }
    },
  };
}
