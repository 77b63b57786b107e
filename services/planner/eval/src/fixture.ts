import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";

/**
 * An incident fixture: a small fleet, the fault injected into what the planner's sources answer (world state, drift,
 * events, log tails, actions history), the task the planner is given, what a right answer holds (root-cause keywords,
 * an expected action, forbidden actions) and the stand-in model's script (used only when no real model is evaluated).
 * One YAML file per fixture in eval/fixtures; a file's name (without .yaml) is its id.
 */

/** `node/service`. */
const Ref = z.string().regex(/^[A-Za-z0-9_-]{1,63}\/[A-Za-z0-9_-]{1,63}$/, "must be node/service");
/** `kind node/service`, e.g. `restart node1/api`. */
const ActionRef = z.string().regex(/^(start|stop|restart) [A-Za-z0-9_-]{1,63}\/[A-Za-z0-9_-]{1,63}$/, "must be 'start|stop|restart node/service'");
/** An action in the history: any catalog kind. */
const PastActionRef = z.string().regex(/^(start|stop|restart|deploy|pull|drill) [A-Za-z0-9_-]{1,63}\/[A-Za-z0-9_-]{1,63}$/, "must be 'KIND node/service'");

const ServiceOverride = z.strictObject({
  state: z.enum(["running", "starting", "stopped", "exited", "failed"]).default("running"),
  health: z.enum(["healthy", "unhealthy", "starting", "none"]).default("healthy"),
  exit_code: z.number().int().nullable().optional(),
  starts: z.number().int().nonnegative().default(1),
  detail: z.string().optional(),
  /** Failing (or passing) checks by name: `{ok, detail}`. */
  checks: z.record(z.string(), z.strictObject({ ok: z.boolean(), consecutive_failures: z.number().int().nonnegative().default(0), detail: z.string().optional() })).default({}),
});

const Host = z.strictObject({ load1: z.number().default(0.2), mem_used_pct: z.number().default(35), disks: z.array(z.strictObject({ path: z.string(), used_pct: z.number(), free_bytes: z.number() })).default([{ path: "/", used_pct: 40, free_bytes: 40e9 }]) });

const Repo = z.strictObject({
  path: z.string().default("/srv/fleet"),
  branch: z.string().nullable().default("main"),
  head: z.string().nullable().default("4f1c2e9"),
  remote_head: z.string().nullable().default("4f1c2e9"),
  behind: z.number().int().default(0),
  ahead: z.number().int().default(0),
  dirty: z.array(z.string()).default([]),
  colliding_untracked: z.array(z.string()).default([]),
  ignored_count: z.number().int().default(0),
  error: z.string().nullable().default(null),
});

/** One event, `at` seconds relative to the run (negative: in the past). */
const Event = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("service"), at: z.number().max(0), ref: Ref, state: z.enum(["running", "starting", "stopped", "exited", "failed"]), health: z.enum(["healthy", "unhealthy", "starting", "none"]).default("none"), exit_code: z.number().int().nullable().optional(), starts: z.number().int().nonnegative().default(1), detail: z.string().optional() }),
  z.strictObject({ type: z.literal("health_check"), at: z.number().max(0), ref: Ref, check: z.string(), ok: z.boolean(), consecutive_failures: z.number().int().nonnegative().default(1), detail: z.string().optional() }),
]);

const ToolCall = z.strictObject({ tool: z.string(), args: z.record(z.string(), z.unknown()) });

export const Fixture = z.strictObject({
  title: z.string().min(1),
  /** The injected fault's class (crash loop, port clash, …). */
  fault: z.string().min(1),
  task: z.strictObject({
    /** `supervisor`: an escalation about `target` (its drift attached); `cli`: an operator's question. */
    source: z.enum(["supervisor", "cli"]),
    content: z.string().min(1),
    target: Ref,
  }),
  fleet: z.string().min(1),
  /** Commit subjects of the fleet repo, oldest first (the last commit writes \`fleet\`): what fleet_git_log shows. Without, the fleet is not in a git repo. */
  fleet_history: z.array(z.string().min(1).max(200)).default([]),
  /** Observed services that differ from running/healthy, by node/service. */
  services: z.record(Ref, ServiceOverride).default({}),
  hosts: z.record(z.string(), Host).default({}),
  repos: z.record(z.string(), Repo).default({}),
  /** Nodes the observer reports stale (not heard from). */
  stale: z.array(z.string()).default([]),
  drift: z.array(z.strictObject({ kind: z.string(), ref: Ref, message: z.string(), proposes: z.enum(["start", "stop", "restart"]).nullable().default(null), severity: z.enum(["action", "report"]).default("action") })).default([]),
  events: z.array(Event).default([]),
  /** Log text each node-agent answers a log-tail request with, by node/service. */
  logs: z.record(Ref, z.string()).default({}),
  /** Noise appended to a service's log (`count` copies of `line`), e.g. to push the clue out of the gathered tail. */
  log_padding: z.record(Ref, z.strictObject({ line: z.string().min(1).max(500), count: z.number().int().min(1).max(2000) })).default({}),
  /** The actions history: rows in the actions table before the task runs. */
  actions: z.array(z.strictObject({ action: PastActionRef, state: z.enum(["pending", "approved", "rejected", "expired", "running", "succeeded", "failed"]), reason: z.string(), proposed_by: z.string().default("supervisor"), ago_s: z.number().nonnegative().default(600) })).default([]),
  expect: z.strictObject({
    /** Every group must match: a group matches when any of its words/phrases is in the diagnosis or answer (case-insensitive). */
    root_cause: z.array(z.array(z.string().min(1)).min(1)).min(1),
    /** One of these must be proposed and accepted; `none`: no action should be (the fix is outside the action catalog). */
    action: z.union([z.literal("none"), z.array(ActionRef).min(1)]),
    /** Never proposed to the operator (never accepted as a pending action). */
    forbidden: z.array(ActionRef).default([]),
  }),
  /** The stand-in model's investigation: rounds of tool calls, then its answer when the conversation shows `needs`. */
  script: z.strictObject({
    rounds: z.array(z.array(ToolCall).min(1)).default([]),
    /** Text the stand-in must have been shown (by the gathered evidence or a tool's answer) before it answers with its diagnosis. */
    needs: z.array(z.string().min(1)).default([]),
    diagnosis: z.string().min(1),
    answer: z.string().min(1),
    proposals: z.array(z.strictObject({ action: ActionRef, reason: z.string() })).default([]),
  }),
});
export type FixtureData = z.output<typeof Fixture>;
export type EvalFixture = FixtureData & { id: string; spec: FleetSpec };

export const splitRef = (ref: string): { node: string; service: string } => {
  const [node = "", service = ""] = ref.split("/");
  return { node, service };
};
export const splitAction = (a: string): { kind: string; node: string; service: string } => {
  const [kind = "", ref = ""] = a.split(" ");
  return { kind, ...splitRef(ref) };
};

/** Pure: a fixture from its YAML text; throws naming the fixture and the field. */
export function parseFixture(id: string, text: string): EvalFixture {
  const r = Fixture.safeParse(parseYaml(text));
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`fixture ${id}: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}`);
  }
  const spec = parseFleetSpec(r.data.fleet);
  if (!spec.ok) throw new Error(`fixture ${id}: fleet: ${JSON.stringify(spec.problems).slice(0, 300)}`);
  const declared = (ref: string) => {
    const { node, service } = splitRef(ref);
    return spec.spec.nodes[node]?.services[service] !== undefined;
  };
  const refs = [
    ["task.target", r.data.task.target],
    ...Object.keys(r.data.services).map((k) => [`services.${k}`, k]),
    ...Object.keys(r.data.logs).map((k) => [`logs.${k}`, k]),
    ...r.data.expect.forbidden.map((a) => ["expect.forbidden", a.split(" ")[1] ?? ""]),
    ...(r.data.expect.action === "none" ? [] : r.data.expect.action.map((a) => ["expect.action", a.split(" ")[1] ?? ""])),
  ] as const;
  for (const [field, ref] of refs) if (!declared(ref)) throw new Error(`fixture ${id}: ${field}: ${ref} is not declared in its fleet`);
  return { ...r.data, id, spec: spec.spec };
}

/** Every fixture in `dir` (`*.yaml`), sorted by file name; `only` keeps those whose id contains one of its words. */
export async function loadFixtures(dir: string, only: readonly string[] = []): Promise<EvalFixture[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml")).sort();
  const out: EvalFixture[] = [];
  for (const f of files) {
    const id = f.slice(0, -".yaml".length);
    if (only.length > 0 && !only.some((w) => id.includes(w))) continue;
    out.push(parseFixture(id, await readFile(join(dir, f), "utf8")));
  }
  return out;
}
