import type { postgres } from "@steward/platform/db";
import { ACTIONS_CHANNEL, actionFromRow, type ActionRow as SharedActionRow } from "@steward/actions/action-row";
import { transition, type Action, type ActionState, type AuditEntry, type Channel, type TransitionEvent } from "@steward/contracts/action";
import type { Sql } from "@steward/platform/db";

export { ACTIONS_CHANNEL };

export const LOST_EXECUTOR_DETAIL = "executor lost mid-run; not re-run, check the service";

export type StoreResult = { ok: true; action: Action } | { ok: false; code: "not_found" } | { ok: false; code: "invalid_transition"; state: ActionState };

export type RunOutcome = "succeeded" | "failed";

export interface ListFilter {
  state?: ActionState | undefined;
  limit?: number | undefined;
}

export interface SweepResult {
  id: string;
  from: ActionState;
  to: ActionState;
}

/** The executor also reads who holds a running action, and until when. */
interface ActionRow extends SharedActionRow {
  executor_id: string | null;
  lease_until: Date | null;
}

interface AuditRow {
  id: string | number;
  action_id: string;
  at: Date;
  from_state: ActionState | null;
  to_state: ActionState;
  actor: string;
  channel: Channel;
  detail: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Postgres throws on a malformed uuid; to a caller that is simply an action that does not exist. */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

const iso = (d: Date): string => d.toISOString();

export const toAction = (r: ActionRow): Action => actionFromRow(r);

function toAudit(r: AuditRow): AuditEntry {
  return {
    id: Number(r.id),
    action_id: r.action_id,
    at: iso(r.at),
    from_state: r.from_state,
    to_state: r.to_state,
    actor: r.actor,
    channel: r.channel,
    detail: r.detail,
  };
}

interface Audit {
  actor: string;
  channel: Channel;
  detail?: string | null | undefined;
}

interface MoveOptions {
  /** Written to `actions.result` when given. */
  result?: string | undefined;
  /** Only this executor may finish or renew what it claimed. */
  executorId?: string | undefined;
}

type Tx = postgres.TransactionSql;

export type ActionStore = ReturnType<typeof createActionStore>;

/**
 * The action state machine over Postgres. Every move asks the pure `transition()` for the target and then
 * updates conditionally on the state it read, with its audit row in the same transaction: a lost race is a
 * typed failure, never a second run.
 */
export function createActionStore(sql: Sql) {
  async function move(tx: Tx, id: string, event: TransitionEvent, audit: Audit, opts: MoveOptions = {}): Promise<StoreResult> {
    const [cur] = await tx<{ state: ActionState; executor_id: string | null }[]>`SELECT state, executor_id FROM actions WHERE id = ${id} FOR UPDATE`;
    if (!cur) return { ok: false, code: "not_found" };
    const t = transition(cur.state, event);
    if (!t.ok) return { ok: false, code: "invalid_transition", state: cur.state };
    if (opts.executorId !== undefined && cur.executor_id !== opts.executorId) return { ok: false, code: "invalid_transition", state: cur.state };
    const result = opts.result ?? null;
    const rows = await tx<ActionRow[]>`
      UPDATE actions SET state = ${t.to}, updated_at = now(), result = COALESCE(${result}::text, result)
      WHERE id = ${id} AND state = ${cur.state}
      RETURNING *`;
    const row = rows[0];
    if (!row) return { ok: false, code: "invalid_transition", state: cur.state };
    await recordAudit(tx, id, cur.state, t.to, audit);
    return { ok: true, action: toAction(row) };
  }

  async function recordAudit(tx: Tx, id: string, from: ActionState | null, to: ActionState, audit: Audit): Promise<void> {
    await tx`INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
             VALUES (${id}, ${from}, ${to}, ${audit.actor}, ${audit.channel}, ${audit.detail ?? null})`;
    // Delivered only when the transaction commits, so listeners never see a transition that rolled back.
    await tx`SELECT pg_notify(${ACTIONS_CHANNEL}, ${id})`;
  }

  async function inTx(id: string, fn: (tx: Tx) => Promise<StoreResult>): Promise<StoreResult> {
    if (!isUuid(id)) return { ok: false, code: "not_found" };
    return (await sql.begin((tx) => fn(tx))) as StoreResult;
  }

  /** An operator's decision on a pending action. A pending action already past its expiry is expired instead. */
  async function decide(id: string, event: { type: "approve" } | { type: "reject" }, audit: Audit): Promise<StoreResult> {
    return inTx(id, async (tx) => {
      const [due] = await tx<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${id} AND state = 'pending' AND expires_at <= now() FOR UPDATE`;
      if (due) {
        const expired = await move(tx, id, { type: "expire" }, { actor: "system", channel: "system", detail: `expired before it was decided (${event.type} by ${audit.actor})` });
        return expired.ok ? { ok: false, code: "invalid_transition", state: expired.action.state } : expired;
      }
      return move(tx, id, event, audit);
    });
  }

  return {
    async list(filter: ListFilter = {}): Promise<Action[]> {
      const limit = filter.limit ?? 50;
      const rows = filter.state
        ? await sql<ActionRow[]>`SELECT * FROM actions WHERE state = ${filter.state} ORDER BY created_at DESC, id LIMIT ${limit}`
        : await sql<ActionRow[]>`SELECT * FROM actions ORDER BY created_at DESC, id LIMIT ${limit}`;
      return rows.map(toAction);
    },

    async get(id: string): Promise<{ action: Action; audit: AuditEntry[] } | undefined> {
      if (!isUuid(id)) return undefined;
      const [row] = await sql<ActionRow[]>`SELECT * FROM actions WHERE id = ${id}`;
      if (!row) return undefined;
      const audit = await sql<AuditRow[]>`SELECT * FROM action_audit WHERE action_id = ${id} ORDER BY id`;
      return { action: toAction(row), audit: audit.map(toAudit) };
    },

    approve(id: string, actor: string, channel: Channel): Promise<StoreResult> {
      return decide(id, { type: "approve" }, { actor, channel });
    },

    reject(id: string, actor: string, channel: Channel, reason: string): Promise<StoreResult> {
      if (reason.trim() === "") throw new TypeError("a rejection needs a reason");
      return decide(id, { type: "reject" }, { actor, channel, detail: reason.trim() });
    },

    /** Takes the oldest approved, unexpired action for this executor. Two executors never get the same one. */
    async claimNext(executorId: string, leaseMs: number): Promise<Action | undefined> {
      const from: ActionState = "approved";
      const t = transition(from, { type: "start_run" });
      if (!t.ok) throw new Error("state machine does not allow approved → running");
      return sql.begin(async (tx) => {
        const [cand] = await tx<{ id: string }[]>`
          SELECT id FROM actions WHERE state = ${from} AND expires_at > now()
          ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`;
        if (!cand) return undefined;
        const [row] = await tx<ActionRow[]>`
          UPDATE actions SET state = ${t.to}, updated_at = now(), executor_id = ${executorId},
                 lease_until = now() + ${leaseMs} * interval '1 millisecond'
          WHERE id = ${cand.id} AND state = ${from}
          RETURNING *`;
        if (!row) return undefined;
        await recordAudit(tx, row.id, from, t.to, { actor: executorId, channel: "executor", detail: `claimed by ${executorId}` });
        return toAction(row);
      });
    },

    /** Extends the lease; false when the action is no longer this executor's running action (e.g. it was reaped). */
    async renewLease(id: string, executorId: string, leaseMs: number): Promise<boolean> {
      if (!isUuid(id)) return false;
      const rows = await sql`
        UPDATE actions SET lease_until = now() + ${leaseMs} * interval '1 millisecond'
        WHERE id = ${id} AND state = 'running' AND executor_id = ${executorId}
        RETURNING id`;
      return rows.length === 1;
    },

    finish(id: string, outcome: RunOutcome, result: string, opts: { executorId?: string } = {}): Promise<StoreResult> {
      const actor = opts.executorId ?? "executor";
      return inTx(id, (tx) =>
        move(tx, id, { type: outcome === "succeeded" ? "succeed" : "fail" }, { actor, channel: "executor", detail: result }, { result, executorId: opts.executorId }),
      );
    },

    /** This executor stops mid-run (shutdown): the outcome is unknown, so failed_unknown, and never re-run. */
    abandon(id: string, executorId: string, detail: string): Promise<StoreResult> {
      return inTx(id, (tx) => move(tx, id, { type: "lose_executor" }, { actor: executorId, channel: "executor", detail }, { result: detail, executorId }));
    },

    /**
     * A step inside a running action (one node of a rollout): an audit row running → running that tells the story
     * without moving the state. False when the action is no longer running.
     */
    async note(id: string, actor: string, detail: string): Promise<boolean> {
      if (!isUuid(id)) return false;
      const rows = await sql`
        INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
        SELECT id, 'running', 'running', ${actor}, 'executor', ${detail} FROM actions WHERE id = ${id} AND state = 'running'
        RETURNING id`;
      return rows.length === 1;
    },

    /** pending/approved actions past `expires_at` → expired. */
    async expireDue(): Promise<SweepResult[]> {
      const due = await sql<{ id: string }[]>`
        SELECT id FROM actions WHERE state IN ('pending', 'approved') AND expires_at <= now() ORDER BY expires_at LIMIT 200`;
      const out: SweepResult[] = [];
      for (const { id } of due) {
        const r = await sql.begin(async (tx) => {
          const [cur] = await tx<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${id} AND expires_at <= now() FOR UPDATE SKIP LOCKED`;
          if (!cur) return undefined;
          const moved = await move(tx, id, { type: "expire" }, { actor: "system", channel: "system", detail: "expired before it was run" });
          return moved.ok ? { id, from: cur.state, to: moved.action.state } : undefined;
        });
        if (r) out.push(r);
      }
      return out;
    },

    /** running actions whose lease lapsed lost their executor: failed_unknown, and never run again. */
    async reapLost(): Promise<SweepResult[]> {
      const lost = await sql<{ id: string }[]>`
        SELECT id FROM actions WHERE state = 'running' AND lease_until < now() ORDER BY lease_until LIMIT 200`;
      const out: SweepResult[] = [];
      for (const { id } of lost) {
        const r = await sql.begin(async (tx) => {
          const [cur] = await tx<{ executor_id: string | null }[]>`
            SELECT executor_id FROM actions WHERE id = ${id} AND state = 'running' AND lease_until < now() FOR UPDATE SKIP LOCKED`;
          if (!cur) return undefined;
          const moved = await move(tx, id, { type: "lose_executor" }, { actor: "system", channel: "system", detail: LOST_EXECUTOR_DETAIL }, { result: LOST_EXECUTOR_DETAIL });
          return moved.ok ? { id, from: "running" as const, to: moved.action.state } : undefined;
        });
        if (r) out.push(r);
      }
      return out;
    },

    async countByState(): Promise<Record<string, number>> {
      const rows = await sql<{ state: string; n: string }[]>`SELECT state, count(*)::text AS n FROM actions GROUP BY state`;
      return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
    },
  };
}
