import { execFile } from "node:child_process";
import { basename, dirname } from "node:path";
import { z } from "zod";
import { redactSecretsInText } from "@steward/platform/redact";
import type { ActionQueries } from "@steward/actions/repository";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { SimilarIncident } from "@steward/contracts/incident";
import type { ToolSpec } from "./backends.js";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { PastIncidentsArgs, renderPastIncidents } from "./incidents/similar.js";
import { diffSpecs, renderSpecChanges } from "./spec-diff.js";
import { specExcerpt, stripSecrets, summarize, type EventSummary, type EvidenceSources } from "./evidence.js";

/**
 * The investigation's read-only tools. Each is one entry of `TOOLS`: a name, a description for the model, a zod
 * schema of its arguments (the JSON schema both APIs see is derived from it), what it reads (for sensitivity) and
 * how it reads it. The runner (`runTool`) validates the arguments, checks the node and service are declared, bounds
 * the time and the output, and redacts it; a tool itself never writes anything.
 */

/** What a tool may read through: the planner's own evidence sources and the actions repository (reads only). */
export interface ToolContext {
  sources: EvidenceSources;
  actions: Pick<ActionQueries, "listForService">;
  spec: FleetSpec;
  now: Date;
  eventsWindowMs: number;
  /** Bytes of log a log search reads from the node-agent (its tail). */
  logBytes: number;
  /** Aborted when the tool's time is up: a tool that can stop early should. */
  signal: AbortSignal;
}

/** What one call reads: a node, and a service on it when the tool is about one. Sensitivity is decided from it. */
export interface Reads {
  node: string;
  service?: string;
}

export interface ToolDef<A = unknown> {
  name: string;
  description: string;
  args: z.ZodType<A>;
  /** The node and services a call reads (the spec is there for tools that follow dependencies). */
  reads(args: A, spec: FleetSpec): Reads[];
  /** The answer: text, or a JSON-able value (serialized for the model). */
  run(args: A, ctx: ToolContext): Promise<unknown>;
}

/** Lets a typed tool stand in a list of tools. */
export const defineTool = <A>(t: ToolDef<A>): ToolDef => t as unknown as ToolDef;

const name63 = z.string().min(1).max(63);
const nodeService = { node: name63.describe("node name from the fleet spec"), service: name63.describe("service name on that node") };

const minutesAgo = (what: string) => z.number().int().min(0).max(10_080).optional().describe(`${what} this many minutes ago (compose services only: their lines carry the engine's timestamps)`);

const serviceLogs = defineTool({
  name: "service_logs",
  description:
    "Read the end of a service's log from its node-agent: the last `tail` lines, only lines containing `grep` (case-insensitive text, not a regex) when given. For a compose service, its containers' logs merged by time, each line starting with its timestamp (and the compose service when the stack has several); `since_minutes`/`until_minutes` pick a time range (compose only).",
  args: z
    .strictObject({
      ...nodeService,
      grep: z.string().min(1).max(200).optional().describe("keep only lines containing this text"),
      tail: z.number().int().min(1).max(200).optional().describe("how many lines (default 50)"),
      since_minutes: minutesAgo("only lines logged since"),
      until_minutes: minutesAgo("only lines logged until"),
    })
    .refine((a) => a.since_minutes === undefined || a.until_minutes === undefined || a.until_minutes <= a.since_minutes, { message: "until_minutes must be at most since_minutes (both count back from now)", path: ["until_minutes"] }),
  reads: (a) => [{ node: a.node, service: a.service }],
  async run(a, ctx) {
    const at = (m: number | undefined) => (m === undefined ? undefined : new Date(ctx.now.getTime() - m * 60_000).toISOString());
    const range = { ...(a.since_minutes !== undefined ? { since: at(a.since_minutes) } : {}), ...(a.until_minutes !== undefined ? { until: at(a.until_minutes) } : {}) };
    const r = await ctx.sources.logTail(a.node, a.service, ctx.logBytes, Object.keys(range).length ? range : undefined);
    if (!r.ok) throw new ToolError(`no log: ${r.code}: ${r.message}`);
    let lines = r.text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    if (a.grep) {
      const needle = a.grep.toLowerCase();
      lines = lines.filter((l) => l.toLowerCase().includes(needle));
    }
    const tail = a.tail ?? 50;
    const shown = lines.slice(-tail);
    const head = `${shown.length} line(s)${a.grep ? ` containing "${a.grep}"` : ""} of the last ${r.bytes} bytes of the log${r.truncated ? " (older lines not read)" : ""}${lines.length > shown.length ? `, ${lines.length - shown.length} earlier matching line(s) left out` : ""}:`;
    return `${head}\n${shown.join("\n")}`;
  },
});

const serviceEvents = defineTool({
  name: "service_events",
  description: "A service's recent events from the event stream (state changes, exits with their codes, health-check results), oldest first, with counts by state.",
  args: z.strictObject({ ...nodeService, since_minutes: z.number().int().min(1).max(10_080).optional().describe("how far back (default: the planner's events window)"), limit: z.number().int().min(1).max(100).optional().describe("at most this many events (default 30)") }),
  reads: (a) => [{ node: a.node, service: a.service }],
  async run(a, ctx) {
    const since = ctx.now.getTime() - (a.since_minutes !== undefined ? a.since_minutes * 60_000 : ctx.eventsWindowMs);
    const events = await ctx.sources.events(a.node, since, 2000);
    const mine = events.map(summarize).filter((e): e is EventSummary => e !== undefined && e.service === a.service);
    const states: Record<string, number> = {};
    for (const e of mine) if (e.type === "service" && e.state) states[e.state] = (states[e.state] ?? 0) + 1;
    const failedChecks = mine.filter((e) => e.type === "health_check" && e.ok === false).length;
    return { since: new Date(since).toISOString(), events_seen: mine.length, service_states_seen: states, failed_checks: failedChecks, events: mine.slice(-(a.limit ?? 30)) };
  },
});

const recentActions = defineTool({
  name: "recent_actions",
  description: "The newest actions on a service (proposed, approved, run, failed, rejected, expired) with who proposed them and their outcome.",
  args: z.strictObject({ ...nodeService, limit: z.number().int().min(1).max(20).optional().describe("at most this many (default 10)") }),
  reads: (a) => [{ node: a.node, service: a.service }],
  async run(a, ctx) {
    const list = await ctx.actions.listForService(a.node, a.service, a.limit ?? 10);
    if (list.length === 0) return "no actions on this service";
    return list.map((x) => ({ kind: x.kind, state: x.state, proposed_by: x.proposed_by, created_at: x.created_at, updated_at: x.updated_at, reason: x.reason.slice(0, 300), result: x.result?.slice(0, 300) ?? null }));
  },
});

const serviceSpec = defineTool({
  name: "service_spec",
  description: "The declared spec of a service (kind, command or compose files, health checks, depends_on; never env or secrets), its state and health, and the state and health of the services it depends on and of those that depend on it.",
  args: z.strictObject(nodeService),
  reads: (a, spec) => [{ node: a.node, service: a.service }, ...(spec.nodes[a.node]?.services[a.service]?.depends_on ?? []).map((d) => ({ node: a.node, service: d }))],
  async run(a, ctx) {
    const svc = ctx.spec.nodes[a.node]?.services[a.service];
    if (!svc) throw new ToolError(`${a.service} is not declared on ${a.node}`);
    const dependents = Object.entries(ctx.spec.nodes[a.node]?.services ?? {})
      .filter(([, s]) => s.depends_on.includes(a.service))
      .map(([n]) => n);
    let nodeState: Awaited<ReturnType<EvidenceSources["world"]>> | undefined;
    let worldNote: string | null = null;
    try {
      nodeState = await ctx.sources.world([a.node]);
      if (!nodeState) worldNote = "no world snapshot yet";
    } catch (err) {
      worldNote = `world state unreadable: ${(err as Error).message.slice(0, 200)}`;
    }
    const n = nodeState?.world.nodes[a.node];
    const observed = (service: string) => {
      if (!n) return worldNote ?? `node ${a.node} has never reported`;
      const s = n.services[service];
      if (!s) return "not running (no record)";
      return { state: s.state, health: s.health, exit_code: s.exit_code ?? null, starts: s.starts, since: s.since, node_status: n.status, failing_checks: Object.entries(s.checks).filter(([, c]) => !c.ok).map(([k, c]) => `${k}: ${c.detail?.slice(0, 200) ?? "failing"}`) };
    };
    return {
      spec: specExcerpt(svc),
      observed: observed(a.service),
      depends_on: Object.fromEntries(svc.depends_on.map((d) => [d, ctx.spec.nodes[a.node]?.services[d] ? observed(d) : "not declared on this node"])),
      depended_on_by: Object.fromEntries(dependents.map((d) => [d, observed(d)])),
    };
  },
});

type ReportedNode = NonNullable<Awaited<ReturnType<EvidenceSources["world"]>>>["world"]["nodes"][string];

/** A tool about a node as a whole (not one of its services): what its agent last reported, or that it never has. */
function nodeReportTool(t: { name: string; description: string; answer: (n: ReportedNode) => unknown }): ToolDef {
  return defineTool({
    name: t.name,
    description: t.description,
    args: z.strictObject({ node: nodeService.node }),
    reads: (a) => [{ node: a.node }],
    async run(a, ctx) {
      const n = (await ctx.sources.world([a.node]))?.world.nodes[a.node];
      return n ? t.answer(n) : `node ${a.node} has never reported`;
    },
  });
}

const hostMetrics = nodeReportTool({
  name: "host_metrics",
  description: "A node's host metrics as its agent last reported them (load, memory used, disks used and free), and whether the node is up or stale.",
  answer: (n) => ({ node_status: n.status, last_heartbeat: n.last_heartbeat, host: n.host ?? "no host metrics reported by this node" }),
});

const containerInspect = defineTool({
  name: "container_inspect",
  description:
    "A compose service's containers as the node's Docker Engine describes them: image, created/started/finished, status, restart count, exit code, OOMKilled, the engine's error, health status with the last health-check results, ports, mounts (paths) and env variable names (never values). Compose services only.",
  args: z.strictObject(nodeService),
  reads: (a) => [{ node: a.node, service: a.service }],
  async run(a, ctx) {
    const kind = ctx.spec.nodes[a.node]?.services[a.service]?.kind;
    if (kind !== "compose") throw new ToolError(`${a.service} on ${a.node} is a ${kind ?? "undeclared"} service, not a compose service: it has no containers (service_spec and service_events tell its state)`);
    const r = await ctx.sources.containerInspect(a.node, a.service);
    if (!r.ok) throw new ToolError(`no container state: ${r.code}: ${r.message}`);
    if (r.containers.length === 0) return `compose project ${r.project} has no containers`;
    return { project: r.project, containers: r.containers, ...(r.total > r.containers.length ? { not_shown: r.total - r.containers.length } : {}) };
  },
});

const deployCheckout = nodeReportTool({
  name: "deploy_checkout",
  description: "The git state of a node's deploy checkout as its agent last reported it: branch, head, commits behind/ahead, dirty files, untracked files that would block a pull.",
  answer: (n) => n.repo ?? "this node reports no deploy checkout",
});

/**
 * Every tool the investigation offers, in the order the model sees them. Adding a tool is one entry here (or one
 * entry of `PlannerDeps.tools` for a tool whose reader lives elsewhere).
 */
export const TOOLS: readonly ToolDef[] = [serviceLogs, serviceEvents, recentActions, serviceSpec, containerInspect, hostMetrics, deployCheckout];

/**
 * `past_incidents`: incidents like this one (same service and failure signature, then similar words in titles,
 * diagnoses and post-mortems) and how each ended, from the planner's incident memory. Incidents of a sensitive service
 * or node are left out unless the call names that service itself (then the read keeps the task local).
 */
export function pastIncidentsTool(similar: (q: PastIncidentsArgs) => Promise<SimilarIncident[]>): ToolDef {
  return defineTool({
    name: "past_incidents",
    description: "Past incidents like this one (the same service and failure signature, e.g. down:exit=3, first; then similar words in their titles, diagnoses and post-mortems), each with how it ended and what was diagnosed: what fixed it before. With only a service, its own past incidents.",
    args: PastIncidentsArgs,
    reads: (a, spec) => (a.node ? [{ node: a.node, ...(a.service ? { service: a.service } : {}) }] : a.service ? Object.entries(spec.nodes).filter(([, n]) => n.services[a.service ?? ""]).map(([node]) => ({ node, service: a.service })) : []),
    async run(a, ctx) {
      // Without a signature or words, the service's own past incidents: its name is in every one of their titles.
      const found = await similar(a.signature === undefined && a.text === undefined && a.service ? { ...a, text: a.service } : a);
      const named = (i: SimilarIncident) => i.service === a.service && (a.node === undefined || i.node === a.node);
      const sensitive = (i: SimilarIncident) => ctx.spec.nodes[i.node]?.sensitive === true || ctx.spec.nodes[i.node]?.services[i.service]?.sensitive === true;
      const shown = found.filter((i) => named(i) || !sensitive(i));
      const left = found.length - shown.length;
      return `${renderPastIncidents(shown, 4000)}${left > 0 ? `\n(${left} incident(s) of sensitive services left out)` : ""}`;
    },
  });
}

/**
 * `fleet_git_log`: the fleet repo's recent commits (the checkout FLEET_SPEC is in), with the files each changed. No
 * diffs: a change to fleet.yaml can hold env values, which never reach a model. Needs `git` where the planner runs.
 */
export function fleetGitLogTool(fleetSpecPath: string): ToolDef {
  const dir = dirname(fleetSpecPath);
  return defineTool({
    name: "fleet_git_log",
    description: "Recent commits of the fleet repo (the declared spec's history): hash, date, author, subject and the files each changed, newest first; optionally only commits touching `path`. Diffs are not shown: fleet_spec_diff shows what a commit changed in the declared spec.",
    args: z.strictObject({
      path: z
        .string()
        .regex(/^[A-Za-z0-9._/-]{1,200}$/, "must be a relative path of letters, digits, '.', '_', '-' and '/'")
        .refine((p) => !p.startsWith("-") && !p.startsWith("/") && !p.split("/").includes(".."), "must be a relative path inside the repo")
        .optional()
        .describe("only commits touching this path (relative to the repo)"),
      limit: z.number().int().min(1).max(30).optional().describe("at most this many commits (default 10)"),
    }),
    reads: () => [],
    async run(a, ctx) {
      const out = await git(dir, ["log", "--no-color", "--no-ext-diff", `-n${a.limit ?? 10}`, "--date=iso-strict", "--format=%h %ad %an: %s", "--name-status", "--", ...(a.path ? [a.path] : [])], ctx.signal);
      return out.trim() === "" ? "no commits" : out;
    },
  });
}

/** Runs one read-only git command in the fleet repo; its failure is the tool's error, in one short line. */
function git(dir: string, args: readonly string[], signal: AbortSignal): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile("git", ["-c", `safe.directory=${dir}`, "-C", dir, ...args], { signal, timeout: 10_000, killSignal: "SIGKILL", maxBuffer: 4 * 1024 * 1024, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C" } }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException;
      reject(new ToolError(e.code === "ENOENT" ? "git is not installed where the planner runs" : `git ${args[0]} failed: ${String(stderr || e.message).trim().split("\n").slice(-2).join(" ").slice(0, 300)}`));
    });
  });
}

const commitRef = z.string().regex(/^[0-9a-f]{4,40}$/, "must be a commit hash (4 to 40 hex digits, as fleet_git_log shows)");

/**
 * `fleet_spec_diff`: what one commit of the fleet repo changed in the declared spec (the FLEET_SPEC file), as a
 * structural diff of the parsed specs with env and secret values hidden (spec-diff.ts), never as a text diff.
 */
export function fleetSpecDiffTool(fleetSpecPath: string): ToolDef {
  const dir = dirname(fleetSpecPath);
  return defineTool({
    name: "fleet_spec_diff",
    description:
      "What a commit of the fleet repo changed in the declared spec: one line per changed field (`~ path: before -> after`, `+ path: value`, `- path`), env and secret values hidden. `commit` as fleet_git_log shows it; compared with its parent unless `against` names another commit.",
    args: z.strictObject({ commit: commitRef.describe("the commit to look at"), against: commitRef.optional().describe("compare with this commit instead of the parent") }),
    reads: () => [],
    async run(a, ctx) {
      const file = (await git(dir, ["ls-files", "--full-name", "--", basename(fleetSpecPath)], ctx.signal)).trim().split("\n")[0];
      if (!file) throw new ToolError("the fleet spec is not tracked in a git repo");
      // The file missing at a commit, or the parent of the first commit, is an empty spec: everything was added.
      const missing = (rev: string) => (rev.endsWith("^") ? /does not exist|exists on disk, but not in|invalid object name|unknown revision|bad revision/ : /does not exist|exists on disk, but not in/);
      const at = async (rev: string): Promise<{ ok: true; spec: unknown } | { ok: false; why: string }> => {
        const text = await git(dir, ["show", `${rev}:${file}`], ctx.signal).catch((err: Error) => (missing(rev).test(err.message) ? "" : Promise.reject(err)));
        if (text === "") return { ok: true, spec: {} };
        const parsed = parseFleetSpec(text, file);
        return parsed.ok ? { ok: true, spec: parsed.spec } : { ok: false, why: `${file} at ${rev} is not a valid spec: ${parsed.problems[0]?.message ?? "invalid"}` };
      };
      const base = a.against ?? `${a.commit}^`;
      const [before, after] = await Promise.all([at(base), at(a.commit)]);
      if (!before.ok) return before.why;
      if (!after.ok) return after.why;
      return renderSpecChanges(diffSpecs(before.spec, after.spec));
    },
  });
}

/** A tool's own refusal (no log, not declared): shown to the model as the tool's error, not an outage. */
export class ToolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ToolError";
  }
}

/** The tools as both APIs take them: the JSON schema of each tool's arguments, derived from its zod schema. */
export function toolSpecs(tools: readonly ToolDef[]): ToolSpec[] {
  return tools.map((t) => {
    const { $schema: _drop, ...parameters } = z.toJSONSchema(t.args, { target: "draft-7", io: "input" }) as Record<string, unknown>;
    return { name: t.name, description: t.description, parameters };
  });
}

export type CheckedCall = { ok: true; tool: ToolDef; args: unknown } | { ok: false; reason: string };

/** Pure: whether a call names a tool and its arguments are that tool's (zod). Never throws. */
export function checkCall(tools: readonly ToolDef[], name: string, input: unknown): CheckedCall {
  const tool = tools.find((t) => t.name === name);
  if (!tool) return { ok: false, reason: `there is no tool '${String(name).slice(0, 60)}' (tools: ${tools.map((t) => t.name).join(", ")})` };
  const r = tool.args.safeParse(input ?? {});
  if (!r.success) {
    const i = r.error.issues[0];
    return { ok: false, reason: `the arguments of ${tool.name} are invalid: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}` };
  }
  return { ok: true, tool, args: r.data };
}

/** Pure: a call's node and service must be declared in the spec (a tool reads nothing the fleet does not declare). */
export function undeclared(reads: readonly Reads[], spec: FleetSpec): string | null {
  for (const r of reads) {
    if (!spec.nodes[r.node]) return `node '${r.node}' is not declared in the fleet spec (nodes: ${Object.keys(spec.nodes).slice(0, 20).join(", ")})`;
    if (r.service !== undefined && !spec.nodes[r.node]?.services[r.service]) return `service '${r.service}' is not declared on node '${r.node}' (services: ${Object.keys(spec.nodes[r.node]?.services ?? {}).slice(0, 30).join(", ")})`;
  }
  return null;
}

export type ToolResult = { ok: true; text: string; chars: number; truncated: boolean } | { ok: false; kind: "error" | "timeout"; text: string };

/** Redacted and bounded: JSON-able answers are stripped of secret-looking keys first, then every string is cut to `maxChars`. */
export function renderToolOutput(value: unknown, maxChars: number): { text: string; chars: number; truncated: boolean } {
  const raw = typeof value === "string" ? redactSecretsInText(value) : JSON.stringify(stripSecrets(value), null, 1);
  const text = redactSecretsInText(raw);
  if (text.length <= maxChars) return { text, chars: text.length, truncated: false };
  return { text: `${text.slice(0, Math.max(0, maxChars - 40))}\n…(cut at ${maxChars} characters)`, chars: text.length, truncated: true };
}

const TIMED_OUT = Symbol("timed out");

/**
 * Runs one checked call under its time limit. A tool that hangs is abandoned when its time is up (its signal aborted,
 * whatever it still does later is dropped), so it never holds the worker.
 */
export async function runTool(tool: ToolDef, args: unknown, ctx: Omit<ToolContext, "signal">, opts: { timeoutMs: number; maxChars: number }): Promise<ToolResult> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => {
      ac.abort();
      resolve(TIMED_OUT);
    }, opts.timeoutMs);
  });
  const work = Promise.resolve().then(() => tool.run(args, { ...ctx, signal: ac.signal }));
  // An abandoned call may still fail later: nobody waits for it, so its failure must not become an unhandled rejection.
  work.catch(() => undefined);
  try {
    const v = await Promise.race([work, timedOut]);
    if (v === TIMED_OUT) return { ok: false, kind: "timeout", text: `the tool did not answer within ${opts.timeoutMs} ms (abandoned)` };
    return { ok: true, ...renderToolOutput(v, opts.maxChars) };
  } catch (err) {
    const msg = redactSecretsInText((err as Error).message ?? String(err)).slice(0, 300);
    return { ok: false, kind: "error", text: err instanceof ToolError ? msg : `the tool failed: ${msg}` };
  } finally {
    clearTimeout(timer);
  }
}

/** Every tool of the investigation, in the order the model sees them: the fixed ones, then those reading the fleet repo and the incident memory. */
export function investigationTools(fleetSpecPath: string, similar: (q: PastIncidentsArgs) => Promise<SimilarIncident[]>): ToolDef[] {
  return [...TOOLS, fleetGitLogTool(fleetSpecPath), fleetSpecDiffTool(fleetSpecPath), pastIncidentsTool(similar)];
}
