import type { CostReport } from "@steward/contracts/task";
import type { Sql } from "@steward/platform/db";
import { AGENTS, type Caps, type Prices } from "./config.js";

/** Advisory lock serialising reservations: the cap check and the insert must see every other reservation. */
const LEDGER_LOCK = 4242003;

export type CapName = "per_task" | "per_agent_day" | "global_day";

export interface ReserveInput {
  taskId: string;
  agent: string;
  source: string;
  modelGroup: string;
  model: string;
  usd: number;
  /** UTC day (YYYY-MM-DD) the spend counts against. */
  day: string;
}

export type ReserveResult = { ok: true; id: number } | { ok: false; cap: CapName; capUsd: number; spentUsd: number; wantedUsd: number };

export const utcDay = (d: Date): string => d.toISOString().slice(0, 10);

/** Cost of a call from its token usage and the configured prices (USD per million tokens). */
export function costUsd(prices: Prices, inputTokens: number, outputTokens: number): number {
  return round6((inputTokens * prices.inputPerMTok + outputTokens * prices.outputPerMTok) / 1_000_000);
}

const round6 = (n: number): number => Math.round(n * 1e6) / 1e6;
const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

export interface CostLedger {
  /**
   * Reserves the estimated cost against all three caps at once. Under the advisory lock the sums and the insert
   * see every committed reservation, so concurrent callers can never together pass a cap.
   */
  reserve(input: ReserveInput): Promise<ReserveResult>;
  /** Replaces the estimate with the real cost. */
  settle(id: number, usd: number, inputTokens: number, outputTokens: number): Promise<void>;
  /** The call was not made or failed: the reservation counts nothing. */
  release(id: number): Promise<void>;
  report(now: Date): Promise<CostReport>;
}

export function createCostLedger(sql: Sql, caps: Caps): CostLedger {
  return {
    async reserve(input) {
      return sql.begin(async (tx) => {
        await tx`SELECT pg_advisory_xact_lock(${LEDGER_LOCK})`;
        const [s] = await tx<{ task: string | null; agent_day: string | null; global_day: string | null }[]>`
          SELECT
            sum(coalesce(actual_usd, reserved_usd)) FILTER (WHERE task_id = ${input.taskId}) AS task,
            sum(coalesce(actual_usd, reserved_usd)) FILTER (WHERE day = ${input.day} AND agent = ${input.agent}) AS agent_day,
            sum(coalesce(actual_usd, reserved_usd)) FILTER (WHERE day = ${input.day}) AS global_day
          FROM planner_cost_ledger
          WHERE state <> 'released' AND (task_id = ${input.taskId} OR day = ${input.day})`;
        const checks: [CapName, number, number][] = [
          ["per_task", num(s?.task), caps.perTaskUsd],
          ["per_agent_day", num(s?.agent_day), caps.perAgentDayUsd],
          ["global_day", num(s?.global_day), caps.globalDayUsd],
        ];
        for (const [cap, spent, capUsd] of checks) {
          if (spent + input.usd > capUsd + 1e-9) return { ok: false as const, cap, capUsd, spentUsd: round6(spent), wantedUsd: input.usd };
        }
        const [row] = await tx<{ id: string }[]>`
          INSERT INTO planner_cost_ledger (task_id, agent, source, model_group, model, day, state, reserved_usd)
          VALUES (${input.taskId}, ${input.agent}, ${input.source}, ${input.modelGroup}, ${input.model}, ${input.day}, 'reserved', ${input.usd})
          RETURNING id`;
        return { ok: true as const, id: Number(row?.id) };
      });
    },

    async settle(id, usd, inputTokens, outputTokens) {
      await sql`
        UPDATE planner_cost_ledger SET state = 'settled', actual_usd = ${usd}, input_tokens = ${inputTokens}, output_tokens = ${outputTokens}, settled_at = now()
        WHERE id = ${id} AND state = 'reserved'`;
    },

    async release(id) {
      await sql`UPDATE planner_cost_ledger SET state = 'released', settled_at = now() WHERE id = ${id} AND state = 'reserved'`;
    },

    async report(now) {
      const day = utcDay(now);
      const since = utcDay(new Date(now.getTime() - 29 * 86_400_000));
      // Caps and headroom come from the ledger, reservations in flight included; breakdowns from what was served.
      const today = await sql<{ agent: string; usd: string; calls: string }[]>`
        SELECT agent, sum(coalesce(actual_usd, reserved_usd)) AS usd, count(*) AS calls
        FROM planner_cost_ledger WHERE day = ${day} AND state <> 'released' GROUP BY agent ORDER BY agent`;
      const byDay = await sql<{ day: string; usd: string; calls: string }[]>`
        SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, sum(cost_usd) AS usd, count(*) AS calls
        FROM planner_model_calls WHERE at >= ${since}::date GROUP BY 1 ORDER BY 1 DESC`;
      const byAgent = await sql<{ agent: string; usd: string; calls: string }[]>`
        SELECT agent, sum(cost_usd) AS usd, count(*) AS calls FROM planner_model_calls WHERE at >= ${since}::date GROUP BY 1 ORDER BY 2 DESC, 1`;
      const byGroup = await sql<{ model_group: string; usd: string; calls: string }[]>`
        SELECT model_group, sum(cost_usd) AS usd, count(*) AS calls FROM planner_model_calls WHERE at >= ${since}::date GROUP BY 1 ORDER BY 2 DESC, 1`;
      const bySource = await sql<{ source: string; usd: string; calls: string }[]>`
        SELECT t.source, sum(c.cost_usd) AS usd, count(*) AS calls
        FROM planner_model_calls c JOIN planner_tasks t ON t.id = c.task_id
        WHERE c.at >= ${since}::date GROUP BY 1 ORDER BY 2 DESC, 1`;
      const spend = (r: { usd: string; calls: string }) => ({ usd: round6(num(r.usd)), calls: Number(r.calls) });
      const byAgentToday: Record<string, { usd: number; calls: number }> = {};
      for (const r of today) byAgentToday[r.agent] = spend(r);
      const globalUsd = round6(today.reduce((a, r) => a + num(r.usd), 0));
      const globalCalls = today.reduce((a, r) => a + Number(r.calls), 0);
      const perAgentHeadroom: Record<string, number> = {};
      for (const a of new Set<string>([...AGENTS, ...Object.keys(byAgentToday)])) {
        perAgentHeadroom[a] = round6(Math.max(0, Math.min(caps.perAgentDayUsd - (byAgentToday[a]?.usd ?? 0), caps.globalDayUsd - globalUsd)));
      }
      return {
        generated_at: now.toISOString(),
        caps: { per_task_usd: caps.perTaskUsd, per_agent_day_usd: caps.perAgentDayUsd, global_day_usd: caps.globalDayUsd },
        today: { global: { usd: globalUsd, calls: globalCalls }, by_agent: byAgentToday },
        headroom: { global_day_usd: round6(Math.max(0, caps.globalDayUsd - globalUsd)), per_agent_day_usd: perAgentHeadroom },
        by_day: byDay.map((r) => ({ day: r.day, ...spend(r) })),
        by_agent: byAgent.map((r) => ({ agent: r.agent, ...spend(r) })),
        by_model_group: byGroup.map((r) => ({ model_group: r.model_group, ...spend(r) })),
        by_source: bySource.map((r) => ({ source: r.source, ...spend(r) })),
      };
    },
  };
}
