import type { CostReport } from "@steward/contracts/task";
import { ADVISORY_LOCK_KEYS, type Sql } from "@steward/platform/db";
import { AGENTS, type Caps, type Prices } from "./config.js";

/**
 * Advisory lock serialising reservations: the cap check and the insert must see every other reservation. Its own key
 * (it was the observer's leader lock key, so with an observer holding leadership on the same database every Claude
 * reservation waited for that observer to stop).
 */
const LEDGER_LOCK = ADVISORY_LOCK_KEYS.plannerCostLedger;

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

/**
 * Cost of a call from the usage the API returned and the model's prices (USD per million tokens). Anthropic counts
 * cache writes and cache reads apart from `input_tokens`, each at its own price.
 */
export function costUsd(prices: Prices, inputTokens: number, outputTokens: number, cacheWriteTokens = 0, cacheReadTokens = 0): number {
  return round6((inputTokens * prices.inputPerMTok + outputTokens * prices.outputPerMTok + cacheWriteTokens * prices.cacheWritePerMTok + cacheReadTokens * prices.cacheReadPerMTok) / 1_000_000);
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
  /** What a task has spent or holds reserved so far (USD): what its per-task cap has left is the cap minus this. */
  taskSpentUsd(taskId: string): Promise<number>;
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

    async taskSpentUsd(taskId) {
      const [r] = await sql<{ usd: string | null }[]>`
        SELECT sum(coalesce(actual_usd, reserved_usd)) AS usd FROM planner_cost_ledger WHERE task_id = ${taskId} AND state <> 'released'`;
      return round6(num(r?.usd));
    },

    async report(now) {
      const day = utcDay(now);
      const since = new Date(`${utcDay(new Date(now.getTime() - 29 * 86_400_000))}T00:00:00.000Z`);
      // Headroom comes from the ledger: reservations in flight count against the caps.
      const reserved = await sql<{ agent: string; usd: string }[]>`
        SELECT agent, sum(coalesce(actual_usd, reserved_usd)) AS usd
        FROM planner_cost_ledger WHERE day = ${day} AND state <> 'released' GROUP BY agent ORDER BY agent`;
      // Every spend and call count shown comes from this one query of the calls made (local and Claude), by UTC day.
      const calls = await sql<CallGroup[]>`
        SELECT to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, c.agent, c.model_group, t.source, sum(c.cost_usd) AS usd, count(*) AS calls
        FROM planner_model_calls c JOIN planner_tasks t ON t.id = c.task_id
        WHERE c.at >= ${since} GROUP BY 1, 2, 3, 4`;
      const reservedToday: Record<string, number> = {};
      for (const r of reserved) reservedToday[r.agent] = round6(num(r.usd));
      return costReport({ now, caps, calls, reservedToday });
    },
  };
}

/** One group of model calls: a UTC day, agent, model group and task source, with their spend and count. */
export interface CallGroup {
  day: string;
  agent: string;
  model_group: string;
  source: string;
  usd: string | number;
  calls: string | number;
}

/**
 * The cost report, decided from the calls made (grouped by UTC day) and today's ledger (reservations in flight
 * included). Today's spend and calls are the same rows as today's entry of by_day: one definition of a call and of a day.
 */
export function costReport(o: { now: Date; caps: Caps; calls: readonly CallGroup[]; reservedToday: Record<string, number> }): CostReport {
  const { now, caps } = o;
  const day = utcDay(now);
  const add = (m: Map<string, { usd: number; calls: number }>, k: string, g: CallGroup) => {
    const cur = m.get(k) ?? { usd: 0, calls: 0 };
    m.set(k, { usd: cur.usd + num(g.usd), calls: cur.calls + Number(g.calls) });
  };
  const byDay = new Map<string, { usd: number; calls: number }>();
  const byAgent = new Map<string, { usd: number; calls: number }>();
  const byGroup = new Map<string, { usd: number; calls: number }>();
  const bySource = new Map<string, { usd: number; calls: number }>();
  const todayByAgent = new Map<string, { usd: number; calls: number }>();
  for (const g of o.calls) {
    add(byDay, g.day, g);
    add(byAgent, g.agent, g);
    add(byGroup, g.model_group, g);
    add(bySource, g.source, g);
    if (g.day === day) add(todayByAgent, g.agent, g);
  }
  const spend = (s: { usd: number; calls: number }) => ({ usd: round6(s.usd), calls: s.calls });
  /** Most spent first, then by name. */
  const ranked = <K extends string>(m: Map<string, { usd: number; calls: number }>, key: K) =>
    [...m]
      .sort(([a, x], [b, y]) => y.usd - x.usd || a.localeCompare(b))
      .map(([k, s]) => ({ [key]: k, ...spend(s) }) as { [P in K]: string } & { usd: number; calls: number });
  const today = { global: spend([...todayByAgent.values()].reduce((a, s) => ({ usd: a.usd + s.usd, calls: a.calls + s.calls }), { usd: 0, calls: 0 })), by_agent: Object.fromEntries([...todayByAgent].sort(([a], [b]) => a.localeCompare(b)).map(([k, s]) => [k, spend(s)])) };
  const reservedGlobal = round6(Object.values(o.reservedToday).reduce((a, u) => a + u, 0));
  const perAgentHeadroom: Record<string, number> = {};
  for (const a of new Set<string>([...AGENTS, ...Object.keys(o.reservedToday), ...todayByAgent.keys()])) {
    perAgentHeadroom[a] = round6(Math.max(0, Math.min(caps.perAgentDayUsd - (o.reservedToday[a] ?? 0), caps.globalDayUsd - reservedGlobal)));
  }
  return {
    generated_at: now.toISOString(),
    caps: { per_task_usd: caps.perTaskUsd, per_agent_day_usd: caps.perAgentDayUsd, global_day_usd: caps.globalDayUsd },
    today,
    headroom: { global_day_usd: round6(Math.max(0, caps.globalDayUsd - reservedGlobal)), per_agent_day_usd: perAgentHeadroom },
    by_day: [...byDay].sort(([a], [b]) => b.localeCompare(a)).map(([d, s]) => ({ day: d, ...spend(s) })),
    by_agent: ranked(byAgent, "agent"),
    by_model_group: ranked(byGroup, "model_group"),
    by_source: ranked(bySource, "source"),
  };
}
