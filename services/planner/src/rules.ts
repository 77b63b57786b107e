import type { RecoveryActionKind } from "@steward/contracts/action";
import type { DriftKind } from "@steward/contracts/drift";
import type { Evidence } from "./evidence.js";
import type { RawProposal } from "./proposals.js";

/**
 * Runbooks as data: what the planner says when no model can be used. Each matches a drift kind (and, for the crash
 * loop, a number of exits in the events window) or a host condition, and proposes a catalog action or only alerts.
 */
export interface Runbook {
  id: string;
  /** Drift kinds it applies to (empty: host-level). */
  drift: DriftKind[];
  /** Minimum exits/failures in the events window (crash loop). */
  minCrashes?: number;
  /** Minimum used percentage of any disk on the node. */
  minDiskUsedPct?: number;
  proposes: RecoveryActionKind | null;
  advice: string;
}

export const CRASH_LOOP_EXITS = 3;

/** First match wins, so the crash loop comes before the plain `down`. */
export const RUNBOOKS: readonly Runbook[] = [
  { id: "crash_loop", drift: ["down", "unhealthy"], minCrashes: CRASH_LOOP_EXITS, proposes: "restart", advice: "crash loop: restart once and back off; if it exits again, read the log tail before restarting again (restarts alone will not fix it)" },
  { id: "missing", drift: ["missing"], proposes: "start", advice: "declared but not running: start it" },
  { id: "down", drift: ["down"], proposes: "restart", advice: "stopped or exited: restart it" },
  { id: "unhealthy", drift: ["unhealthy"], proposes: "restart", advice: "running but failing its health checks: restart it, then watch the checks" },
  { id: "unknown", drift: ["unknown"], proposes: null, advice: "state unknown (stale node or observer): check the node-agent and NATS; nothing is done on unknown state" },
  { id: "disk_full", drift: [], minDiskUsedPct: 90, proposes: null, advice: "disk almost full: alert only; free space by hand (old images, logs, backups)" },
];

export interface RulesAnswer {
  diagnosis: string;
  answer: string;
  proposals: RawProposal[];
  runbooks: string[];
}

/** Pure: the rule-based diagnosis of the gathered evidence. `why` says which model could not be used and why. */
export function diagnoseByRules(ev: Evidence, why: string): RulesAnswer {
  const lines: string[] = [];
  const proposals: RawProposal[] = [];
  const used: string[] = [];
  for (const d of ev.drifts) {
    const crashes = ev.crashes[`${d.node}/${d.service}`] ?? 0;
    const rb = RUNBOOKS.find((r) => r.drift.includes(d.kind) && (r.minCrashes === undefined || crashes >= r.minCrashes));
    if (!rb) continue;
    used.push(rb.id);
    lines.push(`${d.service} on ${d.node}: ${d.message} → runbook '${rb.id}': ${rb.advice}${rb.minCrashes !== undefined ? ` (${crashes} exits in the events window)` : ""}`);
    if (rb.proposes) proposals.push({ kind: rb.proposes, node: d.node, service: d.service, reason: `runbook ${rb.id}: ${rb.advice}` });
  }
  for (const [node, host] of Object.entries(ev.hosts)) {
    const rb = RUNBOOKS.find((r) => r.id === "disk_full");
    const full = host?.disks.filter((disk) => rb?.minDiskUsedPct !== undefined && disk.used_pct >= rb.minDiskUsedPct) ?? [];
    if (rb && full.length > 0) {
      used.push(rb.id);
      lines.push(`node ${node}: ${full.map((f) => `${f.path} ${Math.round(f.used_pct)}% used`).join(", ")} → runbook '${rb.id}': ${rb.advice}`);
    }
  }
  const diagnosis = lines.length > 0 ? lines.join("\n") : "No runbook matches the evidence: no drift on the services this task is about.";
  const answer = `No model could be used (${why}); this answer comes from the rule-based runbooks.\n${diagnosis}`;
  return { diagnosis, answer, proposals, runbooks: [...new Set(used)] };
}
