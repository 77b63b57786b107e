import { waitFor } from "./index.js";

/** Where a Prometheus text exposition comes from: a /metrics URL, or a prom-client registry. */
export type MetricsSource = string | { metrics(): Promise<string> };

/**
 * The value of a metric in a Prometheus text exposition: the sum of the lines for `name` whose labels include every
 * pair given (others may differ, so `{}` is the total over all labels). Undefined when no line matches.
 */
export function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have: string[] = (m[3] ?? "").match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
    if (want.every((p) => have.includes(p))) sum = (sum ?? 0) + Number(m[4]);
  }
  return sum;
}

/** The current value of a metric sample (0 when it has not been recorded yet). */
export async function metricValue(source: MetricsSource, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = typeof source === "string" ? await (await fetch(source)).text() : await source.metrics();
  return sampleValue(text, name, labels) ?? 0;
}

/**
 * Waits until a counter that a service bumps once per cycle (an evaluation, a reconcile pass) has advanced by `n`
 * from now: after two, at least one whole cycle ran after this call, so "nothing happened" can then be asserted.
 */
export async function waitForTicks(what: string, read: () => Promise<number>, n = 2, timeoutMs = 20_000): Promise<void> {
  const from = await read();
  await waitFor(`${n} ${what} after ${from}`, async () => (await read()) >= from + n, timeoutMs, 25);
}

/**
 * Waits until something a service rewrites once per cycle (a report's `computed_at`, a snapshot's `written_at`) has
 * changed `n` times from now. Each value is written at the end of a cycle and cycles do not overlap, so after two
 * changes one whole cycle began after this call.
 */
export async function waitForChanges<T>(what: string, read: () => Promise<T> | T, n = 2, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  let last = await read();
  let changes = 0;
  await waitFor(`${n} changes of ${what}`, async () => {
    const now = await read();
    if (now !== last) {
      changes++;
      last = now;
    }
    return changes >= n;
  }, timeoutMs, everyMs);
}
