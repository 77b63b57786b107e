import type { HealthCheck, ProcessService } from "@steward/fleet/fleet-spec";
import type { ServiceHealth } from "@steward/contracts/events";

/** Start order within one node: dependencies first, then by name so the order is stable. */
export function startOrder(services: Record<string, Pick<ProcessService, "depends_on">>): string[] {
  const out: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string): void => {
    if (state.get(name) !== undefined || !(name in services)) return;
    state.set(name, "visiting");
    // The validator rejects cycles; a cycle that slips through is broken here rather than looping.
    for (const dep of [...(services[name]?.depends_on ?? [])].sort()) if (state.get(dep) === undefined) visit(dep);
    state.set(name, "done");
    out.push(name);
  };
  for (const name of Object.keys(services).sort()) visit(name);
  return out;
}

export interface SpecDiff {
  added: string[];
  removed: string[];
  /** Still declared, but their declaration changed (takes effect at the next start; checks restart now). */
  changed: string[];
}

/** What a spec reload means for this node's services. */
export function diffServices(before: Record<string, ProcessService>, after: Record<string, ProcessService>): SpecDiff {
  const added = Object.keys(after).filter((n) => !(n in before)).sort();
  const removed = Object.keys(before).filter((n) => !(n in after)).sort();
  const changed = Object.keys(after)
    .filter((n) => n in before && JSON.stringify(before[n]) !== JSON.stringify(after[n]))
    .sort();
  return { added, removed, changed };
}

/** Backoff before an automatic restart (restart policy on-failure/always): 1 s, 2 s, 4 s … capped at 30 s. */
export function restartDelayMs(consecutiveRestarts: number, baseMs = 1000, capMs = 30_000): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, Math.min(consecutiveRestarts, 20)));
}

export function shouldRestart(policy: "never" | "on-failure" | "always", exit: { code: number | null; signal: string | null; stoppedByCommand: boolean }): boolean {
  if (exit.stoppedByCommand || policy === "never") return false;
  if (policy === "always") return true;
  return exit.code !== 0 || exit.signal !== null;
}

export interface CheckProgress {
  retries: number;
  /** Passed at least once since the process started. */
  passedOnce: boolean;
  consecutiveFailures: number;
  /**
   * End of the check's `start_period` (epoch ms), as Docker's healthcheck has it: until then, and until the check
   * first passes, a failure is not counted, so a service that needs a while to listen is `starting`, not unhealthy.
   */
  startPeriodEndsAt?: number;
}

/** Pure: a check's progress after one run at `nowMs`. */
export function nextCheckProgress(p: CheckProgress, ok: boolean, nowMs: number): CheckProgress {
  if (ok) return { ...p, passedOnce: true, consecutiveFailures: 0 };
  if (!p.passedOnce && p.startPeriodEndsAt !== undefined && nowMs < p.startPeriodEndsAt) return p;
  return { ...p, consecutiveFailures: p.consecutiveFailures + 1 };
}

/** Pure: a check's progress when its process (or stack) starts at `nowMs`. */
export function freshCheckProgress(check: { retries: number; start_period: number }, nowMs: number): CheckProgress {
  return { retries: check.retries, passedOnce: false, consecutiveFailures: 0, ...(check.start_period > 0 ? { startPeriodEndsAt: nowMs + check.start_period } : {}) };
}

export function checkHealth(c: CheckProgress): ServiceHealth {
  if (c.consecutiveFailures >= c.retries) return "unhealthy";
  return c.passedOnce ? "healthy" : "starting";
}

/** A service is healthy when every check is; one unhealthy check makes it unhealthy; otherwise it is still starting. */
export function aggregateHealth(checks: readonly CheckProgress[]): ServiceHealth {
  if (checks.length === 0) return "none";
  const each = checks.map(checkHealth);
  if (each.includes("unhealthy")) return "unhealthy";
  return each.every((h) => h === "healthy") ? "healthy" : "starting";
}

/** The name a check is reported under: its declared name, else its type and position. */
export function checkName(check: HealthCheck, index: number): string {
  return check.name ?? `${check.type}-${index}`;
}

/** Disk usage the way `df` computes it: used over what a non-root user could use. */
export function diskUsage(path: string, s: { bsize: number; blocks: number; bfree: number; bavail: number }): { path: string; used_pct: number; free_bytes: number } {
  const used = s.blocks - s.bfree;
  const denom = used + s.bavail;
  const pct = denom > 0 ? (used / denom) * 100 : 0;
  return { path, used_pct: Math.min(100, Math.max(0, Math.round(pct * 100) / 100)), free_bytes: Math.max(0, s.bavail * s.bsize) };
}

export function memUsedPct(total: number, free: number): number {
  if (total <= 0) return 0;
  return Math.min(100, Math.max(0, Math.round(((total - free) / total) * 10_000) / 100));
}
