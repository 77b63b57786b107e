import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { checkComposeSubset, locateComposeMessage, locateVariable, yamlProblems, type ComposeFileText, type ComposeProblem } from "@steward/fleet/compose-check";
import { formatProblem, specLineFinder, type FleetSpec } from "@steward/fleet/fleet-spec";
import { validateFleetSpec, type RepoFileRead, type RepoFiles, type ValidationProblem } from "@steward/fleet/fleet-validate";
// Types only: the module itself is loaded when a stack is checked (it is not needed for anything else).
import type * as ComposeCli from "@steward/node-agent/compose-cli";
import { VALIDATE, type Io } from "../command-table.js";
import { parseFlags } from "../parse.js";

export interface ValidateResult {
  file: string;
  ok: boolean;
  problems: ValidationProblem[];
}

export type ValidateFormat = "text" | "github";

/** Whether git ignores `rel` in the repo at `root` (false when it is not a git repo or git is missing). */
function gitIgnores(root: string, rel: string): boolean {
  try {
    execFileSync("git", ["-C", root, "check-ignore", "-q", "--no-index", "--", rel], { stdio: "ignore", timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/** The deploy checkouts on disk, for the pure rules: a node's files are read relative to its root (undefined: not here). */
export function repoOnDisk(rootOf: (node: string) => string | undefined): RepoFiles {
  return {
    read(rel, node): RepoFileRead {
      const root = rootOf(node);
      if (root === undefined) return { ok: false, reason: "no_checkout" };
      const abs = join(root, rel);
      try {
        if (!statSync(abs).isFile()) return { ok: false, reason: "not_a_file" };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return { ok: false, reason: "missing", ignored: gitIgnores(root, rel) };
        return { ok: false, reason: "unreadable" };
      }
      try {
        return { ok: true, text: readFileSync(abs, "utf8") };
      } catch {
        return { ok: false, reason: "unreadable" };
      }
    },
  };
}

/** Which applier the nodes deploy with, as the node-agent's COMPOSE_APPLY says it (`auto`: Compose where found). */
export type ComposeApply = "auto" | "cli" | "engine-api";

/** Where a node's deploy checkout is declared in the spec, and what it says. */
function declaredCheckout(spec: FleetSpec, node: string): { path: string; at: string } {
  const n = spec.nodes[node];
  if (n?.repo_path !== undefined) return { path: n.repo_path, at: `nodes.${node}.repo_path` };
  if (spec.repo) return { path: spec.repo.path, at: "repo.path" };
  return { path: ".", at: `nodes.${node}` };
}

/**
 * Pure: each node's deploy checkout here. `--repo DIR` names it for every node; otherwise the spec's declared repo
 * path (`nodes.<node>.repo_path`, else `repo.path`) resolved against the spec's directory, as the node-agent does.
 */
export function checkoutRoots(spec: FleetSpec, specFile: string, repoDir: string | undefined): Record<string, { root: string; declared: string; at: string }> {
  const out: Record<string, { root: string; declared: string; at: string }> = {};
  for (const node of Object.keys(spec.nodes)) {
    const d = declaredCheckout(spec, node);
    out[node] = repoDir !== undefined ? { root: resolve(repoDir), declared: repoDir, at: d.at } : { root: resolve(dirname(specFile), d.path), declared: d.path, at: d.at };
  }
  return out;
}

const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** A path to show: relative to the working directory when inside it. */
const shown = (abs: string): string => {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
};

/** Pure: `KEY=value` values of an env file, to keep them out of Compose's messages (a `.env` may hold secrets). */
function envFileValues(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/^\s*export\s+/, "")).filter((l) => /^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(l)).map((l) => l.slice(l.indexOf("=") + 1).trim().replace(/^(['"])(.*)\1$/, "$2"));
}

interface StackFiles {
  at: string;
  name: string;
  root: string;
  files: string[];
  envFile: string | undefined;
}

/**
 * Each compose stack of a spec, checked file by file. With a Compose binary: Compose's own `config -q` (the real
 * parser: interpolation, networks, every key), its message placed on the line of the file it names. Without one: the
 * files against what Steward's Engine-API applier applies (`checkComposeSubset`), so nothing is skipped unsaid. With
 * `engine-api` the nodes have no Compose: both, and what the applier cannot apply is an error.
 */
export async function composeConfigProblems(
  spec: FleetSpec,
  specText: string,
  file: string,
  roots: Record<string, { root: string }>,
  skip: (path: string) => boolean,
  apply: ComposeApply = "auto",
  findCli: typeof detectComposeLazy = detectComposeLazy,
): Promise<ValidationProblem[]> {
  const stacks: StackFiles[] = [];
  const problems: ValidationProblem[] = [];
  const seen = new Set<string>();
  for (const [nodeName, node] of Object.entries(spec.nodes)) {
    const root = roots[nodeName]?.root;
    if (root === undefined || !isDir(root)) continue;
    for (const [name, svc] of Object.entries(node.services)) {
      if (svc.kind !== "compose") continue;
      const at = `nodes.${nodeName}.services.${name}`;
      const key = JSON.stringify([root, svc.files, svc.env_file ?? null]);
      if (seen.has(key)) continue;
      seen.add(key);
      if (skip(at)) {
        // The spec's rule already named the file; a YAML error also gets its own line in that file.
        for (const f of svc.files) {
          const abs = join(root, f);
          let text: string;
          try {
            text = readFileSync(abs, "utf8");
          } catch {
            continue;
          }
          problems.push(...yamlProblems({ path: shown(abs), text }).map((p) => ({ ...p, rule: "compose_file" as const })));
        }
        continue;
      }
      stacks.push({ at, name: svc.project ?? name, root, files: svc.files, envFile: svc.env_file });
    }
  }
  if (stacks.length === 0) return problems;
  const cli = await findCli();
  const lineOf = specLineFinder(specText);
  const asProblem = (p: ComposeProblem): ValidationProblem => ({ ...p, rule: "compose_file" });
  for (const st of stacks) {
    const texts: ComposeFileText[] = st.files.map((f) => {
      const abs = join(st.root, f);
      return { path: shown(abs), text: readFileSync(abs, "utf8") };
    });
    if (!cli.found || apply === "engine-api") {
      // No Compose here: said per key what could not be checked. engine-api: the nodes deploy this subset only.
      const unapplied = apply === "cli" ? "warning" : "error";
      for (const t of texts) problems.push(...checkComposeSubset(t, { unapplied }).map(asProblem));
    }
    if (!cli.found) continue;
    const first = st.files[0] as string;
    const envPath = st.envFile ? join(st.root, st.envFile) : undefined;
    let envText = "";
    try {
      if (envPath) envText = readFileSync(envPath, "utf8");
    } catch {
      // git-ignored and made on the node: Compose warns about the variables it cannot interpolate, nothing fails
    }
    const { composeArgs, redactedTail, runProgram } = cli.mod;
    const { file: bin, args } = composeArgs(cli.cli, st.name, dirname(join(st.root, first)), st.files.map((f) => join(st.root, f)), envText ? (envPath as string) : null, ["config", "-q"]);
    const r = await runProgram(bin, args, { env: process.env, cwd: st.root, timeoutMs: 60_000 });
    const said = redactedTail(r.stderr || r.stdout, envFileValues(envText), 1200);
    if (r.code === 0) {
      for (const m of said.matchAll(/The (\w+) variable is not set/g)) {
        const where = locateVariable(m[1] as string, texts);
        problems.push({ file: where?.file ?? file, ...(where ? { line: where.line } : { line: lineOf(`${st.at}.files`) }), path: where ? "" : `${st.at}.files`, severity: "warning", rule: "compose_file", message: `\${${m[1]}} is not set (not in the stack's env file): ${cli.cli.label} uses an empty string` });
      }
      continue;
    }
    const lines = said.split("\n").filter((l) => l.trim() && !/^(WARNING|The \w+ variable is not set)/.test(l.trim()));
    const msg = lines.slice(0, 4).join(" / ") || `exit ${r.code}`;
    const where = locateComposeMessage(lines.join("\n"), texts);
    if (where) problems.push({ file: where.file, ...(where.line !== undefined ? { line: where.line } : {}), path: where.path, severity: "error", rule: "compose_file", message: `${cli.cli.label} config: ${msg}` });
    else {
      const path = `${st.at}.files`;
      problems.push({ file, line: lineOf(path), path, severity: "error", rule: "compose_file", message: `${cli.cli.label} config refuses the stack: ${msg}` });
    }
  }
  // Each file's problems in line order, as an editor shows them.
  return problems.map((p, i) => ({ p, i })).sort((a, b) => (a.p.file === b.p.file ? (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i : 0)).map((x) => x.p);
}

type ComposeCliModule = typeof ComposeCli;

/** The Compose binary here, if any (the node-agent's detection: docker compose v2, else docker-compose v1). */
export async function detectComposeLazy(): Promise<{ found: false } | { found: true; cli: NonNullable<Awaited<ReturnType<ComposeCliModule["detectCompose"]>>>; mod: ComposeCliModule }> {
  const mod = await import("@steward/node-agent/compose-cli");
  const cli = await mod.detectCompose(process.env);
  return cli ? { found: true, cli, mod } : { found: false };
}

/** Validates one fleet spec and keeps the parsed spec; compose paths resolve against each node's deploy checkout. */
export async function validateSpecFile(file: string, repoDir?: string, apply: ComposeApply = "auto"): Promise<ValidateResult & { spec?: FleetSpec }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    return { file, ok: false, problems: [{ file, path: "", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, severity: "error", rule: "schema" }] };
  }
  // The roots need the parsed spec: a first pass finds them, the rules then read each node's files from its own.
  const pre = validateFleetSpec(text, file, repoOnDisk(() => undefined));
  const roots = pre.spec ? checkoutRoots(pre.spec, file, repoDir) : {};
  const missing = new Set(Object.entries(roots).filter(([, r]) => !isDir(r.root)).map(([n]) => n));
  const r = pre.spec ? validateFleetSpec(text, file, repoOnDisk((node) => (missing.has(node) ? undefined : roots[node]?.root))) : pre;
  let problems = r.problems;
  if (r.spec) {
    const lineOf = specLineFinder(text);
    const reported = new Set<string>();
    for (const node of missing) {
      const c = roots[node] as { root: string; declared: string; at: string };
      const needs = Object.values(r.spec.nodes[node]?.services ?? {}).some((s) => s.kind === "compose") || Object.values(r.spec.secrets).some((sec) => sec.stores.some((st) => st.node === node && st.type === "env_file" && !st.path.startsWith("/")));
      if (!needs || reported.has(c.root)) continue;
      reported.add(c.root);
      const path = repoDir !== undefined ? "" : c.at;
      problems.push({
        file,
        ...(path ? { line: lineOf(path) } : {}),
        path,
        severity: "error",
        rule: "file_exists",
        message: repoDir !== undefined ? `--repo ${repoDir} is not a directory` : `deploy checkout '${c.declared}' (${c.root}) is not here, so its files cannot be checked: run in a checkout of the repo with --repo DIR`,
      });
    }
    // A stack whose files already failed a rule is not handed to Compose as well.
    const failed = (at: string) => problems.some((p) => p.severity === "error" && p.path.startsWith(`${at}.`));
    problems = [...problems, ...(await composeConfigProblems(r.spec, text, file, Object.fromEntries(Object.entries(roots).filter(([n]) => !missing.has(n))), failed, apply))];
  }
  const ok = !problems.some((p) => p.severity === "error");
  return { file, ok, problems, ...(r.spec ? { spec: r.spec } : {}) };
}

export async function validateFile(file: string, repoDir?: string, apply: ComposeApply = "auto"): Promise<ValidateResult> {
  const { file: f, ok, problems } = await validateSpecFile(file, repoDir, apply);
  return { file: f, ok, problems };
}

function textLine(p: ValidationProblem): string {
  const message = p.severity === "warning" ? `warning: ${p.message}` : p.message;
  // A problem placed in a compose file by line alone (a YAML error, an unset variable): `file:line: message`.
  if (p.rule === "compose_file" && p.path === "" && p.line !== undefined) return `${p.file}:${p.line}: ${message}`;
  return formatProblem({ ...p, message });
}

export function renderValidate(results: ValidateResult[]): string {
  return results.map((r) => [...r.problems.map(textLine), ...(r.ok ? [`${r.file}: ok`] : [])].join("\n")).join("\n");
}

/** GitHub workflow-command escaping: data and property values differ. */
const escData = (s: string): string => s.replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A");
const escProp = (s: string): string => escData(s).replace(/:/g, "%3A").replace(/,/g, "%2C");

/** `::error file=F,line=L,title=...::path: message`: GitHub shows these on the pull request's diff. */
export function renderGithub(results: ValidateResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    for (const p of r.problems) {
      const props = [`file=${escProp(p.file)}`, ...(p.line !== undefined ? [`line=${p.line}`] : []), `title=${escProp(`steward validate (${p.rule})`)}`];
      lines.push(`::${p.severity} ${props.join(",")}::${escData(`${p.path || "(root)"}: ${p.message}`)}`);
    }
    if (r.problems.length === 0) lines.push(`${r.file}: ok`);
  }
  return lines.join("\n");
}

/** `steward validate FILE...`: exit 1 and one line per problem when a spec is invalid. */
export async function validateCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(VALIDATE.flags, args, { positionals: true });
  if (positionals.length === 0) {
    io.err(`usage: ${VALIDATE.usage[0][0]}`);
    return 2;
  }
  const apply = (values["compose-apply"] ?? "auto") as ComposeApply;
  const results = await Promise.all(positionals.map((f) => validateFile(f, values.repo, apply)));
  const ok = results.every((r) => r.ok);
  if (values.json) io.out(JSON.stringify({ ok, results }, null, 2));
  // Workflow commands are read from stdout.
  else if (values.format === "github") io.out(renderGithub(results));
  else if (ok) io.out(renderValidate(results));
  else io.err(renderValidate(results.filter((r) => !r.ok)));
  return ok ? 0 : 1;
}
