import type { Action } from "@steward/contracts/action";
import { DRILL_KIND, type DrillResult, type DrillVerdict } from "@steward/contracts/drill";
import type { Sql } from "@steward/platform/db";
import { ACTION_COLUMNS, actionFromRow, isUuid, type ActionRow } from "./rows.js";

/** A `drill_results` row as postgres.js returns it. The table is in libs/platform/migrations/005_drills.sql. */
interface DrillRow {
  drill_id: string;
  node: string;
  service: string;
  verdict: DrillVerdict;
  reason: string;
  objective_ms: number;
  approve_restart: boolean;
  started_at: Date | null;
  detected_ms: number | null;
  proposed_ms: number | null;
  approved_ms: number | null;
  recovered_ms: number | null;
  restart_action_id: string | null;
  approved_by: string | null;
  finished_at: Date;
}

const DRILL_COLUMNS = ["drill_id", "node", "service", "verdict", "reason", "objective_ms", "approve_restart", "started_at", "detected_ms", "proposed_ms", "approved_ms", "recovered_ms", "restart_action_id", "approved_by", "finished_at"] as const;

function resultFromRow(r: DrillRow): DrillResult {
  return {
    drill_id: r.drill_id,
    node: r.node,
    service: r.service,
    verdict: r.verdict,
    reason: r.reason,
    objective_ms: r.objective_ms,
    approve_restart: r.approve_restart,
    started_at: r.started_at ? r.started_at.toISOString() : null,
    detected_ms: r.detected_ms,
    proposed_ms: r.proposed_ms,
    approved_ms: r.approved_ms,
    recovered_ms: r.recovered_ms,
    restart_action_id: r.restart_action_id,
    approved_by: r.approved_by,
    finished_at: r.finished_at.toISOString(),
  };
}

export interface DrillEntry {
  action: Action;
  result: DrillResult | null;
}

/** Drill outcomes: the only code that reads or writes `drill_results` (a drill is an action; its result sits beside it). */
export interface DrillsRepository {
  /** Keeps a drill's outcome; a drill has one (a second record for the same drill changes nothing and returns false). */
  record(r: DrillResult): Promise<boolean>;
  result(drillId: string): Promise<DrillResult | undefined>;
  /** Drill actions, newest first, each with its result once it has one. */
  listDrills(limit: number): Promise<DrillEntry[]>;
  /** The newest passed or missed drill of each (node, service) finished within the last `windowMs`: what the alerter judges (a refused or failed drill measured nothing). */
  latestDrillResults(windowMs: number): Promise<DrillResult[]>;
}

export function createDrillsRepository(sql: Sql): DrillsRepository {
  const cols = sql(DRILL_COLUMNS as unknown as string[]);
  return {
    async record(r) {
      const rows = await sql`
        INSERT INTO drill_results (drill_id, node, service, verdict, reason, objective_ms, approve_restart, started_at, detected_ms, proposed_ms, approved_ms, recovered_ms, restart_action_id, approved_by, finished_at)
        VALUES (${r.drill_id}, ${r.node}, ${r.service}, ${r.verdict}, ${r.reason.slice(0, 4000)}, ${r.objective_ms}, ${r.approve_restart}, ${r.started_at}, ${r.detected_ms}, ${r.proposed_ms}, ${r.approved_ms}, ${r.recovered_ms}, ${r.restart_action_id}, ${r.approved_by}, ${r.finished_at})
        ON CONFLICT (drill_id) DO NOTHING
        RETURNING drill_id`;
      return rows.length === 1;
    },

    async result(drillId) {
      if (!isUuid(drillId)) return undefined;
      const [row] = await sql<DrillRow[]>`SELECT ${cols} FROM drill_results WHERE drill_id = ${drillId}`;
      return row ? resultFromRow(row) : undefined;
    },

    async listDrills(limit) {
      const rows = await sql<(ActionRow & { r: DrillRow | null })[]>`
        SELECT ${sql(ACTION_COLUMNS.map((c) => `a.${c}`) as string[])}, to_jsonb(d) AS r
        FROM actions a LEFT JOIN drill_results d ON d.drill_id = a.id
        WHERE a.kind = ${DRILL_KIND}
        ORDER BY a.created_at DESC, a.id LIMIT ${limit}`;
      // to_jsonb gives timestamps as strings: back to Dates for the one row mapper.
      return rows.map((row) => {
        const r = row.r;
        const result = r ? resultFromRow({ ...r, started_at: r.started_at ? new Date(r.started_at) : null, finished_at: new Date(r.finished_at) }) : null;
        return { action: actionFromRow(row), result };
      });
    },

    async latestDrillResults(windowMs) {
      const rows = await sql<DrillRow[]>`
        SELECT DISTINCT ON (node, service) ${cols} FROM drill_results
        WHERE verdict IN ('passed', 'missed') AND finished_at > now() - ${windowMs} * interval '1 millisecond'
        ORDER BY node, service, finished_at DESC`;
      return rows.map(resultFromRow);
    },
  };
}
