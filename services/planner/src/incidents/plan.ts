import { describeSignature, failureSignature, startOf, targetOfTask } from "./signature.js";

/**
 * Pure decisions of incident memory: which incident a new escalation joins or opens, when an open incident has ended,
 * and when a failure class recurs often enough to be raised. The store writes what these decide.
 */

export interface UnlinkedTask {
  id: string;
  created_at: Date;
  conversation_id: string;
  evidence: Record<string, unknown> | null;
}

export interface OpenIncidentRef {
  id: number;
  node: string;
  service: string;
  started_at: Date;
}

export interface NewIncident {
  node: string;
  service: string;
  signature: string;
  title: string;
  started_at: Date;
  opened_at: Date;
  task_ids: string[];
}

export interface AssignmentPlan {
  /** Tasks that join an incident already open. */
  join: { task_id: string; incident_id: number }[];
  /** Incidents to open, each with its tasks. */
  open: NewIncident[];
}

/** Don't let a drift `since` from long ago (a service down for weeks, then escalated) stretch the incident without bound. */
const MAX_LEAD_MS = 24 * 3600_000;

/** A new escalation joins its service's open incident; otherwise it opens one (tasks oldest first, so the first one names it). */
export function planAssignments(tasks: readonly UnlinkedTask[], open: readonly OpenIncidentRef[]): AssignmentPlan {
  const plan: AssignmentPlan = { join: [], open: [] };
  const openByService = new Map(open.map((i) => [`${i.node}/${i.service}`, i.id]));
  const opening = new Map<string, NewIncident>();
  for (const t of [...tasks].sort((a, b) => a.created_at.getTime() - b.created_at.getTime())) {
    const target = targetOfTask(t.conversation_id, t.evidence);
    if (!target) continue;
    const key = `${target.node}/${target.service}`;
    const existing = openByService.get(key);
    if (existing !== undefined) {
      plan.join.push({ task_id: t.id, incident_id: existing });
      continue;
    }
    const pending = opening.get(key);
    if (pending) {
      pending.task_ids.push(t.id);
      continue;
    }
    const signature = failureSignature(t.evidence);
    const began = startOf(t.evidence);
    const started = began && began <= t.created_at && t.created_at.getTime() - began.getTime() <= MAX_LEAD_MS ? began : t.created_at;
    const inc: NewIncident = { ...target, signature, title: `${target.service} on ${target.node}: ${describeSignature(signature)}`, started_at: started, opened_at: t.created_at, task_ids: [t.id] };
    opening.set(key, inc);
    plan.open.push(inc);
  }
  return plan;
}

/** What the world and the records say about an open incident's service now. */
export interface OpenIncidentState {
  /** The service in the world; undefined when its node or the service is not there, or the node is stale (unknown). */
  service: { state: string; health: string; since: string } | undefined;
  openActions: number;
  openTasks: number;
  /** The newest action on it that succeeded, if any. */
  lastSucceeded: { id: string; kind: string; updated_at: string } | undefined;
  /** When the planner first saw it recovered (kept with the incident), if it has. */
  recoveringSince: Date | undefined;
}

export type ResolutionVerdict =
  /** Unknown (a stale node, the service not in the world): change nothing. */
  | { kind: "unknown" }
  /** Still failing, or something about it is still open: forget any recovery seen. */
  | { kind: "failing" }
  /** Recovered, not yet for the quiet period: remember since when. */
  | { kind: "recovering"; since: Date }
  | { kind: "resolve"; resolved_at: Date; outcome: string };

/**
 * An open incident ends when its service has been running (and healthy, or without checks) for `quietMs`, with no
 * action or task about it still open. A service whose run state changed after the incident opened recovered when
 * it started running (its `since`); one that only turned healthy again, when the planner first saw it so (the world
 * keeps no time of a health flip). Unknown never ends an incident.
 */
export function judgeResolution(opened: Date, s: OpenIncidentState, now: Date, quietMs: number): ResolutionVerdict {
  const svc = s.service;
  if (!svc) return { kind: "unknown" };
  if (svc.state !== "running" || (svc.health !== "healthy" && svc.health !== "none") || s.openActions > 0 || s.openTasks > 0) return { kind: "failing" };
  const started = Date.parse(svc.since);
  const since = !Number.isNaN(started) && started > opened.getTime() ? new Date(started) : (s.recoveringSince ?? now);
  if (now.getTime() - since.getTime() < quietMs) return { kind: "recovering", since };
  const state = svc.health === "healthy" ? "running and healthy" : "running";
  const fix = s.lastSucceeded && Date.parse(s.lastSucceeded.updated_at) <= since.getTime() + 5000 ? ` after ${s.lastSucceeded.kind} ${s.lastSucceeded.id.slice(0, 8)} succeeded` : " without a Steward action";
  return { kind: "resolve", resolved_at: since, outcome: `${state} again${fix}` };
}

export interface RecurrenceSettings {
  /** How many incidents of one signature on one service make a recurrence (3). */
  count: number;
  /** Within how long (30 days). */
  windowMs: number;
}

/**
 * Raised once per window: when `count` incidents of the same signature on the same service opened within the window
 * and no recurrence of it is in force; the new one lasts one window from now.
 */
export function planRecurrence(incidents: readonly { id: number; opened_at: Date }[], activeUntil: Date | undefined, now: Date, s: RecurrenceSettings): { incident_ids: number[]; window_until: Date } | undefined {
  if (activeUntil && activeUntil > now) return undefined;
  const recent = incidents.filter((i) => now.getTime() - i.opened_at.getTime() <= s.windowMs).sort((a, b) => a.id - b.id);
  if (recent.length < s.count) return undefined;
  return { incident_ids: recent.map((i) => i.id), window_until: new Date(now.getTime() + s.windowMs) };
}
