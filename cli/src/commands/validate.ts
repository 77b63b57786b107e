import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { formatProblem, specLineFinder, type FleetSpec } from "@steward/fleet/fleet-spec";
import { validateFleetSpec, type RepoFileRead, type RepoFiles, type ValidationProblem } from "@steward/fleet/fleet-validate";
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

/** The repo on disk, for the pure rules: files are read relative to `root`. */
export function repoOnDisk(root: string): RepoFiles {
  return {
    read(rel): RepoFileRead {
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

/** Pure: `KEY=value` values of an env file, to keep them out of Compose's messages (a `.env` may hold secrets). */
function envFileValues(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/^\s*export\s+/, "")).filter((l) => /^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(l)).map((l) => l.slice(l.indexOf("=") + 1).trim().replace(/^(['"])(.*)\1$/, "$2"));
}

/**
 * Each compose stack of a spec checked by Compose's own `config` (the real parser: interpolation, networks, every
 * key), when a Compose binary is found; nothing when none is (the spec's own rules still ran).
 */
export async function composeConfigProblems(spec: FleetSpec, specText: string, file: string, root: string, skip: (path: string) => boolean): Promise<ValidationProblem[]> {
  const stacks: { at: string; name: string; files: string[]; envFile: string | undefined }[] = [];
  const seen = new Set<string>();
  for (const [nodeName, node] of Object.entries(spec.nodes)) {
    for (const [name, svc] of Object.entries(node.services)) {
      if (svc.kind !== "compose") continue;
      const at = `nodes.${nodeName}.services.${name}`;
      const key = JSON.stringify([svc.files, svc.env_file ?? null]);
      if (seen.has(key) || skip(at)) continue;
      seen.add(key);
      stacks.push({ at, name: svc.project ?? name, files: svc.files, envFile: svc.env_file });
    }
  }
  if (stacks.length === 0) return [];
  const { composeArgs, detectCompose, redactedTail, runProgram } = await import("@steward/node-agent/compose-cli");
  const cli = await detectCompose(process.env);
  if (!cli) return [];
  const lineOf = specLineFinder(specText);
  const problems: ValidationProblem[] = [];
  for (const st of stacks) {
    const first = st.files[0] as string;
    const envPath = st.envFile ? join(root, st.envFile) : undefined;
    let envText = "";
    try {
      if (envPath) envText = readFileSync(envPath, "utf8");
    } catch {
      // git-ignored and made on the node: Compose warns about the variables it cannot interpolate, nothing fails
    }
    const { file: bin, args } = composeArgs(cli, st.name, dirname(join(root, first)), st.files.map((f) => join(root, f)), envText ? (envPath as string) : null, ["config", "-q"]);
    const r = await runProgram(bin, args, { env: process.env, cwd: root, timeoutMs: 60_000 });
    if (r.code === 0) continue;
    const lines = redactedTail(r.stderr || r.stdout, envFileValues(envText), 600).split("\n").filter((l) => l.trim()).slice(0, 4).join(" / ");
    const path = `${st.at}.files`;
    problems.push({ file, line: lineOf(path), path, severity: "error", rule: "compose_file", message: `${cli.label} config refuses the stack: ${lines}` });
  }
  return problems;
}

/** Validates one fleet spec and keeps the parsed spec; the repo root is `repoDir`, or the directory of the spec. */
export async function validateSpecFile(file: string, repoDir?: string): Promise<ValidateResult & { spec?: FleetSpec }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    return { file, ok: false, problems: [{ file, path: "", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, severity: "error", rule: "schema" }] };
  }
  const root = resolve(repoDir ?? dirname(file));
  const r = validateFleetSpec(text, file, repoOnDisk(root));
  let problems = r.problems;
  if (r.spec) {
    // A stack whose files already failed a rule is not handed to Compose as well.
    const failed = (at: string) => r.problems.some((p) => p.severity === "error" && p.path.startsWith(`${at}.`));
    problems = [...problems, ...(await composeConfigProblems(r.spec, text, file, root, failed))];
  }
  const ok = !problems.some((p) => p.severity === "error");
  return { file, ok, problems, ...(r.spec ? { spec: r.spec } : {}) };
}

export async function validateFile(file: string, repoDir?: string): Promise<ValidateResult> {
  const { file: f, ok, problems } = await validateSpecFile(file, repoDir);
  return { file: f, ok, problems };
}

function textLine(p: ValidationProblem): string {
  return p.severity === "warning" ? formatProblem({ ...p, message: `warning: ${p.message}` }) : formatProblem(p);
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
  const results = await Promise.all(positionals.map((f) => validateFile(f, values.repo)));
  const ok = results.every((r) => r.ok);
  if (values.json) io.out(JSON.stringify({ ok, results }, null, 2));
  // Workflow commands are read from stdout.
  else if (values.format === "github") io.out(renderGithub(results));
  else if (ok) io.out(renderValidate(results));
  else io.err(renderValidate(results.filter((r) => !r.ok)));
  return ok ? 0 : 1;
}
