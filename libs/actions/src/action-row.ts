import type { Action } from "@steward/contracts/action";

/** Postgres NOTIFY channel on which every new or changed action id is announced (executor, alerter and console listen). */
export const ACTIONS_CHANNEL = "steward_actions";

/** An `actions` row as postgres.js returns it (timestamps as Date). The table is in ../migrations. */
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
}

/** The columns an `Action` is read from. */
export const ACTION_COLUMNS = ["id", "node", "service", "kind", "state", "reason", "drift_key", "proposed_by", "diagnosis", "created_at", "updated_at", "expires_at", "result", "traceparent", "params", "task_id"] as const;

/** Every service that reads actions maps rows the same way. */
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
  };
}
