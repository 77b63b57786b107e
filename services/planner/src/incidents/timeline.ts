import type { Action, AuditEntry } from "@steward/contracts/action";
import type { NodeEvent } from "@steward/contracts/events";
import type { Incident, TimelineEntry } from "@steward/contracts/incident";
import type { LinkedTask, TaskStepRow } from "./incident-store.js";

/** The trace id of a W3C traceparent (`00-<trace>-<span>-<flags>`), or null. */
export function traceIdOf(traceparent: string | null | undefined): string | null {
  const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent ?? "");
  return m?.[1] && !/^0+$/.test(m[1]) ? m[1] : null;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined);
const oneLine = (s: string, max = 300): string => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/** Task steps worth a line in an incident's timeline (triage and progress notes are the task's own detail). */
const STEP_KINDS = new Set(["diagnosis", "proposal", "error"]);

/** Most events of the service in one timeline: only changes are kept, newest first dropped past this. */
export const MAX_TIMELINE_EVENTS = 60;

export interface TimelineInput {
  incident: Pick<Incident, "id" | "node" | "service" | "opened_at" | "resolved_at" | "outcome" | "title">;
  tasks: readonly LinkedTask[];
  steps: readonly TaskStepRow[];
  actions: readonly { action: Action; audit: AuditEntry[] }[];
  /** The node's events in the incident's window (any order); only the service's are used. */
  events: readonly NodeEvent[];
}

/**
 * Pure: one incident's timeline, oldest first: the drift that started it, each escalation and what its task found and
 * proposed, every audited transition of its actions (who, through which channel), the service's state changes and
 * health-check flips from the node's events, and how it ended. Each entry names its record and, when known, its trace.
 */
export function buildTimeline(inp: TimelineInput): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const { incident: inc } = inp;
  const drifts = new Set<string>();
  for (const t of inp.tasks) {
    const d = obj(t.evidence?.["drift"]);
    const since = typeof d?.["since"] === "string" ? d["since"] : undefined;
    const key = `${String(d?.["key"])}@${since}`;
    if (d && since && !drifts.has(key)) {
      drifts.add(key);
      out.push({ at: since, source: "drift", what: `drift ${String(d["kind"] ?? "?")}: ${oneLine(String(d["message"] ?? ""))}`, ref: typeof d["key"] === "string" ? d["key"] : null, trace_id: traceIdOf(typeof d["traceparent"] === "string" ? d["traceparent"] : null) });
    }
  }
  out.push({ at: inc.opened_at, source: "incident", what: `incident #${inc.id} opened: ${inc.title}`, ref: null, trace_id: traceIdOf(inp.tasks[0]?.traceparent) });
  const taskTrace = new Map(inp.tasks.map((t) => [t.id, traceIdOf(t.traceparent)]));
  for (const t of inp.tasks) {
    const signal = typeof t.evidence?.["signal"] === "string" ? ` (${t.evidence["signal"]})` : "";
    out.push({ at: t.created_at.toISOString(), source: "task", what: `escalated to the planner${signal}: ${oneLine(t.content)}`, ref: t.id, trace_id: taskTrace.get(t.id) ?? null });
  }
  for (const s of inp.steps) {
    if (!STEP_KINDS.has(s.kind)) continue;
    out.push({ at: s.at.toISOString(), source: "task", what: `task ${s.task_id.slice(0, 12)} ${s.kind}: ${oneLine(s.message)}`, ref: s.task_id, trace_id: taskTrace.get(s.task_id) ?? null });
  }
  for (const { action: a, audit } of inp.actions) {
    for (const e of audit) {
      const move = e.from_state ? `${e.from_state} → ${e.to_state}` : `proposed (${e.to_state})`;
      const detail = e.detail ? `: ${oneLine(e.detail, 200)}` : "";
      out.push({ at: e.at, source: "action", what: `${a.kind} ${a.node}/${a.service} ${a.id.slice(0, 8)} ${move} by ${e.actor} via ${e.channel}${detail}`, ref: a.id, trace_id: traceIdOf(a.traceparent) });
    }
  }
  out.push(...eventEntries(inp.events, inc.service));
  if (inc.resolved_at) out.push({ at: inc.resolved_at, source: "incident", what: `resolved: ${inc.outcome ?? "the service recovered"}`, ref: null, trace_id: null });
  return out.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

/** The service's state changes and check flips (not every repeat of the same observation). */
function eventEntries(events: readonly NodeEvent[], service: string): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  let last = "";
  const checks = new Map<string, boolean>();
  for (const e of [...events].sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts))) {
    if (e.type === "service" && e.service === service) {
      const now = `${e.state}/${e.health}/${e.exit_code ?? ""}`;
      if (now === last) continue;
      last = now;
      const exit = e.exit_code !== undefined && e.exit_code !== null ? `, exit ${e.exit_code}` : "";
      out.push({ at: e.ts, source: "event", what: `${service} ${e.state} (health ${e.health}${exit})${e.detail ? `: ${oneLine(e.detail, 200)}` : ""}`, ref: e.id, trace_id: null });
    } else if (e.type === "health_check" && e.service === service) {
      if (checks.get(e.check) === e.ok) continue;
      checks.set(e.check, e.ok);
      out.push({ at: e.ts, source: "event", what: `check ${e.check} ${e.ok ? "passes" : `fails (${e.consecutive_failures} in a row)`}${e.detail && !e.ok ? `: ${oneLine(e.detail, 200)}` : ""}`, ref: e.id, trace_id: null });
    }
  }
  return out.slice(-MAX_TIMELINE_EVENTS);
}
