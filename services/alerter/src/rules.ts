import { z } from "zod";
import type { Action } from "@steward/contracts/action";
import type { DrillResult } from "@steward/contracts/drill";
import type { CostReport } from "@steward/contracts/task";
import type { IncidentRecurrence } from "@steward/contracts/incident";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";

/** Alert rules as configuration (ALERT_RULES_FILE, JSON). Each rule may override the re-notify interval (0 = never). */
export const AlertSeverity = z.enum(["info", "warning", "critical"]);
export type AlertSeverity = z.infer<typeof AlertSeverity>;

const renotify = { renotify_min: z.number().min(0).optional() };

export const Rule = z.discriminatedUnion("rule", [
  z.strictObject({ rule: z.literal("new_drift"), severities: z.array(z.enum(["action", "alert", "report"])).min(1).default(["action", "alert"]), severity: AlertSeverity.default("warning"), ...renotify }),
  z.strictObject({ rule: z.literal("drift_persists"), after_min: z.number().positive(), severity: AlertSeverity.default("critical"), ...renotify }),
  z.strictObject({ rule: z.literal("action_failed"), window_min: z.number().positive().default(24 * 60), severity: AlertSeverity.default("critical"), ...renotify }),
  z.strictObject({ rule: z.literal("action_pending"), severity: AlertSeverity.default("info"), renotify_min: z.number().min(0).default(0) }),
  z.strictObject({ rule: z.literal("node_stale"), severity: AlertSeverity.default("critical"), ...renotify }),
  z.strictObject({ rule: z.literal("deadman"), component: z.enum(["observer", "supervisor", "executor", "planner"]), after_s: z.number().positive(), severity: AlertSeverity.default("critical"), ...renotify }),
  z.strictObject({ rule: z.literal("drill_missed"), window_min: z.number().positive().default(30 * 24 * 60), severity: AlertSeverity.default("warning"), ...renotify }),
  z.strictObject({ rule: z.literal("cost_cap"), thresholds: z.array(z.number().positive()).min(1).default([0.8, 1]), ...renotify }),
  // "This keeps happening": told once per recurrence window (it is not repeated while the window lasts, unless asked).
  z.strictObject({ rule: z.literal("incident_recurs"), severity: AlertSeverity.default("warning"), renotify_min: z.number().min(0).default(0) }),
]);
export type Rule = z.output<typeof Rule>;
export const Rules = z.array(Rule).min(1, "needs at least one rule");

/** The identity of a rule instance: what alerts record in `rule`, and what "judged this round" refers to. */
export function ruleId(r: Rule): string {
  return r.rule === "deadman" ? `deadman:${r.component}` : r.rule;
}

export function defaultRules(o: { driftPersistMin: number; deadmanS: number }): Rule[] {
  return Rules.parse([
    { rule: "new_drift" },
    { rule: "drift_persists", after_min: o.driftPersistMin },
    { rule: "action_failed" },
    { rule: "action_pending" },
    { rule: "node_stale" },
    { rule: "deadman", component: "observer", after_s: o.deadmanS },
    { rule: "deadman", component: "supervisor", after_s: o.deadmanS },
    { rule: "deadman", component: "executor", after_s: o.deadmanS },
    { rule: "deadman", component: "planner", after_s: o.deadmanS },
    { rule: "cost_cap" },
    { rule: "drill_missed" },
    { rule: "incident_recurs" },
  ]);
}

export type Read<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface RuleInputs {
  now: number;
  /** When the alerter started: the dead-man's reference before any good document was seen. */
  startedAt: number;
  snapshot: Read<Snapshot>;
  /** `written_at` of the newest snapshot that parsed, ever (kept across unreadable ones). */
  lastGoodSnapshotAt: number | undefined;
  drift: Read<DriftReport>;
  lastGoodDriftAt: number | undefined;
  /** `drills`: the newest passed or missed drill of each service (absent: no drill rule input). */
  actions: Read<{ pending: Action[]; latestFinished: Action[]; drills?: DrillResult[] }>;
  /** `{ok:false}` also when no planner is configured: cost rules are then not judged. */
  cost: Read<CostReport>;
  /** The planner's recurring failures in force (`{ok:false}` also when no planner is configured: not judged then). */
  recurrences?: Read<IncidentRecurrence[]>;
  /** first_seen of firing alerts by fingerprint (a drift without `since` persists from when it was first alerted). */
  firstSeen: ReadonlyMap<string, number>;
  /** When each drift (by key) was first seen in the reports, without a gap: a new node's or service's grace starts there. */
  driftFirstSeen: ReadonlyMap<string, number>;
  /** How long a node or service that never reported may take before its drift alerts (0 = none). */
  graceMs: number;
  /** When the executor and the planner last answered their health check; absent = never yet. A component that is not part of the stack is not in `watched`. */
  answered: { watched: ReadonlySet<"executor" | "planner">; lastOk: Partial<Record<"executor" | "planner", number>>; lastError: Partial<Record<"executor" | "planner", string>> };
}

export interface ActionInfo {
  id: string;
  node: string;
  service: string;
  kind: string;
  reason: string;
  diagnosis: string | null;
  expires_at: string;
  params: Record<string, unknown>;
}

/** What an alert says, the same for a finding of this evaluation and an alert already firing. */
export interface AlertContent {
  fingerprint: string;
  rule: string;
  severity: AlertSeverity;
  title: string;
  message: string;
  labels: Record<string, string>;
}

export interface Finding extends AlertContent {
  /** ms between re-notifications while it lasts; 0 = never; undefined = the global default. */
  renotifyMs: number | undefined;
  action?: ActionInfo;
}

export interface Evaluation {
  findings: Finding[];
  /** Rule ids whose inputs were readable this round: only their missing alerts may resolve. Unknown is not "clear". */
  judged: Set<string>;
}

/**
 * A drift about something that has not reported yet: a node never seen, or a declared service its node does not list.
 * A new node or service is like that for its first seconds; only if it stays so past the grace is it news.
 */
export const neverReported = (d: { kind: string; since: string | null }): boolean => d.since === null && (d.kind === "unknown" || d.kind === "missing");

const fmtAge = (ms: number): string => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)} min` : `${(ms / 3_600_000).toFixed(1)} h`);

function actionInfo(a: Action): ActionInfo {
  return { id: a.id, node: a.node, service: a.service, kind: a.kind, reason: a.reason, diagnosis: a.diagnosis, expires_at: a.expires_at, params: a.params ?? {} };
}

/** Pure: what should be firing now, given the inputs. Same inputs, same findings. */
export function evaluate(rules: readonly Rule[], inp: RuleInputs): Evaluation {
  const out = new Map<string, Finding>();
  const judged = new Set<string>();
  const add = (f: Finding) => {
    if (!out.has(f.fingerprint)) out.set(f.fingerprint, f);
  };
  for (const r of rules) {
    const id = ruleId(r);
    const renotifyMs = r.renotify_min === undefined ? undefined : r.renotify_min * 60_000;
    switch (r.rule) {
      case "new_drift": {
        if (!inp.drift.ok) break;
        judged.add(id);
        for (const d of inp.drift.value.drifts) {
          if (!r.severities.includes(d.severity)) continue;
          const fp = `drift:${d.key}`;
          const seen = inp.driftFirstSeen.get(d.key) ?? inp.now;
          // Still in its grace (and not already alerted, e.g. before this alerter restarted): not news yet.
          if (neverReported(d) && inp.now - seen < inp.graceMs && !inp.firstSeen.has(fp)) continue;
          add({ fingerprint: `drift:${d.key}`, rule: id, severity: r.severity, title: `Drift ${d.kind}: ${d.node}/${d.service}`, message: d.message, labels: { node: d.node, service: d.service, kind: d.kind, drift_key: d.key }, renotifyMs });
        }
        break;
      }
      case "drift_persists": {
        if (!inp.drift.ok) break;
        judged.add(id);
        for (const d of inp.drift.value.drifts) {
          if (d.severity === "report") continue;
          const since = d.since ? Date.parse(d.since) : inp.firstSeen.get(`drift:${d.key}`);
          if (since === undefined || Number.isNaN(since)) continue;
          const age = inp.now - since;
          if (age < r.after_min * 60_000) continue;
          add({ fingerprint: `drift_persists:${d.key}`, rule: id, severity: r.severity, title: `Drift persists ${fmtAge(age)}: ${d.kind} ${d.node}/${d.service}`, message: `${d.message} (for ${fmtAge(age)}, longer than ${r.after_min} min)`, labels: { node: d.node, service: d.service, kind: d.kind, drift_key: d.key }, renotifyMs });
        }
        break;
      }
      case "action_failed": {
        if (!inp.actions.ok) break;
        judged.add(id);
        for (const a of inp.actions.value.latestFinished) {
          if (a.state !== "failed" && a.state !== "failed_unknown") continue;
          if (inp.now - Date.parse(a.updated_at) > r.window_min * 60_000) continue;
          add({ fingerprint: `action_failed:${a.node}/${a.service}/${a.kind}`, rule: id, severity: r.severity, title: `Action ${a.state}: ${a.kind} ${a.node}/${a.service}`, message: a.result ?? a.state, labels: { node: a.node, service: a.service, kind: a.kind, action_id: a.id }, renotifyMs, action: actionInfo(a) });
        }
        break;
      }
      case "action_pending": {
        if (!inp.actions.ok) break;
        judged.add(id);
        for (const a of inp.actions.value.pending) {
          // A model's words are untrusted (it read logs anyone can write): the push says so next to them.
          const by = (f: "reason" | "diagnosis"): string => (a.model_written?.includes(f) ? " (written by a model, unverified)" : "");
          const reason = by("reason") ? `Reason${by("reason")}: ${a.reason}` : a.reason;
          const why = a.diagnosis ? `${reason}\nDiagnosis${by("diagnosis")}: ${a.diagnosis}` : reason;
          add({ fingerprint: `action_pending:${a.id}`, rule: id, severity: r.severity, title: `Approve ${a.kind} ${a.node}/${a.service}?`, message: why, labels: { node: a.node, service: a.service, kind: a.kind, action_id: a.id }, renotifyMs: r.renotify_min * 60_000, action: actionInfo(a) });
        }
        break;
      }
      case "node_stale": {
        if (!inp.snapshot.ok) break;
        judged.add(id);
        for (const n of Object.values(inp.snapshot.value.world.nodes)) {
          if (n.status !== "stale") continue;
          const last = n.last_heartbeat ? `last heartbeat ${n.last_heartbeat}` : "never sent a heartbeat";
          add({ fingerprint: `node_stale:${n.name}`, rule: id, severity: r.severity, title: `Node stale: ${n.name}`, message: `${n.name} stopped reporting (${last}); its services are unknown`, labels: { node: n.name }, renotifyMs });
        }
        break;
      }
      case "deadman": {
        if (r.component === "executor" || r.component === "planner") {
          if (!inp.answered.watched.has(r.component)) break;
          judged.add(id);
          const last = inp.answered.lastOk[r.component];
          const age = inp.now - (last ?? inp.startedAt);
          if (age <= r.after_s * 1000) break;
          const why = inp.answered.lastError[r.component];
          const since = last === undefined ? `since this alerter started ${fmtAge(age)} ago` : `for ${fmtAge(age)} (last at ${new Date(last).toISOString()})`;
          add({ fingerprint: `deadman:${r.component}`, rule: id, severity: r.severity, title: `Dead man: ${r.component} not answering`, message: `The ${r.component} has not answered its health check ${since}${why ? ` (${why})` : ""}; limit ${r.after_s} s.`, labels: { component: r.component }, renotifyMs });
          break;
        }
        judged.add(id);
        const last = r.component === "observer" ? inp.lastGoodSnapshotAt : inp.lastGoodDriftAt;
        const ref = last ?? inp.startedAt;
        const age = inp.now - ref;
        if (age <= r.after_s * 1000) break;
        const what = r.component === "observer" ? "wrote no snapshot" : "computed no drift report";
        const since = last === undefined ? `since this alerter started ${fmtAge(age)} ago` : `for ${fmtAge(age)} (last at ${new Date(last).toISOString()})`;
        add({ fingerprint: `deadman:${r.component}`, rule: id, severity: r.severity, title: `Dead man: ${r.component} made no progress`, message: `The ${r.component} ${what} ${since}; limit ${r.after_s} s.`, labels: { component: r.component }, renotifyMs });
        break;
      }
      case "drill_missed": {
        // Level-based: fires while a service's newest drill missed its objective; its next passing drill resolves it.
        if (!inp.actions.ok || !inp.actions.value.drills) break;
        judged.add(id);
        for (const d of inp.actions.value.drills) {
          if (d.verdict !== "missed" || inp.now - Date.parse(d.finished_at) > r.window_min * 60_000) continue;
          add({ fingerprint: `drill_missed:${d.node}/${d.service}`, rule: id, severity: r.severity, title: `Drill missed its objective: ${d.node}/${d.service}`, message: `Restart drill ${d.drill_id.slice(0, 8)}: ${d.reason}`, labels: { node: d.node, service: d.service, drill_id: d.drill_id }, renotifyMs });
        }
        break;
      }
      case "cost_cap": {
        if (!inp.cost.ok) break;
        judged.add(id);
        const c = inp.cost.value;
        const scopes: { scope: string; usd: number; cap: number }[] = [{ scope: "global", usd: c.today.global.usd, cap: c.caps.global_day_usd }];
        for (const [agent, s] of Object.entries(c.today.by_agent)) scopes.push({ scope: `agent:${agent}`, usd: s.usd, cap: c.caps.per_agent_day_usd });
        for (const s of scopes) {
          if (!(s.cap > 0)) continue;
          const ratio = s.usd / s.cap;
          // Only the highest threshold crossed: passing 100% replaces the 80% alert instead of adding to it.
          const crossed = r.thresholds.filter((t) => ratio >= t);
          for (const t of crossed.length > 0 ? [Math.max(...crossed)] : []) {
            const pct = Math.round(t * 100);
            add({ fingerprint: `cost_cap:${s.scope}:${pct}`, rule: id, severity: t >= 1 ? "critical" : "warning", title: `LLM spend at ${pct}% of the ${s.scope} daily cap`, message: `${s.scope}: $${s.usd.toFixed(2)} of $${s.cap.toFixed(2)} today (${Math.round(ratio * 100)}%)`, labels: { scope: s.scope, threshold: String(pct) }, renotifyMs });
          }
        }
        break;
      }
      case "incident_recurs": {
        // One alert per recurrence (the planner raises each once per window); it lasts until the window ends.
        if (!inp.recurrences?.ok) break;
        judged.add(id);
        for (const rec of inp.recurrences.value) {
          if (Date.parse(rec.window_until) <= inp.now) continue;
          const days = Math.round((Date.parse(rec.window_until) - Date.parse(rec.raised_at)) / 86_400_000);
          const ids = rec.incident_ids.map((i) => `#${i}`).join(", ");
          const last = rec.incident_ids.at(-1) ?? 0;
          add({
            fingerprint: `incident_recurs:${rec.id}`,
            rule: id,
            severity: r.severity,
            title: `This keeps happening: ${rec.service} on ${rec.node} (${rec.signature})`,
            message: `${rec.count} incidents of the same failure (${rec.signature}) within ${days} days: ${ids}. A restart will not end it; see steward incident show ${last} and its similar past incidents.`,
            labels: { node: rec.node, service: rec.service, signature: rec.signature, recurrence_id: String(rec.id), incident_id: String(last) },
            renotifyMs: r.renotify_min * 60_000,
          });
        }
        break;
      }
      default: {
        const never: never = r;
        throw new Error(`unknown rule ${String(never)}`);
      }
    }
  }
  return { findings: [...out.values()], judged };
}

export interface OpenAlert {
  id: number;
  fingerprint: string;
  rule: string;
  firstSeen: number;
  lastNotified: number | null;
}

export interface Plan {
  fire: Finding[];
  /** Still firing: refresh last_seen, title and message (repeats are the group's, see grouping.ts). */
  keep: { alert: OpenAlert; finding: Finding }[];
  resolve: OpenAlert[];
}

/** Pure: turn findings and the alerts already firing into what to insert, refresh and resolve. */
export function reconcile(open: readonly OpenAlert[], ev: Evaluation): Plan {
  const byFp = new Map(open.map((a) => [a.fingerprint, a]));
  const plan: Plan = { fire: [], keep: [], resolve: [] };
  const seen = new Set<string>();
  for (const f of ev.findings) {
    seen.add(f.fingerprint);
    const a = byFp.get(f.fingerprint);
    if (!a) {
      plan.fire.push(f);
      continue;
    }
    plan.keep.push({ alert: a, finding: f });
  }
  for (const a of open) {
    if (!seen.has(a.fingerprint) && ev.judged.has(a.rule)) plan.resolve.push(a);
  }
  return plan;
}
