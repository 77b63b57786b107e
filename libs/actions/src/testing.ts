import { randomUUID } from "node:crypto";
import type { Action, ActionKind, ActionState, AuditEntry } from "@steward/contracts/action";
import type { postgres, Sql } from "@steward/platform/db";
import { ACTIONS_CHANNEL, ACTION_COLUMNS, actionFromRow, auditFromRow, type ActionRow, type AuditRow } from "./rows.js";

/**
 * Test fixtures only: put an action into a given state directly, without the state machine and without audit rows,
 * the way a test sets up "an action that is already running" or "a deploy that failed an hour ago". Product code
 * never imports this module; it moves actions through the repository.
 */
export interface SeedAction {
  id?: string;
  node?: string;
  service?: string;
  kind?: ActionKind;
  state?: ActionState;
  reason?: string;
  driftKey?: string | null;
  proposedBy?: string;
  /** From now; negative is already expired. Default one hour. */
  expiresInMs?: number;
  /** An exact expiry instead of `expiresInMs`. */
  expiresAt?: Date;
  /** Announce it on the actions channel, as a proposal would. */
  notify?: boolean;
  createdAt?: Date;
  updatedAt?: Date;
  traceparent?: string | null;
  params?: Record<string, unknown>;
}

export async function seedAction(sql: Sql, a: SeedAction = {}): Promise<string> {
  const id = a.id ?? randomUUID();
  const expires = a.expiresAt ?? null;
  await sql`
    INSERT INTO actions (id, node, service, kind, state, reason, drift_key, proposed_by, expires_at, traceparent, params, created_at, updated_at)
    VALUES (${id}, ${a.node ?? "node-1"}, ${a.service ?? `svc-${id.slice(0, 8)}`}, ${a.kind ?? "restart"}, ${a.state ?? "pending"},
            ${a.reason ?? "service is down"}, ${a.driftKey ?? null}, ${a.proposedBy ?? "supervisor-test"},
            COALESCE(${expires}::timestamptz, now() + ${a.expiresInMs ?? 3_600_000} * interval '1 millisecond'), ${a.traceparent ?? null},
            ${sql.json((a.params ?? {}) as postgres.JSONValue)}, COALESCE(${a.createdAt ?? null}::timestamptz, now()), COALESCE(${a.updatedAt ?? null}::timestamptz, now()))`;
  if (a.notify) await sql`SELECT pg_notify(${ACTIONS_CHANNEL}, ${id})`;
  return id;
}

/** Overwrites columns of one action behind the state machine's back (tampering, a lapsed lease, a forced state). */
export async function overwriteAction(
  sql: Sql,
  id: string,
  set: { state?: ActionState; params?: Record<string, unknown>; diagnosis?: string | null; taskId?: string | null; leaseExpired?: boolean },
): Promise<void> {
  await sql.begin(async (tx) => {
    if (set.state !== undefined) await tx`UPDATE actions SET state = ${set.state} WHERE id = ${id}`;
    if (set.params !== undefined) await tx`UPDATE actions SET params = ${tx.json(set.params as postgres.JSONValue)} WHERE id = ${id}`;
    if (set.diagnosis !== undefined) await tx`UPDATE actions SET diagnosis = ${set.diagnosis} WHERE id = ${id}`;
    if (set.taskId !== undefined) await tx`UPDATE actions SET task_id = ${set.taskId} WHERE id = ${id}`;
    if (set.leaseExpired) await tx`UPDATE actions SET lease_until = now() - interval '1 second' WHERE id = ${id}`;
  });
}

/** Empties both tables between tests. */
export async function clearActions(sql: Sql): Promise<void> {
  await sql`TRUNCATE action_audit, actions CASCADE`;
}

/** The state of one action, or undefined when there is none. */
export async function stateOf(sql: Sql, id: string): Promise<ActionState | undefined> {
  const [r] = await sql<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${id}`;
  return r?.state;
}

/** Every action, oldest first, as the repository maps them (for assertions over the whole table); `where` keeps one kind and/or state. */
export async function actionsOf(sql: Sql, where: { kind?: ActionKind; state?: ActionState } = {}): Promise<Action[]> {
  const rows = await sql<ActionRow[]>`
    SELECT ${sql(ACTION_COLUMNS as unknown as string[])} FROM actions
    WHERE (${where.kind ?? null}::text IS NULL OR kind = ${where.kind ?? null}) AND (${where.state ?? null}::text IS NULL OR state = ${where.state ?? null})
    ORDER BY created_at, id`;
  return rows.map(actionFromRow);
}

/** The audit log of one action, or of every action when no id is given, in the order it was written. */
export async function auditOf(sql: Sql, actionId?: string): Promise<AuditEntry[]> {
  const rows = actionId
    ? await sql<AuditRow[]>`SELECT id, action_id, at, from_state, to_state, actor, channel, detail FROM action_audit WHERE action_id = ${actionId} ORDER BY id`
    : await sql<AuditRow[]>`SELECT id, action_id, at, from_state, to_state, actor, channel, detail FROM action_audit ORDER BY id`;
  return rows.map(auditFromRow);
}

/** The given fields of each row, for exact assertions on a few columns. */
export function only<T, K extends keyof T>(rows: readonly T[], ...keys: K[]): Pick<T, K>[] {
  return rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k]])) as Pick<T, K>);
}

/** Every column of every row of both tables as JSON text, for checks that something (a secret) was stored nowhere. */
export async function actionTablesAsText(sql: Sql): Promise<string> {
  const rows = await sql<{ t: string }[]>`SELECT row_to_json(a)::text AS t FROM actions a UNION ALL SELECT row_to_json(x)::text FROM action_audit x`;
  return rows.map((r) => r.t).join("\n");
}
