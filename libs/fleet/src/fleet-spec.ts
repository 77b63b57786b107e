import { readFile } from "node:fs/promises";
import { parseDocument, LineCounter, isMap, isSeq, isScalar, type Node as YamlNode } from "yaml";
import { z } from "zod";

/** How long to wait, e.g. `5s`, `500ms`, `2m`, or a number of milliseconds. */
export const Duration = z
  .union([z.number().int().positive(), z.string().regex(/^\d+(ms|s|m|h)$/, "expected a duration like 500ms, 5s, 2m")])
  .describe("A duration: 500ms, 5s, 2m, 1h, or a number of milliseconds.")
  .transform((v) => (typeof v === "number" ? v : parseDuration(v)));
export type Duration = z.output<typeof Duration>;

export function parseDuration(s: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(s);
  if (!m) throw new Error(`not a duration: ${s}`);
  const n = Number(m[1]);
  switch (m[2]) {
    case "ms": return n;
    case "s": return n * 1000;
    case "m": return n * 60_000;
    default: return n * 3_600_000;
  }
}

const Name = z.string().regex(/^[a-z0-9]([a-z0-9_-]{0,62})$/, "must be lower-case letters, digits, '-' or '_' (max 63)");

const CheckCommon = {
  name: Name.optional(),
  interval: Duration.default(5000),
  timeout: Duration.default(2000),
  retries: z.number().int().min(1).max(100).default(3),
  start_period: z.union([z.literal(0), Duration]).default(0).describe("Time a (re)started service gets to come up: failures before the check first passes within it do not count towards retries (Docker's healthcheck start_period)."),
  /** Services this check goes through (a proxy's check that reaches a dashboard): health-gate edges for the validator. */
  via: z.array(Name).default([]).describe("Services this check goes through (a proxy's check that reaches a dashboard); steward validate counts them as health-gate edges."),
};

export const HttpCheck = z.strictObject({
  type: z.literal("http"),
  url: z.url(),
  expect_status: z.number().int().min(100).max(599).default(200),
  ...CheckCommon,
});
export const TcpCheck = z.strictObject({
  type: z.literal("tcp"),
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number().int().min(1).max(65535),
  ...CheckCommon,
});
export const CommandCheck = z.strictObject({
  type: z.literal("command"),
  command: z.array(z.string().min(1)).min(1, "command needs at least the program"),
  ...CheckCommon,
});
export const HealthCheck = z.discriminatedUnion("type", [HttpCheck, TcpCheck, CommandCheck]);
export type HealthCheck = z.output<typeof HealthCheck>;

/** A secret is referenced, never written inline: `DB_PASSWORD: { secret: db_password }`. */
export const SecretRef = z.strictObject({ secret: Name.describe("Name of a secret declared under secrets:.") }).describe("A reference to a secret; values are never written inline.");
export type SecretRef = z.output<typeof SecretRef>;
export const EnvValue = z.union([z.string(), SecretRef]);
export type EnvValue = z.output<typeof EnvValue>;

/** How a service is rolled out across the nodes that declare it. */
export const DeploySettings = z.strictObject({
  /** Nodes deployed at the same time. */
  max_parallel: z.number().int().min(1).max(100).default(1),
  /** How long to wait for the health gate on each node before rolling that node back. */
  health_timeout: Duration.default(120_000),
});
export type DeploySettings = z.output<typeof DeploySettings>;

/** How fast the service must be healthy again after a restart drill kills it (`steward drill`, docs/drills.md). */
const RecoveryObjective = Duration.optional().describe(
  "How fast the service must be running and healthy again after `steward drill` kills it, e.g. 30s; a drill that takes longer is missed (an alert). Services without one are not drilled.",
);

/** Sensitivity is the operator's declaration, not a task's flag: see the planner's router (docs/planner.md). */
const Sensitive = z.boolean().optional().describe("Its logs, state and diagnoses never leave the house: every planner task touching it is served by the local model only (or the runbooks), whoever filed it.");

export const ProcessService = z.strictObject({
  kind: z.literal("process"),
  command: z.array(z.string().min(1)).min(1, "command needs at least the program"),
  cwd: z.string().min(1).optional(),
  env: z.record(z.string(), EnvValue).default({}),
  /** Off by default: Steward proposes a restart, the operator approves it. */
  restart: z.enum(["never", "on-failure", "always"]).default("never").describe("never (default): Steward proposes a restart and the operator approves it."),
  /** Start when the agent starts. False models "declared but never started". */
  autostart: z.boolean().default(true).describe("Start when the node-agent starts; false declares a service that is not started (shown as missing)."),
  health: z.array(HealthCheck).default([]),
  depends_on: z.array(Name).default([]).describe("Services on the same node that start first (start order)."),
  recovery_objective: RecoveryObjective,
  sensitive: Sensitive,
});
export type ProcessService = z.output<typeof ProcessService>;

/** A Docker Compose stack: compose files from the node's deploy checkout, deployed as one compose project. */
export const ComposeService = z.strictObject({
  kind: z.literal("compose"),
  /** Compose files, relative to the deploy checkout (repo). Only compose files belong here. */
  files: z.array(z.string().min(1)).min(1, "list at least one compose file").describe("Compose files, relative to the deploy checkout. Only compose files; env files go in env_file or a secret store."),
  /** Compose project name; defaults to the service name. */
  project: Name.optional().describe("Compose project name; defaults to the service name."),
  env_file: z.string().min(1).optional(),
  env: z.record(z.string(), EnvValue).default({}),
  autostart: z.boolean().default(true),
  health: z.array(HealthCheck).default([]),
  depends_on: z.array(Name).default([]),
  deploy: DeploySettings.optional(),
  recovery_objective: RecoveryObjective,
  sensitive: Sensitive,
});
export type ComposeService = z.output<typeof ComposeService>;

export const ServiceSpec = z.discriminatedUnion("kind", [ProcessService, ComposeService]);
export type ServiceSpec = z.output<typeof ServiceSpec>;

export const SecretStore = z.discriminatedUnion("type", [
  /** A KEY=value line in an env file on a node (path relative to the deploy checkout, or absolute). */
  z.strictObject({ type: z.literal("env_file"), node: Name, path: z.string().min(1), key: z.string().min(1) }),
  /** A whole file holds the value (e.g. /run/secrets/db_password). */
  z.strictObject({ type: z.literal("file"), node: Name, path: z.string().min(1) }),
  /** The environment of a running service (process or compose container). */
  z.strictObject({ type: z.literal("service_env"), node: Name, service: Name, key: z.string().min(1) }),
]);
export type SecretStore = z.output<typeof SecretStore>;

/**
 * Stable id of a store within its secret, as agents report it and the supervisor matches it: the path
 * and key as declared (not resolved), so the id is the same on every machine that reads the spec.
 * `env_file:stacks/app/.env#DB_PASSWORD`, `file:/run/secrets/db`, `service_env:api#DB_PASSWORD`.
 */
export function secretStoreId(store: SecretStore): string {
  switch (store.type) {
    case "env_file":
      return `env_file:${store.path}#${store.key}`;
    case "file":
      return `file:${store.path}`;
    case "service_env":
      return `service_env:${store.service}#${store.key}`;
    default: {
      const never: never = store;
      return never;
    }
  }
}

export const SecretSpec = z.strictObject({
  description: z.string().optional(),
  /** Every place this secret must be, with the same value. Agents report keyed fingerprints, never values. */
  stores: z.array(SecretStore).min(1, "declare at least one store").describe("Every place this secret must be, with the same value."),
});
export type SecretSpec = z.output<typeof SecretSpec>;

/** The deploy checkout on each node: the git working copy compose files and env files come from. */
export const RepoSpec = z.strictObject({
  path: z.string().min(1),
  remote: z.string().min(1).default("origin"),
  branch: z.string().min(1).default("main"),
});
export type RepoSpec = z.output<typeof RepoSpec>;

export const NodeSpec = z.strictObject({
  description: z.string().optional(),
  /** Overrides `repo.path` for this node. */
  repo_path: z.string().min(1).optional().describe("This node's deploy checkout; overrides repo.path."),
  labels: z.record(z.string(), z.string()).default({}),
  /** Every service on the node counts as sensitive. */
  sensitive: Sensitive,
  services: z.record(Name, ServiceSpec).default({}),
});
export type NodeSpec = z.output<typeof NodeSpec>;

export const FleetSpec = z.strictObject({
  version: z.literal(1).describe("Spec format version; always 1."),
  fleet: z.string().min(1).default("default"),
  repo: RepoSpec.optional().describe("The deploy checkout (git working copy) compose and env files come from on each node."),
  deploy: DeploySettings.default({ max_parallel: 1, health_timeout: 120_000 }),
  secrets: z.record(Name, SecretSpec).default({}),
  nodes: z
    .record(Name, NodeSpec)
    .refine((n) => Object.keys(n).length > 0, "declare at least one node")
    // The refinement above does not reach the JSON Schema; say the same there.
    .meta({ description: "The nodes, by name, each with the services it runs.", minProperties: 1 }),
});
export type FleetSpec = z.output<typeof FleetSpec>;

export interface SpecProblem {
  file: string;
  line?: number;
  /** Dotted path in the document, e.g. `nodes.web1.services.api.command`. */
  path: string;
  message: string;
}

export class FleetSpecError extends Error {
  constructor(readonly file: string, readonly problems: SpecProblem[]) {
    super(`${file}: ${problems.length} problem(s) in fleet spec\n` + problems.map(formatProblem).join("\n"));
    this.name = "FleetSpecError";
  }
}

export function formatProblem(p: SpecProblem): string {
  return `${p.file}:${p.line !== undefined ? `${p.line}:` : ""}${p.path || "(root)"}: ${p.message}`;
}

function pathToString(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p) => String(p)).join(".");
}

/** Finds the line of a path in the YAML document, so CI annotations point at it. */
function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, path: ReadonlyArray<PropertyKey>): number | undefined {
  let node: unknown = doc.contents;
  let last: YamlNode | undefined = doc.contents ?? undefined;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(key));
      if (!pair) break;
      last = (pair.key as YamlNode) ?? last;
      node = pair.value;
      if (node && typeof node === "object" && "range" in node) last = node as YamlNode;
    } else if (isSeq(node) && typeof key === "number") {
      node = node.items[key];
      if (node && typeof node === "object" && "range" in node) last = node as YamlNode;
    } else break;
  }
  const range = last?.range;
  return range ? lc.linePos(range[0]).line : undefined;
}

/** Semantic rules the schema cannot express: dependencies exist and have no cycle. */
export function checkFleetRules(spec: FleetSpec): Omit<SpecProblem, "file">[] {
  const problems: Omit<SpecProblem, "file">[] = [];
  for (const [nodeName, node] of Object.entries(spec.nodes)) {
    for (const [svcName, svc] of Object.entries(node.services)) {
      svc.depends_on.forEach((dep, i) => {
        if (!(dep in node.services)) {
          problems.push({ path: `nodes.${nodeName}.services.${svcName}.depends_on.${i}`, message: `depends on '${dep}', which is not declared on node '${nodeName}'` });
        }
        if (dep === svcName) problems.push({ path: `nodes.${nodeName}.services.${svcName}.depends_on.${i}`, message: "a service cannot depend on itself" });
      });
    }
    const cycle = findCycle(Object.fromEntries(Object.entries(node.services).map(([n, s]) => [n, s.depends_on.filter((d) => d !== n)])));
    if (cycle) problems.push({ path: `nodes.${nodeName}.services`, message: `dependency cycle: ${cycle.join(" -> ")}` });
  }
  return problems;
}

/** Depth-first search; returns the first cycle as a closed path (a -> b -> a). */
export function findCycle(edges: Record<string, string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const m of edges[n] ?? []) {
      if (!(m in edges)) continue;
      const s = state.get(m);
      if (s === 1) return [...stack.slice(stack.indexOf(m)), m];
      if (s === undefined) {
        const c = visit(m);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of Object.keys(edges).sort()) {
    if (!state.has(n)) {
      const c = visit(n);
      if (c) return c;
    }
  }
  return undefined;
}

/** zod reports a bad record key as "Invalid key in record"; say what is wrong with the name instead. */
function issueMessage(iss: z.core.$ZodIssue): string {
  if (iss.code === "invalid_key") return `invalid name: ${iss.issues.map((i) => i.message).join("; ")}`;
  return iss.message;
}

export type ParseResult = { ok: true; spec: FleetSpec } | { ok: false; problems: SpecProblem[] };

/** Pure: parse and validate fleet spec text. Never throws on bad input. */
export function parseFleetSpec(text: string, file = "fleet.yaml"): ParseResult {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ file, line: e.linePos?.[0]?.line, path: "", message: `YAML: ${e.message.split("\n")[0]}` })),
    };
  }
  const raw: unknown = doc.toJS();
  const res = FleetSpec.safeParse(raw);
  if (!res.success) {
    return {
      ok: false,
      problems: res.error.issues.map((iss) => ({ file, line: lineOf(doc, lc, iss.path), path: pathToString(iss.path), message: issueMessage(iss) })),
    };
  }
  const rules = checkFleetRules(res.data);
  if (rules.length > 0) {
    return { ok: false, problems: rules.map((p) => ({ file, line: lineOf(doc, lc, p.path.split(".")), ...p })) };
  }
  return { ok: true, spec: res.data };
}

export async function loadFleetSpec(file: string): Promise<FleetSpec> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new FleetSpecError(file, [{ file, path: "", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]);
  }
  const res = parseFleetSpec(text, file);
  if (!res.ok) throw new FleetSpecError(file, res.problems);
  return res.spec;
}

/** Line lookup for dotted paths in a spec's text (for rules that run after parsing, e.g. the CI validator). */
export function specLineFinder(text: string): (path: string) => number | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  // Numeric segments index sequences (`files.0`); a map key that looks numeric still matches, lineOf compares strings.
  return (path) => lineOf(doc, lc, path === "" ? [] : path.split(".").map((k) => (/^\d+$/.test(k) ? Number(k) : k)));
}
