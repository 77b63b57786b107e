import type { DrillDetailReply, DrillListReply } from "@steward/executor/client";
import type { DrillResult } from "@steward/contracts/drill";
import { connectApi, resolveActionId } from "../connect-api.js";
import { DRILL, type Io } from "../command-table.js";
import { UsageError } from "../errors.js";
import { ago, shortId, table } from "../format.js";
import { parseFlags } from "../parse.js";
import { decider } from "./actions.js";
import { renderAction } from "./read.js";

const secs = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : `${(ms / 1000).toFixed(1)}s`);

/** The verdict column: a drill without a result is still waiting (pending, approved) or running. */
const verdictOf = (d: DrillListReply["drills"][number]): string => d.result?.verdict.toUpperCase() ?? (d.action.state === "running" ? "running" : d.action.state);

export function renderDrills(drills: DrillListReply["drills"], now = Date.now()): string {
  if (drills.length === 0) return "no drills (propose one: steward drill SERVICE)";
  return table(
    ["ID", "VERDICT", "TARGET", "OBJECTIVE", "DOWN SEEN", "RESTART PENDING", "APPROVED", "HEALTHY", "CREATED"],
    drills.map((d) => {
      const r = d.result;
      const objective = r?.objective_ms ?? (typeof d.action.params?.["objective_ms"] === "number" ? d.action.params["objective_ms"] : null);
      return [shortId(d.action.id), verdictOf(d), `${d.action.node}/${d.action.service}`, secs(objective), secs(r?.detected_ms), secs(r?.proposed_ms), secs(r?.approved_ms), secs(r?.recovered_ms), ago(d.action.created_at, now)];
    }),
  );
}

function timeline(r: DrillResult): string[] {
  const step = (label: string, ms: number | null, extra = "") => `  +${secs(ms) ?? "-"}`.padEnd(12) + `${label}${ms === null ? " (not seen)" : ""}${extra}`;
  return [
    `timeline (after the kill at ${r.started_at ?? "-"}):`,
    step("down in the world", r.detected_ms),
    step("restart pending", r.proposed_ms, r.restart_action_id ? ` (action ${shortId(r.restart_action_id)})` : ""),
    step("restart approved", r.approved_ms, r.approved_by ? ` by ${r.approved_by}` : ""),
    step("healthy again", r.recovered_ms, ` (objective ${secs(r.objective_ms)})`),
  ];
}

export function renderDrill(d: DrillDetailReply): string {
  const r = d.result;
  const out = [
    `drill ${d.action.id}: ${d.action.node}/${d.action.service}`,
    `  verdict: ${r ? r.verdict.toUpperCase() : `none yet (the drill is ${d.action.state})`}`,
    ...(r ? [`  why:     ${r.reason}`, `  restart: ${r.approve_restart ? "approved by the drill (--approve)" : "left to an operator"}`, "", ...timeline(r)] : []),
    "",
    renderAction({ action: d.action, audit: d.audit }),
  ];
  if (d.restart) out.push("", "the restart it caused:", renderAction(d.restart));
  return out.join("\n");
}

/** `steward drill SERVICE|--all`, `steward drill ls`, `steward drill show ID`. */
export async function drillCommand(args: string[], io: Io): Promise<number> {
  const [first, ...rest] = args;
  if (first === "ls" || first === "list") {
    const { values } = parseFlags(DRILL.subcommands.ls.flags, rest);
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive whole number, got '${values.limit}'`);
    const drills = await (await connectApi(io.env)).drills({ limit });
    io.out(values.json ? JSON.stringify({ drills }, null, 2) : renderDrills(drills));
    return 0;
  }
  if (first === "show") {
    const { values, positionals } = parseFlags(DRILL.subcommands.show.flags, rest, { positionals: true });
    if (!positionals[0]) throw new UsageError("steward drill show needs the drill's ID");
    const api = await connectApi(io.env);
    const d = await api.drill(await resolveActionId(api, positionals[0]));
    io.out(values.json ? JSON.stringify(d, null, 2) : renderDrill(d));
    return 0;
  }
  const { values, positionals } = parseFlags(DRILL.flags, args, { positionals: true });
  const service = positionals[0];
  if (positionals.length > 1) throw new UsageError(`one service at a time (got ${positionals.join(", ")}); --all drills every service`);
  if (service === undefined && !values.all) throw new UsageError("name a service to drill, or --all");
  if (service !== undefined && values.all) throw new UsageError("name a service or --all, not both");
  const actor = decider(values.as, io.env);
  const api = await connectApi(io.env);
  // A 409 (every target refused, nothing changed) is an ApiError: runCli prints each reason and exits 1.
  const r = await api.proposeDrill({
    ...(service !== undefined ? { service } : { all: true }),
    ...(values.node !== undefined ? { node: values.node } : {}),
    approve_restart: values.approve,
    actor,
    channel: "cli",
  });
  if (values.json) {
    io.out(JSON.stringify(r, null, 2));
    return 0;
  }
  const lines = r.proposed.map((a) => {
    const objective = typeof a.params?.["objective_ms"] === "number" ? ` against its ${a.params["objective_ms"] / 1000} s objective` : "";
    return `proposed drill ${shortId(a.id)}: kill ${a.node}/${a.service} and time its recovery${objective}; it waits for approval: steward approve ${shortId(a.id)}`;
  });
  for (const x of r.refused) lines.push(`refused ${x.node}/${x.service} (nothing changed): ${x.reason}`);
  lines.push(values.approve ? "with --approve the drill approves the restart it causes, and nothing else" : "the restart each drill causes waits for your approval, as any restart does (or pass --approve)");
  lines.push("follow it: steward drill ls");
  io.out(lines.join("\n"));
  return 0;
}
