import { randomUUID } from "node:crypto";
import {
  OPEN_ACTION_STATES,
  UNSTARTED_ACTION_STATES,
  transition,
  type Action,
  type ActionKind,
  type ActionState,
  type Channel,
  type ModelWrittenField,
  type TransitionEvent,
} from "@steward/contracts/action";
import type { postgres, Sql } from "@steward/platform/db";
import { recordAudit, type Audit, type Tx } from "./audit.js";
import { createHoldsStore, insertHold, type HoldsStore } from "./holds.js";
import { createActionQueries, type ActionQueries } from "./queries.js";
import { ACTION_COLUMNS, actionFromRow, isUuid, type ActionRow } from "./rows.js";

export { isUuid };
export type { Audit } from "./audit.js";
export type { EndHoldResult, HoldsStore } from "./holds.js";
export type { ActionQueries, Decision, ListFilter } from "./queries.js";

export const LOST_EXECUTOR_DETAIL = "executor lost mid-run; not re-run, check the service";

export type MoveResult = { ok: true; action: Action } | { ok: false; code: "not_found" } | { ok: false; code: "invalid_transition"; state: ActionState };

export type RunOutcome = "succeeded" | "failed";

/** A new pending action. The open-action unique index (one per node, service, kind) decides whether it is new. */
export interface NewAction {
  node: string;
  service: string;
  kind: ActionKind;
  reason: string;
  driftKey: string | null;
  proposedBy: string;
  /** The audit row's channel and detail for the proposal. */
  channel: Channel;
  auditDetail: string;
  now: Date;
  ttlMs: number;
  traceparent: string | null;
  params?: Record<string, unknown> | undefined;
  diagnosis?: string | null | undefined;
  taskId?: string | null | undefined;
  /** Which of its texts a model wrote (untrusted words approval screens label as such). */
  modelWritten?: readonly ModelWrittenField[] | undefined;
}

/**
 * `proposed`: a new pending action. Otherwise the same (node, service, kind) is already open (`open`, or null when
 * it closed between the insert and the read) and nothing of it changed: a proposer's words (a model's diagnosis
 * above all) never attach themselves to an action someone else proposed.
 */
export type ProposeResult = { proposed: true; action: Action } | { proposed: false; open: { id: string; state: ActionState } | null };

/** What a policy approval is bound to: one target and kind, created in [createdFrom, createdUntil]. */
export interface ActionMatch {
  node: string;
  service: string;
  kind: ActionKind;
  createdFrom: Date;
  createdUntil: Date;
}

const matches = (a: { node: string; service: string; kind: ActionKind; created_at: Date }, m: ActionMatch): boolean =>
  a.node === m.node && a.service === m.service && a.kind === m.kind && a.created_at.getTime() >= m.createdFrom.getTime() && a.created_at.getTime() <= m.createdUntil.getTime();

export interface SweepResult {
  id: string;
  from: ActionState;
  to: ActionState;
}

/** What a rejected action's result says: who rejected it, where, and why. */
const rejectionResult = (actor: string, channel: Channel, reason: string): string => `rejected by ${actor} (${channel}): ${reason.trim()}`;

/** How a rejection holds its drift. */
export interface RejectOptions {
  /** The hold also ends after this long (`reject --for 2h`); without it, only when the drift changes or clears. */
  holdForMs?: number | undefined;
}

/** Reads (`ActionQueries`) and holds (`HoldsStore`) are part of it: a rejection writes its hold in the same transaction. */
export interface ActionsRepository extends ActionQueries, HoldsStore {
  /** Inserts a pending action unless the same (node, service, kind) is open; idempotent across cycles and processes. */
  propose(p: NewAction): Promise<ProposeResult>;
  /** Adds nodes (and params) to a rollout still pending; false when it was decided meanwhile. */
  extendRollout(id: string, change: { nodes: readonly string[]; params?: Record<string, unknown>; now: Date }, audit: Audit): Promise<boolean>;
  /** pending (or approved, when `from` allows it) → expired, conditional on the state read. */
  expire(id: string, audit: Audit, opts?: { from?: readonly ActionState[]; now?: Date; result?: string }): Promise<MoveResult>;
  /**
   * An operator's decision on a pending action. A pending action already past its expiry is expired instead.
   * `detail` goes to the audit row (e.g. the Telegram user a bot relays the decision for).
   */
  approve(id: string, actor: string, channel: Channel, detail?: string): Promise<MoveResult>;
  /**
   * A policy's approval, bound to what it may approve: only a pending action of exactly `match`'s node, service and
   * kind, created inside its window, checked under the row lock in the approving transaction (anything else reads
   * as not found and nothing changes). A drill approves the restart it caused through this and nothing else.
   */
  approveMatching(id: string, match: ActionMatch, audit: Audit): Promise<MoveResult>;
  /**
   * Rejecting also holds the drift the action was proposed for (see `Hold`): the supervisor proposes nothing for it
   * until it changes or clears, `holdForMs` passes, or an operator ends the hold. An action not proposed for a
   * drift is held only when `holdForMs` is given.
   */
  reject(id: string, actor: string, channel: Channel, reason: string, opts?: RejectOptions): Promise<MoveResult>;
  /** A refused attempt on an existing action, written to the audit log with the state unchanged; false when no such action. */
  recordRefusal(id: string, audit: Audit): Promise<boolean>;
  /** Takes the oldest approved, unexpired action for this executor. Two executors never get the same one. */
  claimNext(executorId: string, leaseMs: number): Promise<Action | undefined>;
  /** Extends the lease; false when the action is no longer this executor's running action (e.g. it was reaped). */
  renewLease(id: string, executorId: string, leaseMs: number): Promise<boolean>;
  finish(id: string, outcome: RunOutcome, result: string, opts?: { executorId?: string }): Promise<MoveResult>;
  /** This executor stops mid-run (shutdown): the outcome is unknown, so failed_unknown, and never re-run. */
  abandon(id: string, executorId: string, detail: string): Promise<MoveResult>;
  /** A step inside a running action (one node of a rollout): an audit row running → running. False when no longer running. */
  note(id: string, actor: string, detail: string): Promise<boolean>;
  /** pending/approved actions past `expires_at` → expired. */
  expireDue(): Promise<SweepResult[]>;
  /** running actions whose lease lapsed lost their executor: failed_unknown, and never run again. */
  reapLost(): Promise<SweepResult[]>;
}

/** Quoted constants (never input): the partial unique index is only inferred from a literal predicate, not parameters. */
const OPEN_PREDICATE = `state IN (${OPEN_ACTION_STATES.map((s) => `'${s}'`).join(", ")})`;

/**
 * The actions repository: the only code that reads or writes `actions` and `action_audit`. Every state change
 * asks the pure `transition()` for the target, then updates conditionally on the state it read, with its audit row
 * and a NOTIFY in the same transaction: a lost race is a typed failure, never a second run.
 */
export function createActionsRepository(sql: Sql): ActionsRepository {
  const cols = sql(ACTION_COLUMNS as unknown as string[]);

  interface MoveOptions {
    /** Written to `actions.result` when given. */
    result?: string | undefined;
    /** Only this executor may finish or renew what it claimed. */
    executorId?: string | undefined;
    /** Only from one of these states (a supervisor expires pending actions, never approved ones). */
    from?: readonly ActionState[] | undefined;
    /** The mover's clock for `updated_at`; the database's when absent. */
    now?: Date | undefined;
    /** Only an action of exactly this target, created in this window (checked under the row lock). */
    match?: ActionMatch | undefined;
  }

  async function move(tx: Tx, id: string, event: TransitionEvent, audit: Audit, opts: MoveOptions = {}): Promise<MoveResult> {
    const [cur] = await tx<{ state: ActionState; executor_id: string | null; node: string; service: string; kind: ActionKind; created_at: Date }[]>`
      SELECT state, executor_id, node, service, kind, created_at FROM actions WHERE id = ${id} FOR UPDATE`;
    if (!cur) return { ok: false, code: "not_found" };
    if (opts.match && !matches(cur, opts.match)) return { ok: false, code: "not_found" };
    const t = transition(cur.state, event);
    if (!t.ok) return { ok: false, code: "invalid_transition", state: cur.state };
    if (opts.from && !opts.from.includes(cur.state)) return { ok: false, code: "invalid_transition", state: cur.state };
    if (opts.executorId !== undefined && cur.executor_id !== opts.executorId) return { ok: false, code: "invalid_transition", state: cur.state };
    const rows = await tx<ActionRow[]>`
      UPDATE actions SET state = ${t.to}, updated_at = COALESCE(${opts.now ?? null}::timestamptz, now()), result = COALESCE(${opts.result ?? null}::text, result)
      WHERE id = ${id} AND state = ${cur.state}
      RETURNING ${cols}`;
    const row = rows[0];
    if (!row) return { ok: false, code: "invalid_transition", state: cur.state };
    await recordAudit(tx, id, cur.state, t.to, audit);
    return { ok: true, action: actionFromRow(row) };
  }

  async function inTx(id: string, fn: (tx: Tx) => Promise<MoveResult>): Promise<MoveResult> {
    if (!isUuid(id)) return { ok: false, code: "not_found" };
    return (await sql.begin((tx) => fn(tx))) as MoveResult;
  }

  async function decide(id: string, event: { type: "approve" } | { type: "reject" }, audit: Audit, opts: MoveOptions = {}, then?: (tx: Tx, a: Action) => Promise<void>): Promise<MoveResult> {
    return inTx(id, async (tx) => {
      const [due] = await tx<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${id} AND state = 'pending' AND expires_at <= now() FOR UPDATE`;
      if (due) {
        const expired = await move(tx, id, { type: "expire" }, { actor: "system", channel: "system", detail: `expired before it was decided (${event.type} by ${audit.actor})` });
        return expired.ok ? { ok: false, code: "invalid_transition", state: expired.action.state } : expired;
      }
      const moved = await move(tx, id, event, audit, opts);
      if (moved.ok && then) await then(tx, moved.action);
      return moved;
    });
  }

  /** Moves every candidate that is still due, one transaction each, skipping rows another sweeper holds. */
  async function sweep(ids: readonly string[], due: (tx: Tx, id: string) => Promise<boolean>, step: (tx: Tx, id: string) => Promise<MoveResult>): Promise<SweepResult[]> {
    const out: SweepResult[] = [];
    for (const id of ids) {
      const r = await sql.begin(async (tx) => {
        const [cur] = await tx<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${id} FOR UPDATE SKIP LOCKED`;
        if (!cur || !(await due(tx, id))) return undefined;
        const moved = await step(tx, id);
        return moved.ok ? { id, from: cur.state, to: moved.action.state } : undefined;
      });
      if (r) out.push(r);
    }
    return out;
  }

  const pendingTo = (to: "approved" | "rejected"): void => {
    if (!transition("pending", { type: to === "approved" ? "approve" : "reject" }).ok) throw new Error(`the action state machine no longer allows pending -> ${to}`);
  };

  return {
    async propose(p) {
      const id = randomUUID();
      const expires = new Date(p.now.getTime() + p.ttlMs);
      const diagnosis = p.diagnosis?.slice(0, 8000) ?? null;
      return sql.begin(async (tx): Promise<ProposeResult> => {
        const rows = await tx<ActionRow[]>`
          INSERT INTO actions (id, node, service, kind, state, reason, drift_key, proposed_by, diagnosis, created_at, updated_at, expires_at, traceparent, params, task_id, model_written)
          VALUES (${id}, ${p.node}, ${p.service}, ${p.kind}, 'pending', ${p.reason}, ${p.driftKey}, ${p.proposedBy}, ${diagnosis}, ${p.now}, ${p.now}, ${expires}, ${p.traceparent}, ${tx.json((p.params ?? {}) as postgres.JSONValue)}, ${p.taskId ?? null}, ${[...(p.modelWritten ?? [])]}::text[])
          ON CONFLICT (node, service, kind) WHERE ${tx.unsafe(OPEN_PREDICATE)} DO NOTHING
          RETURNING ${cols}`;
        const row = rows[0];
        if (row) {
          await recordAudit(tx, id, null, "pending", { actor: p.proposedBy, channel: p.channel, detail: p.auditDetail.slice(0, 2000) });
          return { proposed: true, action: actionFromRow(row) };
        }
        const [open] = await tx<{ id: string; state: ActionState }[]>`
          SELECT id::text AS id, state FROM actions WHERE node = ${p.node} AND service = ${p.service} AND kind = ${p.kind} AND state IN ${tx(OPEN_ACTION_STATES)}`;
        return { proposed: false, open: open ?? null };
      });
    },

    async extendRollout(id, change, audit) {
      if (!isUuid(id)) return false;
      return sql.begin(async (tx) => {
        const rows = await tx`
          UPDATE actions SET params = params || ${tx.json({ ...(change.params ?? {}), nodes: [...change.nodes] } as postgres.JSONValue)}, updated_at = ${change.now}
          WHERE id = ${id} AND state = 'pending' RETURNING id`;
        if (rows.length === 0) return false;
        await recordAudit(tx, id, "pending", "pending", audit);
        return true;
      });
    },

    expire(id, audit, opts = {}) {
      return inTx(id, (tx) => move(tx, id, { type: "expire" }, audit, { from: opts.from, now: opts.now, result: opts.result }));
    },

    approve(id, actor, channel, detail) {
      pendingTo("approved");
      return decide(id, { type: "approve" }, { actor, channel, ...(detail !== undefined ? { detail } : {}) });
    },

    approveMatching(id, match, audit) {
      pendingTo("approved");
      return decide(id, { type: "approve" }, audit, { match });
    },

    reject(id, actor, channel, reason, opts = {}) {
      if (reason.trim() === "") throw new TypeError("a rejection needs a reason");
      if (opts.holdForMs !== undefined && !(Number.isSafeInteger(opts.holdForMs) && opts.holdForMs > 0)) throw new TypeError("a hold's time must be a positive number of milliseconds");
      pendingTo("rejected");
      // The reason is also the action's result: every list that shows results (console, API) then says why.
      return decide(id, { type: "reject" }, { actor, channel, detail: reason.trim() }, { result: rejectionResult(actor, channel, reason) }, (tx, a) =>
        insertHold(tx, a, { actor, channel, reason: reason.trim() }, opts.holdForMs),
      );
    },

    ...createActionQueries(sql),
    ...createHoldsStore(sql),

    async recordRefusal(id, audit) {
      if (!isUuid(id)) return false;
      const rows = await sql`INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
                             SELECT id, state, state, ${audit.actor}, ${audit.channel}, ${(audit.detail ?? "").slice(0, 2000)} FROM actions WHERE id = ${id}
                             RETURNING id`;
      return rows.length === 1;
    },

    async claimNext(executorId, leaseMs) {
      const from: ActionState = "approved";
      const t = transition(from, { type: "start_run" });
      if (!t.ok) throw new Error("the action state machine no longer allows approved -> running");
      return sql.begin(async (tx) => {
        const [cand] = await tx<{ id: string }[]>`
          SELECT id FROM actions WHERE state = ${from} AND expires_at > now()
          ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`;
        if (!cand) return undefined;
        const [row] = await tx<ActionRow[]>`
          UPDATE actions SET state = ${t.to}, updated_at = now(), executor_id = ${executorId},
                 lease_until = now() + ${leaseMs} * interval '1 millisecond'
          WHERE id = ${cand.id} AND state = ${from}
          RETURNING ${cols}`;
        if (!row) return undefined;
        await recordAudit(tx, row.id, from, t.to, { actor: executorId, channel: "executor", detail: `claimed by ${executorId}` });
        return actionFromRow(row);
      });
    },

    async renewLease(id, executorId, leaseMs) {
      if (!isUuid(id)) return false;
      const rows = await sql`
        UPDATE actions SET lease_until = now() + ${leaseMs} * interval '1 millisecond'
        WHERE id = ${id} AND state = 'running' AND executor_id = ${executorId}
        RETURNING id`;
      return rows.length === 1;
    },

    finish(id, outcome, result, opts = {}) {
      const actor = opts.executorId ?? "executor";
      return inTx(id, (tx) => move(tx, id, { type: outcome === "succeeded" ? "succeed" : "fail" }, { actor, channel: "executor", detail: result }, { result, executorId: opts.executorId }));
    },

    abandon(id, executorId, detail) {
      return inTx(id, (tx) => move(tx, id, { type: "lose_executor" }, { actor: executorId, channel: "executor", detail }, { result: detail, executorId }));
    },

    async note(id, actor, detail) {
      if (!isUuid(id)) return false;
      const rows = await sql`
        INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
        SELECT id, 'running', 'running', ${actor}, 'executor', ${detail} FROM actions WHERE id = ${id} AND state = 'running'
        RETURNING id`;
      return rows.length === 1;
    },

    async expireDue() {
      const due = await sql<{ id: string }[]>`
        SELECT id FROM actions WHERE state IN ${sql(UNSTARTED_ACTION_STATES)} AND expires_at <= now() ORDER BY expires_at LIMIT 200`;
      return sweep(
        due.map((d) => d.id),
        async (tx, id) => (await tx`SELECT 1 FROM actions WHERE id = ${id} AND expires_at <= now()`).length === 1,
        (tx, id) => move(tx, id, { type: "expire" }, { actor: "system", channel: "system", detail: "expired before it was run" }),
      );
    },

    async reapLost() {
      const lost = await sql<{ id: string }[]>`
        SELECT id FROM actions WHERE state = 'running' AND lease_until < now() ORDER BY lease_until LIMIT 200`;
      return sweep(
        lost.map((d) => d.id),
        async (tx, id) => (await tx`SELECT 1 FROM actions WHERE id = ${id} AND state = 'running' AND lease_until < now()`).length === 1,
        (tx, id) => move(tx, id, { type: "lose_executor" }, { actor: "system", channel: "system", detail: LOST_EXECUTOR_DETAIL }, { result: LOST_EXECUTOR_DETAIL }),
      );
    },

  };
}
