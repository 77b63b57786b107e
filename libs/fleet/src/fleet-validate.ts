import { LineCounter, isMap, parseDocument } from "yaml";
import { FleetSpec, checkFleetRules, findCycle, specLineFinder, type SpecProblem } from "./fleet-spec.js";

/**
 * The CI validator's rules: what the schema cannot see because it needs the repo around the spec
 * (files exist, compose files are compose files) or the whole fleet at once (placement, secrets only
 * as references, one graph of start-order and health-gate edges without cycles).
 * Pure: the repo is read through the injected `RepoFiles`.
 */

export type RuleId = "schema" | "file_exists" | "compose_file" | "placement" | "secret_inline" | "cycle";

export interface ValidationProblem extends SpecProblem {
  /** `warning` never fails validation (e.g. an env file that is git-ignored, so it is made on the node). */
  severity: "error" | "warning";
  rule: RuleId;
}

export type RepoFileRead =
  | { ok: true; text: string }
  /** `ignored`: git ignores this path, so it is expected to exist only on the node, not in the repo. */
  | { ok: false; reason: "missing" | "not_a_file" | "unreadable"; ignored?: boolean }
  /** The node's deploy checkout is not here to read (reported once by the caller, not for every file). */
  | { ok: false; reason: "no_checkout" };

/** The repo the spec refers to, read relative to the deploy checkout of `node` (the spec's declared repo path). */
export interface RepoFiles {
  read(relPath: string, node: string): RepoFileRead;
}

type RuleProblem = Omit<ValidationProblem, "file" | "line">;

/** Env keys whose values are secrets: they must be `{ secret: name }` references. */
const SECRET_KEY = /(^|_)(PASSWORD|PASSWD|PASSPHRASE|PASS|TOKEN|SECRET|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|SECRET_?KEY|CLIENT_?SECRET|CREDENTIALS?)(_|$)/i;
/** ... unless the key names something about the secret rather than the secret itself. */
const NOT_A_SECRET = /_(FILE|PATH|DIR|TTL|TIMEOUT|URL|HOST|PORT|NAME|USER|USERNAME|LENGTH|EXPIRY|EXPIRES|HEADER|TYPE|ENABLED|ID)$/i;

export function looksLikeSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !NOT_A_SECRET.test(key);
}

/** `postgres://user:pw@host/db`: a URL with a password in it is an inline secret whatever its key. */
export function hasUrlPassword(value: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]*:[^/\s@]+@/i.test(value);
}

/** A path in the repo must be relative and stay inside it. */
function repoRelative(p: string): string | undefined {
  if (p.startsWith("/") || /^[A-Za-z]:[\\/]/.test(p)) return undefined;
  const parts = p.split(/[\\/]+/).filter((s) => s !== "" && s !== ".");
  if (parts.includes("..")) return undefined;
  return parts.join("/");
}

function checkFile(files: RepoFiles, node: string, path: string, declared: string, what: string, opts: { ignoredIsFine: boolean }): RuleProblem | { text: string } | { skipped: true } {
  const rel = repoRelative(declared);
  if (rel === undefined) return { severity: "error", rule: "file_exists", path, message: `${what} '${declared}' must be a path relative to the repo root, inside it` };
  const r = files.read(rel, node);
  if (r.ok) return { text: r.text };
  switch (r.reason) {
    case "no_checkout":
      return { skipped: true };
    case "missing":
      if (r.ignored && opts.ignoredIsFine) {
        return { severity: "warning", rule: "file_exists", path, message: `${what} '${declared}' is not in the repo (git-ignored): it must be created on each node` };
      }
      return { severity: "error", rule: "file_exists", path, message: `${what} '${declared}' does not exist in the repo` };
    case "not_a_file":
      return { severity: "error", rule: "file_exists", path, message: `${what} '${declared}' is not a file` };
    case "unreadable":
      return { severity: "error", rule: "file_exists", path, message: `${what} '${declared}' cannot be read` };
    default: {
      const never: never = r;
      return never;
    }
  }
}

/** Why a file is not a compose file, or undefined if it is one. Never quotes the content: it may be a .env full of secrets. */
export function notComposeReason(text: string): string | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lc });
  if (doc.errors.length > 0) {
    const pos = doc.errors[0]?.pos[0];
    const line = pos !== undefined ? lc.linePos(pos).line : undefined;
    return `it is not valid YAML${line !== undefined ? ` (line ${line})` : ""}`;
  }
  const root = doc.contents;
  if (!isMap(root)) return "it has no top-level 'services:' map (it is not a YAML mapping)";
  const services = root.get("services", true);
  if (!isMap(services)) return "it has no top-level 'services:' map";
  return undefined;
}

function composeHint(file: string): string {
  const base = file.split("/").pop() ?? file;
  if (/^\.env|\.env$/i.test(base)) return "; an env file belongs in env_file or a secret store";
  if (/\.(md|txt|rst)$/i.test(base)) return "; only compose files belong in this list";
  return "";
}

const EDGE_LABEL = { depends_on: "depends_on", via: "health gate" } as const;
type EdgeKind = keyof typeof EDGE_LABEL;
export interface LabeledEdge {
  to: string;
  kind: EdgeKind;
  /** Where the edge is declared, so a problem can point at it. */
  path?: string;
}

/**
 * `findCycle` over labeled edges: the first cycle as the edges that close it, e.g.
 * proxy -[health gate]-> dashboard -[depends_on]-> proxy.
 */
export function findLabeledCycle(edges: Record<string, LabeledEdge[]>): { from: string; to: string; kind: EdgeKind; path?: string }[] | undefined {
  const plain = Object.fromEntries(Object.entries(edges).map(([n, es]) => [n, [...new Set(es.map((e) => e.to))]]));
  const cycle = findCycle(plain);
  if (!cycle) return undefined;
  const out: { from: string; to: string; kind: EdgeKind; path?: string }[] = [];
  for (let i = 0; i + 1 < cycle.length; i++) {
    const from = cycle[i] as string;
    const to = cycle[i + 1] as string;
    // A start-order edge is the stronger statement; show it when both connect the same pair.
    const between = (edges[from] ?? []).filter((e) => e.to === to);
    const edge = between.find((e) => e.kind === "depends_on") ?? between[0];
    out.push({ from, to, kind: edge?.kind ?? "depends_on", ...(edge?.path !== undefined ? { path: edge.path } : {}) });
  }
  return out;
}

export function formatCycle(cycle: { from: string; to: string; kind: EdgeKind }[]): string {
  if (cycle.length === 0) return "";
  return cycle[0]?.from + cycle.map((e) => ` -[${EDGE_LABEL[e.kind]}]-> ${e.to}`).join("");
}

/** The rules over a spec that passed the schema. */
export function checkRepoRules(spec: FleetSpec, files: RepoFiles): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const hasRepo = spec.repo !== undefined;

  // The schema-level rules (depends_on targets exist, no self-dependency). Cycles are reported below, in
  // one graph with the health-gate edges, so a depends_on-only cycle is not reported twice.
  for (const p of checkFleetRules(spec)) {
    if (p.message.startsWith("dependency cycle:")) continue;
    problems.push({ severity: "error", rule: "placement", ...p });
  }

  for (const [nodeName, node] of Object.entries(spec.nodes)) {
    const edges: Record<string, LabeledEdge[]> = {};
    for (const [svcName, svc] of Object.entries(node.services)) {
      const at = `nodes.${nodeName}.services.${svcName}`;
      edges[svcName] = svc.depends_on.flatMap((to, i) => (to !== svcName && to in node.services ? [{ to, kind: "depends_on" as const, path: `${at}.depends_on.${i}` }] : []));
      svc.health.forEach((check, i) => {
        check.via.forEach((v, j) => {
          const path = `${at}.health.${i}.via.${j}`;
          if (v === svcName) problems.push({ severity: "error", rule: "placement", path, message: "a health check cannot go through its own service" });
          else if (!(v in node.services)) problems.push({ severity: "error", rule: "placement", path, message: `health check goes through '${v}', which is not declared on node '${nodeName}'` });
          else edges[svcName]?.push({ to: v, kind: "via", path });
        });
      });

      for (const [key, value] of Object.entries(svc.env)) {
        if (typeof value === "string") {
          if (looksLikeSecretKey(key)) {
            problems.push({ severity: "error", rule: "secret_inline", path: `${at}.env.${key}`, message: `'${key}' looks like a secret and has an inline value; reference it instead: ${key}: { secret: <name> } (the value is not shown)` });
          } else if (hasUrlPassword(value)) {
            problems.push({ severity: "error", rule: "secret_inline", path: `${at}.env.${key}`, message: `'${key}' is a URL with an inline password; put the whole value in a secret and reference it: ${key}: { secret: <name> } (the value is not shown)` });
          }
        } else if (!(value.secret in spec.secrets)) {
          problems.push({ severity: "error", rule: "placement", path: `${at}.env.${key}`, message: `references secret '${value.secret}', which is not declared under 'secrets'` });
        }
      }

      if (svc.kind === "compose") {
        if (!hasRepo && node.repo_path === undefined) {
          problems.push({ severity: "error", rule: "placement", path: `${at}.files`, message: `compose files come from the node's deploy checkout: declare 'repo' (or nodes.${nodeName}.repo_path)` });
        }
        const seen = new Set<string>();
        svc.files.forEach((f, i) => {
          const path = `${at}.files.${i}`;
          if (seen.has(f)) problems.push({ severity: "error", rule: "compose_file", path, message: `'${f}' is listed twice` });
          seen.add(f);
          const r = checkFile(files, nodeName, path, f, "compose file", { ignoredIsFine: false });
          if ("skipped" in r) return;
          if (!("text" in r)) return void problems.push(r);
          const why = notComposeReason(r.text);
          if (why) problems.push({ severity: "error", rule: "compose_file", path, message: `'${f}' is not a compose file: ${why}${composeHint(f)}` });
        });
        if (svc.env_file !== undefined) {
          const r = checkFile(files, nodeName, `${at}.env_file`, svc.env_file, "env file", { ignoredIsFine: true });
          if (!("text" in r) && !("skipped" in r)) problems.push(r);
        }
      }
    }
    const cycle = findLabeledCycle(edges);
    if (cycle && cycle[0]) {
      problems.push({
        severity: "error",
        rule: "cycle",
        path: cycle[0].path ?? `nodes.${nodeName}.services.${cycle[0].from}`,
        message: `cycle in start order and health gates on node '${nodeName}': ${formatCycle(cycle)} (none of them can ever become ready)`,
      });
    }
  }

  for (const [secretName, secret] of Object.entries(spec.secrets)) {
    secret.stores.forEach((store, i) => {
      const path = `secrets.${secretName}.stores.${i}`;
      const node = spec.nodes[store.node];
      if (!node) {
        problems.push({ severity: "error", rule: "placement", path: `${path}.node`, message: `store is on node '${store.node}', which is not declared under 'nodes'` });
        return;
      }
      if (store.type === "service_env" && !(store.service in node.services)) {
        problems.push({ severity: "error", rule: "placement", path: `${path}.service`, message: `store is the environment of '${store.service}', which is not declared on node '${store.node}'` });
      }
      if (store.type === "env_file" && repoRelative(store.path) !== undefined) {
        const r = checkFile(files, store.node, `${path}.path`, store.path, "env file", { ignoredIsFine: true });
        if (!("text" in r) && !("skipped" in r)) problems.push(r);
      }
    });
  }
  return problems;
}

export interface FleetValidation {
  ok: boolean;
  /** The parsed spec when it passed the schema (even if other rules failed). */
  spec?: FleetSpec;
  problems: ValidationProblem[];
}

/** Validates fleet spec text against the schema and every repo rule. `ok` is false only on errors, not warnings. */
export function validateFleetSpec(text: string, file: string, files: RepoFiles): FleetValidation {
  const lineOf = specLineFinder(text);
  const lc = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter: lc });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ file, line: lc.linePos(e.pos[0]).line, path: "", message: `YAML: ${e.message.split("\n")[0]}`, severity: "error", rule: "schema" })),
    };
  }
  const parsed = FleetSpec.safeParse(doc.toJS());
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((iss) => {
        const path = iss.path.map(String).join(".");
        const message = iss.code === "invalid_key" ? `invalid name: ${iss.issues.map((i) => i.message).join("; ")}` : iss.message;
        return { file, line: lineOf(path), path, message, severity: "error", rule: "schema" };
      }),
    };
  }
  const problems = checkRepoRules(parsed.data, files)
    .map((p) => ({ file, line: lineOf(p.path), ...p }))
    // In file order, as an editor shows them; stable for problems on the same line.
    .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
  return { ok: !problems.some((p) => p.severity === "error"), spec: parsed.data, problems };
}
