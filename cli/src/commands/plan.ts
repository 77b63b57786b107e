import { parseDuration, type FleetSpec } from "@steward/fleet/fleet-spec";
import type { Drift } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { computeDrift } from "@steward/fleet/diff";
import { loadSnapshotFromFile } from "@steward/world/read";
import { loadSpecSafe } from "@steward/fleet/load";
import { connectApi } from "../connect-api.js";
import { PLAN, type Io } from "../command-table.js";
import { table } from "../format.js";
import { parseFlags } from "../parse.js";

/** What the supervisor would do about one drift. `alert` and `report` never act. */
export type PlanVerb = "create" | "restart" | "redeploy" | "pull" | "alert" | "report";

export const PLAN_VERBS: readonly PlanVerb[] = ["create", "restart", "redeploy", "pull", "alert", "report"];

export interface PlanItem {
  verb: PlanVerb;
  /** The action the supervisor would propose (pending an operator's approval), or null. */
  action: Drift["proposes"];
  node: string;
  service: string;
  drift: Drift["kind"];
  message: string;
}

export interface Plan {
  spec: string;
  snapshot: { source: string; written_at: string; world_seq: number };
  evaluated_at: string;
  summary: Record<PlanVerb, number>;
  items: PlanItem[];
}

function verbOf(d: Drift): PlanVerb {
  switch (d.proposes) {
    case "start":
      return "create";
    case "deploy":
      // A declared stack that was never deployed is created; one that runs with another config is redeployed.
      return d.kind === "missing" ? "create" : "redeploy";
    case "restart":
      return "restart";
    case "pull":
      return "pull";
    case null:
      return d.severity === "alert" ? "alert" : "report";
    default: {
      const never: never = d.proposes;
      return never;
    }
  }
}

/** Pure: the drifts the supervisor's own diff finds, as a plan. */
export function planFromDrifts(drifts: readonly Drift[]): { summary: Record<PlanVerb, number>; items: PlanItem[] } {
  const items = drifts
    .map((d): PlanItem => ({ verb: verbOf(d), action: d.proposes, node: d.node, service: d.service, drift: d.kind, message: d.message }))
    .sort((a, b) => PLAN_VERBS.indexOf(a.verb) - PLAN_VERBS.indexOf(b.verb) || a.node.localeCompare(b.node) || a.service.localeCompare(b.service));
  const summary = Object.fromEntries(PLAN_VERBS.map((v) => [v, 0])) as Record<PlanVerb, number>;
  for (const i of items) summary[i.verb] += 1;
  return { summary, items };
}

/** Pure: the supervisor's diff of `spec` against `snapshot` at `now`, as a plan. */
export function computePlan(spec: FleetSpec, snapshot: Snapshot, now: Date, opts: { snapshotMaxAgeMs: number; specFile: string; source: string }): Plan {
  const drifts = computeDrift(spec, snapshot, now, { snapshotMaxAgeMs: opts.snapshotMaxAgeMs });
  return {
    spec: opts.specFile,
    snapshot: { source: opts.source, written_at: snapshot.written_at, world_seq: snapshot.world.last_seq },
    evaluated_at: now.toISOString(),
    ...planFromDrifts(drifts),
  };
}

export function renderPlan(p: Plan): string {
  const out = [`plan for ${p.spec} against ${p.snapshot.source} (written ${p.snapshot.written_at}, world seq ${p.snapshot.world_seq}), as of ${p.evaluated_at}`];
  if (p.items.length === 0) {
    out.push("nothing to do: the world matches the spec");
    return out.join("\n");
  }
  out.push(PLAN_VERBS.filter((v) => p.summary[v] > 0).map((v) => `${p.summary[v]} ${v}`).join(", "));
  out.push(table(["DO", "ACTION", "TARGET", "DRIFT", "WHY"], p.items.map((i) => [i.verb, i.action, `${i.node}/${i.service}`, i.drift, i.message])));
  out.push("actions are proposed as pending and run only once approved; alert and report rows are never acted on");
  return out.join("\n");
}

export const PLAN_USAGE = `usage: ${PLAN.usage[0][0]}`;

/** `steward plan`: what the supervisor would do. Exit 0 whatever the drift; 1 when the spec or snapshot cannot be read; 2 on usage. */
export async function planCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(PLAN.flags, args, { positionals: true });
  if (positionals.length > 1) {
    io.err(PLAN_USAGE);
    return 2;
  }
  let maxAgeMs: number;
  try {
    maxAgeMs = parseDuration(values["max-age"]);
  } catch {
    io.err(`error: --max-age must be a duration like 30s or 5m\n${PLAN_USAGE}`);
    return 2;
  }
  if (values.now !== undefined && !Number.isFinite(Date.parse(values.now))) {
    io.err(`error: --now must be an ISO timestamp\n${PLAN_USAGE}`);
    return 2;
  }
  const specFile = positionals[0] ?? "fleet.yaml";
  // The supervisor's own loader: a spec it would refuse skips every cycle, so there is nothing to plan.
  const spec = await loadSpecSafe(specFile);
  if (!spec.ok) {
    io.err(`error: cannot plan: the supervisor would skip its cycles (${spec.reason}):\n${spec.detail}`);
    return 1;
  }
  let snapshot: Snapshot;
  let source: string;
  let now: Date;
  if (values.snapshot !== undefined) {
    const loaded = await loadSnapshotFromFile(values.snapshot);
    if (!loaded.ok) {
      io.err(`error: cannot plan: ${loaded.detail}`);
      return 1;
    }
    snapshot = loaded.value;
    source = values.snapshot;
    // A saved snapshot is judged as of when it was written, so an old file is not "too old to trust".
    now = new Date(values.now ?? snapshot.written_at);
  } else {
    snapshot = await (await connectApi(io.env)).world();
    source = "the live world (API)";
    now = values.now !== undefined ? new Date(values.now) : new Date();
  }
  const plan = computePlan(spec.value, snapshot, now, { snapshotMaxAgeMs: maxAgeMs, specFile, source });
  io.out(values.json ? JSON.stringify(plan, null, 2) : renderPlan(plan));
  return 0;
}
