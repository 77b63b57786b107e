import type { Action, ActionState, AuditEntry, Channel, ModelWrittenField } from "@steward/contracts/action";
import type { Hold } from "@steward/contracts/drift";

/** Postgres NOTIFY channel on which every new or changed action id is announced (executor, alerter and console listen). */
export const ACTIONS_CHANNEL = "steward_actions";

/** An `actions` row as postgres.js returns it (timestamps as Date). The table is in libs/platform/migrations. */
export interface ActionRow {
  id: string;
  node: string;
  service: string;
  kind: Action["kind"];
  state: Action["state"];
  reason: string;
  drift_key: string | null;
  proposed_by: string;
  diagnosis: string | null;
  created_at: Date;
  updated_at: Date;
  expires_at: Date;
  result: string | null;
  traceparent: string | null;
  params: Record<string, unknown> | null;
  task_id: string | null;
  model_written?: string[] | null;
}

/** The columns an `Action` is read from. */
export const ACTION_COLUMNS = ["id", "node", "service", "kind", "state", "reason", "drift_key", "proposed_by", "diagnosis", "created_at", "updated_at", "expires_at", "result", "traceparent", "params", "task_id", "model_written"] as const;

/** Rows become contract `Action`s in one place. */
export function actionFromRow(r: ActionRow): Action {
  return {
    id: r.id,
    node: r.node,
    service: r.service,
    kind: r.kind,
    state: r.state,
    reason: r.reason,
    drift_key: r.drift_key,
    proposed_by: r.proposed_by,
    diagnosis: r.diagnosis,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    expires_at: r.expires_at.toISOString(),
    result: r.result,
    traceparent: r.traceparent,
    params: r.params ?? {},
    task_id: r.task_id ?? null,
    // Only when a model wrote something, so every other action reads exactly as before.
    ...(r.model_written && r.model_written.length > 0 ? { model_written: r.model_written.filter((f): f is ModelWrittenField => f === "reason" || f === "diagnosis") } : {}),
  };
}

/** An `action_audit` row as postgres.js returns it (bigserial ids may come back as strings). */
export interface AuditRow {
  id: string | number;
  action_id: string;
  at: Date;
  from_state: ActionState | null;
  to_state: ActionState;
  actor: string;
  channel: Channel;
  detail: string | null;
}

export function auditFromRow(r: AuditRow): AuditEntry {
  return {
    id: Number(r.id),
    action_id: r.action_id,
    at: r.at.toISOString(),
    from_state: r.from_state,
    to_state: r.to_state,
    actor: r.actor,
    channel: r.channel,
    detail: r.detail,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Postgres throws on a malformed uuid; to a caller that is simply an action that does not exist. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/** A `drift_holds` row (table in libs/platform/migrations/005_drift_holds.sql). */
export interface HoldRow {
  action_id: string;
  node: string;
  service: string;
  kind: Hold["kind"];
  nodes: unknown;
  cause: Hold["cause"];
  target: string | null;
  held_by: string;
  channel: Channel;
  reason: string;
  created_at: Date;
  until: Date | null;
  ended_at: Date | null;
  end_reason: string | null;
}

export const HOLD_COLUMNS = ["action_id", "node", "service", "kind", "nodes", "cause", "target", "held_by", "channel", "reason", "created_at", "until", "ended_at", "end_reason"] as const;

export function holdFromRow(r: HoldRow): Hold {
  return {
    action_id: r.action_id,
    node: r.node,
    service: r.service,
    kind: r.kind,
    nodes: Array.isArray(r.nodes) ? r.nodes.map(String) : [r.node],
    cause: r.cause,
    target: r.target,
    held_by: r.held_by,
    channel: r.channel,
    reason: r.reason,
    created_at: r.created_at.toISOString(),
    until: r.until?.toISOString() ?? null,
    ended_at: r.ended_at?.toISOString() ?? null,
    end_reason: r.end_reason,
  };
}
