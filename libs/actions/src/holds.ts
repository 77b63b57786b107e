import type { Action, ActionState, Channel } from "@steward/contracts/action";
import { DriftKind, type Hold } from "@steward/contracts/drift";
import type { Sql } from "@steward/platform/db";
import { recordAudit, type Audit, type Tx } from "./audit.js";
import { HOLD_COLUMNS, holdFromRow, isUuid, type HoldRow } from "./rows.js";

export type EndHoldResult = { ok: true; hold: Hold } | { ok: false; code: "not_found" } | { ok: false; code: "ended"; hold: Hold };

/** The holds a rejection leaves on its drift (`drift_holds`): read by the supervisor, ended by it or an operator. */
export interface HoldsStore {
  /** Holds not ended yet, oldest first (one whose time ran out stays here until a supervisor cycle ends it). */
  listHolds(): Promise<Hold[]>;
  /** The hold of this rejected action (ended or not). */
  getHold(actionId: string): Promise<Hold | undefined>;
  /** Ends a hold (its drift changed or cleared, its time ran out, or an operator released it), with an audit row on its action. */
  endHold(actionId: string, audit: Audit, opts?: { now?: Date }): Promise<EndHoldResult>;
}

/** The hold a rejection leaves, in the rejection's transaction: what drift the action answered, on which nodes. */
export async function insertHold(tx: Tx, a: Action, audit: { actor: string; channel: Channel; reason: string }, holdForMs: number | undefined): Promise<void> {
  const cause = a.drift_key === null ? null : DriftKind.safeParse(a.drift_key.split(":")[0]);
  if ((!cause || !cause.success) && holdForMs === undefined) return;
  const params = a.params ?? {};
  const nodes = Array.isArray(params["nodes"]) ? (params["nodes"] as unknown[]).map(String) : [a.node];
  const target = typeof params["target_config_hash"] === "string" ? params["target_config_hash"] : null;
  await tx`
    INSERT INTO drift_holds (action_id, node, service, kind, nodes, cause, target, held_by, channel, reason, created_at, until)
    VALUES (${a.id}, ${a.node}, ${a.service}, ${a.kind}, ${tx.json(nodes)}, ${cause?.success ? cause.data : null}, ${target}, ${audit.actor}, ${audit.channel}, ${audit.reason},
            now(), ${holdForMs === undefined ? null : tx`now() + ${holdForMs} * interval '1 millisecond'`})
    ON CONFLICT (action_id) DO NOTHING`;
}

export function createHoldsStore(sql: Sql): HoldsStore {
  const holdCols = sql(HOLD_COLUMNS as unknown as string[]);
  return {
    async listHolds() {
      const rows = await sql<HoldRow[]>`SELECT ${holdCols} FROM drift_holds WHERE ended_at IS NULL ORDER BY created_at, action_id`;
      return rows.map(holdFromRow);
    },

    async getHold(actionId) {
      if (!isUuid(actionId)) return undefined;
      const [row] = await sql<HoldRow[]>`SELECT ${holdCols} FROM drift_holds WHERE action_id = ${actionId}`;
      return row ? holdFromRow(row) : undefined;
    },

    async endHold(actionId, audit, opts = {}) {
      if (!isUuid(actionId)) return { ok: false, code: "not_found" };
      return sql.begin(async (tx): Promise<EndHoldResult> => {
        const [cur] = await tx<HoldRow[]>`SELECT ${holdCols} FROM drift_holds WHERE action_id = ${actionId} FOR UPDATE`;
        if (!cur) return { ok: false, code: "not_found" };
        if (cur.ended_at) return { ok: false, code: "ended", hold: holdFromRow(cur) };
        const detail = (audit.detail ?? "hold ended").slice(0, 2000);
        const [row] = await tx<HoldRow[]>`
          UPDATE drift_holds SET ended_at = COALESCE(${opts.now ?? null}::timestamptz, now()), end_reason = ${`${detail} (${audit.actor}, ${audit.channel})`}
          WHERE action_id = ${actionId} AND ended_at IS NULL RETURNING ${holdCols}`;
        if (!row) return { ok: false, code: "ended", hold: holdFromRow(cur) };
        // The hold's story is in its action's audit log: a row that leaves the (rejected) state as it was.
        const [a] = await tx<{ state: ActionState }[]>`SELECT state FROM actions WHERE id = ${actionId}`;
        if (a) await recordAudit(tx, actionId, a.state, a.state, { ...audit, detail });
        return { ok: true, hold: holdFromRow(row) };
      });
    },
  };
}
