/** The control-plane services whose health check the dead-man polls (the others are judged by what they write). */
export type PolledComponent = "executor" | "planner";

export interface Liveness {
  watched: ReadonlySet<PolledComponent>;
  lastOk: Partial<Record<PolledComponent, number>>;
  lastError: Partial<Record<PolledComponent, string>>;
  /** Asks each watched component once (never throws). */
  poll(): Promise<void>;
}

/**
 * The executor and the planner serve `/healthz`; an answer other than 200 within the timeout, or none, is not alive.
 * What is not part of the stack (no planner URL) is not watched, so it never alerts.
 */
export function createLiveness(o: { urls: Partial<Record<PolledComponent, string>>; timeoutMs: number; clock: () => number; fetch?: typeof fetch }): Liveness {
  const f = o.fetch ?? fetch;
  const watched = new Set(Object.keys(o.urls) as PolledComponent[]);
  const lastOk: Partial<Record<PolledComponent, number>> = {};
  const lastError: Partial<Record<PolledComponent, string>> = {};
  async function ask(c: PolledComponent, url: string): Promise<void> {
    try {
      const res = await f(`${url}/healthz`, { signal: AbortSignal.timeout(o.timeoutMs) });
      await res.body?.cancel();
      if (res.status === 200) {
        lastOk[c] = o.clock();
        delete lastError[c];
      } else lastError[c] = `answered ${res.status}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      lastError[c] = e.name === "TimeoutError" ? `no answer within ${o.timeoutMs} ms` : (e.cause?.code ?? e.message);
    }
  }
  return {
    watched,
    lastOk,
    lastError,
    async poll() {
      await Promise.all(Object.entries(o.urls).map(([c, url]) => ask(c as PolledComponent, url)));
    },
  };
}
