import type { CostReport } from "@steward/contracts/task";
import { COST } from "../command-table.js";
import { table } from "../format.js";
import { parseFlags } from "../parse.js";
import { connectPlanner, type PlannerClient } from "../connect-planner.js";
import { usd, type CommandIo } from "./task.js";

const pct = (used: number, cap: number): string => (cap <= 0 ? "-" : `${Math.round((used / cap) * 100)}%`);

/** Spend by day, agent, model group and source, and what is left under each cap (UTC days; today's line is today's row of by day). */
export function renderCost(r: CostReport): string {
  const out: string[] = [];
  const { caps, today, headroom } = r;
  out.push(`model spend as of ${r.generated_at}`);
  out.push(`caps: ${usd(caps.per_task_usd)} per task · ${usd(caps.per_agent_day_usd)} per agent per day · ${usd(caps.global_day_usd)} per day overall`);
  out.push("");
  out.push(`today: ${usd(today.global.usd)} in ${today.global.calls} call${today.global.calls === 1 ? "" : "s"} (${pct(today.global.usd, caps.global_day_usd)} of the daily cap); headroom ${usd(headroom.global_day_usd)}`);
  if (headroom.global_day_usd <= 0) out.push("  the daily cap is reached: no Claude call is made until tomorrow; tasks are served locally or by the rule-based diagnoser");
  const agents = [...new Set([...Object.keys(today.by_agent), ...Object.keys(headroom.per_agent_day_usd)])].sort();
  if (agents.length > 0) {
    out.push(
      table(
        ["  AGENT", "SPENT TODAY", "CALLS", "OF CAP", "HEADROOM"],
        agents.map((a) => {
          const s = today.by_agent[a] ?? { usd: 0, calls: 0 };
          return [`  ${a}`, usd(s.usd), s.calls, pct(s.usd, caps.per_agent_day_usd), usd(headroom.per_agent_day_usd[a] ?? Math.max(0, caps.per_agent_day_usd - s.usd))];
        }),
      ),
    );
  }
  const section = (title: string, key: string, rows: { usd: number; calls: number }[], label: (r: never) => string) => {
    out.push("");
    if (rows.length === 0) {
      out.push(`${title}: nothing spent`);
      return;
    }
    out.push(`${title}:`);
    out.push(table([`  ${key}`, "SPENT", "CALLS"], rows.map((x) => [`  ${label(x as never)}`, usd(x.usd), x.calls])));
  };
  section("by day", "DAY", r.by_day, (x: { day: string }) => x.day);
  section("by agent", "AGENT", r.by_agent, (x: { agent: string }) => x.agent);
  section("by model group", "MODEL GROUP", r.by_model_group, (x: { model_group: string }) => x.model_group);
  section("by source", "SOURCE", r.by_source, (x: { source: string }) => x.source);
  return out.join("\n");
}

export async function costCommand(args: string[], io: CommandIo, deps: { planner?: PlannerClient } = {}): Promise<number> {
  const { values } = parseFlags(COST.flags, args);
  const planner = deps.planner ?? (await connectPlanner(io.env));
  const r = await planner.cost();
  io.out(values.json ? JSON.stringify(r, null, 2) : renderCost(r));
  return 0;
}
