import { execFile } from "node:child_process";
import { isAbsolute, resolve } from "node:path";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { RepoEvent } from "@steward/contracts/events";
import { redactUrlCredentialsInText } from "@steward/platform/redact";

/** The deploy checkout this node reports on and pulls. */
export interface RepoTarget {
  path: string;
  remote: string;
  branch: string;
}

/** What the agent reports about its checkout (the `repo` event without the envelope). */
export type RepoReport = Omit<RepoEvent, "type" | "id" | "node" | "ts">;

/** Paths listed per field at most (the event's bound). */
const MAX_PATHS = 1000;

export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    super(`git ${args[0] ?? ""} ${timedOut ? "timed out" : `failed${exitCode !== null ? ` (exit ${exitCode})` : ""}`}${stderr ? `: ${stderr}` : ""}`);
    this.name = "GitError";
  }
}


export interface GitOptions {
  timeoutMs: number;
}

/** Runs git (no shell) in `cwd`; resolves stdout, rejects with a GitError. Never prompts for credentials. */
export function git(cwd: string, args: readonly string[], opts: GitOptions): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      "git",
      ["-C", cwd, ...args],
      {
        timeout: opts.timeoutMs,
        killSignal: "SIGKILL",
        maxBuffer: 32 * 1024 * 1024,
        // Probes must not take the index lock an operator's git command may need; messages in one language.
        env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_OPTIONAL_LOCKS: "0", LC_ALL: "C", GIT_ASKPASS: "", SSH_ASKPASS: "" },
      },
      (err, stdout, stderr) => {
        if (!err) return resolvePromise(stdout);
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string | null };
        const timedOut = e.killed === true && e.signal === "SIGKILL";
        const text = redactUrlCredentialsInText(String(stderr || e.message).trim()).split("\n").slice(-3).join(" ").slice(0, 500);
        reject(new GitError(args, typeof e.code === "number" ? e.code : null, text, timedOut));
      },
    );
  });
}

const zlist = (out: string): string[] => out.split("\0").filter((s) => s !== "");

/** A ref name the remote-tracking refspec can hold: no option injection, no odd characters. */
function checkRefPart(what: string, v: string): void {
  if (!/^[A-Za-z0-9._/-]+$/.test(v) || v.startsWith("-") || v.includes("..")) throw new Error(`${what} '${v}' is not a plain ref name`);
}

export const remoteRef = (t: RepoTarget): string => `refs/remotes/${t.remote}/${t.branch}`;

/**
 * Local paths that stand where incoming commits add a path: the same path, a file where a directory comes
 * (`a` vs incoming `a/b`), or a file inside a directory where a file comes (`a/b` vs incoming `a`). Pure.
 */
export function collidingPaths(local: readonly string[], incoming: readonly string[]): string[] {
  const files = new Set(incoming);
  const dirs = new Set<string>();
  for (const p of incoming) {
    for (let i = p.indexOf("/"); i > 0; i = p.indexOf("/", i + 1)) dirs.add(p.slice(0, i));
  }
  const out: string[] = [];
  for (const raw of local) {
    const p = raw.endsWith("/") ? raw.slice(0, -1) : raw;
    let hit = files.has(p) || dirs.has(p);
    for (let i = p.indexOf("/"); !hit && i > 0; i = p.indexOf("/", i + 1)) hit = files.has(p.slice(0, i));
    if (hit) out.push(p);
  }
  return out.sort();
}

/** Fetches the branch into its remote-tracking ref (explicit refspec: works whatever the remote's fetch config). */
export async function fetchRemote(t: RepoTarget, timeoutMs: number): Promise<void> {
  checkRefPart("remote", t.remote);
  checkRefPart("branch", t.branch);
  await git(t.path, ["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", t.remote, `+refs/heads/${t.branch}:${remoteRef(t)}`], { timeoutMs });
}

async function optional(p: Promise<string>): Promise<string | null> {
  try {
    const s = (await p).trim();
    return s === "" ? null : s;
  } catch {
    return null;
  }
}

export interface ProbeOptions {
  /** Fetch before comparing (off: compare with what the last fetch brought). */
  fetch: boolean;
  fetchTimeoutMs: number;
  /** For the local git commands. */
  timeoutMs: number;
}

/** The checkout as git sees it. Never throws: what cannot be read is in `error`. */
export async function probeRepo(t: RepoTarget, opts: ProbeOptions): Promise<RepoReport> {
  const g = (args: string[]) => git(t.path, args, { timeoutMs: opts.timeoutMs });
  const report: RepoReport = {
    path: t.path,
    branch: null,
    head: null,
    remote_head: null,
    behind: 0,
    ahead: 0,
    dirty: [],
    colliding_untracked: [],
    ignored_count: 0,
    error: null,
    colliding_dirty: [],
    colliding_ignored: [],
  };
  try {
    if ((await g(["rev-parse", "--is-inside-work-tree"])).trim() !== "true") throw new Error("not a git work tree");
  } catch (err) {
    report.error = `not a git checkout: ${err instanceof GitError ? err.stderr || err.message : (err as Error).message}`;
    return report;
  }
  const errors: string[] = [];
  if (opts.fetch) {
    try {
      await fetchRemote(t, opts.fetchTimeoutMs);
    } catch (err) {
      // Still report the rest, against what the last fetch brought.
      errors.push(`fetch from ${t.remote} failed: ${err instanceof GitError ? (err.timedOut ? `timed out after ${opts.fetchTimeoutMs} ms` : err.stderr || err.message) : (err as Error).message}`);
    }
  }
  try {
    report.branch = await optional(g(["symbolic-ref", "--short", "-q", "HEAD"]));
    report.head = await optional(g(["rev-parse", "-q", "--verify", "HEAD^{commit}"]));
    report.remote_head = await optional(g(["rev-parse", "-q", "--verify", `${remoteRef(t)}^{commit}`]));
    if (report.branch !== null && report.branch !== t.branch) errors.push(`checked out branch is '${report.branch}', the spec says '${t.branch}'`);
    if (report.head === null) errors.push("the checkout has no commit");
    if (report.head !== null && report.remote_head !== null) {
      const [ahead, behind] = (await g(["rev-list", "--left-right", "--count", `HEAD...${remoteRef(t)}`])).trim().split(/\s+/).map(Number);
      report.ahead = ahead ?? 0;
      report.behind = behind ?? 0;
    }
    const dirty = report.head !== null ? zlist(await g(["diff", "--name-only", "-z", "HEAD", "--"])) : [];
    const untracked = zlist(await g(["ls-files", "--others", "--exclude-standard", "-z"]));
    // --directory: an ignored directory (node_modules) counts once, and listing it stays cheap.
    const ignored = zlist(await g(["ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z"]));
    report.dirty = dirty.sort().slice(0, MAX_PATHS);
    report.ignored_count = ignored.length;
    if (report.behind > 0 && report.head !== null) {
      const range = `HEAD...${remoteRef(t)}`;
      const added = zlist(await g(["diff", "--name-only", "-z", "--no-renames", "--diff-filter=A", range, "--"]));
      const changed = zlist(await g(["diff", "--name-only", "-z", "--no-renames", range, "--"]));
      report.colliding_untracked = collidingPaths(untracked, added).slice(0, MAX_PATHS);
      report.colliding_ignored = collidingPaths(ignored, added).slice(0, MAX_PATHS);
      const changedSet = new Set(changed);
      report.colliding_dirty = dirty.filter((p) => changedSet.has(p)).sort().slice(0, MAX_PATHS);
    }
  } catch (err) {
    errors.push(err instanceof GitError ? err.message : `cannot read the checkout: ${(err as Error).message}`);
  }
  report.error = errors.length > 0 ? errors.join("; ").slice(0, 2000) : null;
  return report;
}

/** The node's deploy checkout from the spec: `nodes.<node>.repo_path`, else `repo.path`; relative to the spec's directory. */
export function repoTargetFor(spec: FleetSpec, node: string, baseDir: string): RepoTarget | undefined {
  const path = spec.nodes[node]?.repo_path ?? spec.repo?.path;
  if (path === undefined) return undefined;
  return { path: isAbsolute(path) ? path : resolve(baseDir, path), remote: spec.repo?.remote ?? "origin", branch: spec.repo?.branch ?? "main" };
}
