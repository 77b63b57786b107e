import { cp, mkdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GitError, fetchRemote, git, probeRepo, remoteRef, type ProbeOptions, type RepoReport, type RepoTarget } from "./repo-probe.js";

export type PullRefusal = "not_a_checkout" | "checkout_unusable" | "wrong_branch" | "no_remote_branch" | "non_fast_forward" | "dirty_collision" | "ignored_collision" | "quarantine_failed" | "merge_failed";

/** A pull that was not done; the checkout is as it was (quarantined files are put back on a failed merge). */
export class PullRefusedError extends Error {
  constructor(
    readonly reason: PullRefusal,
    message: string,
  ) {
    super(message);
    this.name = "PullRefusedError";
  }
}

export interface Quarantined {
  /** Path in the checkout, as git names it. */
  path: string;
  /** Where it is now. */
  to: string;
}

export interface PullResult {
  from: string;
  to: string;
  /** Commits fast-forwarded over (0: already up to date). */
  commits: number;
  quarantined: Quarantined[];
  quarantineDir: string | null;
  /** The checkout after the pull, for the next `repo` event. */
  after: RepoReport;
  /** Set when the fetch failed and the pull went to the remote branch as last fetched. */
  fetchFailed: string | null;
}

/**
 * Outside the work tree (so it is never itself untracked), next to the checkout, one folder per pull:
 * `<parent>/.steward-quarantine/<checkout>-<timestamp>/`.
 */
export function quarantineDirFor(repoPath: string, now: Date): string {
  const stamp = now.toISOString().replace(/[:.]/g, "-");
  return join(dirname(repoPath), ".steward-quarantine", `${basename(repoPath)}-${stamp}`);
}

/** Moves a file, across filesystems too (copy then remove): never a delete without a copy. */
async function move(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EXDEV") throw err;
    await cp(from, to, { errorOnExist: true, force: false, preserveTimestamps: true, verbatimSymlinks: true });
    await rm(from);
  }
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** Removes directories left empty by the moves, up to (not including) the checkout root. */
async function pruneEmptyDirs(root: string, rel: string): Promise<void> {
  for (let d = dirname(rel); d !== "." && d !== "/" && d !== ""; d = dirname(d)) {
    try {
      await rmdir(join(root, d));
    } catch {
      return; // not empty (or gone): stop
    }
  }
}

const names = (ps: readonly string[]): string => (ps.length > 10 ? `${ps.slice(0, 10).join(", ")} and ${ps.length - 10} more` : ps.join(", "));

/**
 * Brings the checkout to the remote branch, only ever by fast-forward:
 * fetch; refuse a non-fast-forward, local changes the incoming commits touch, and git-ignored files in the way
 * (never touched); move untracked files that stand where incoming commits add files to a quarantine folder
 * (never deleted); then `git merge --ff-only --no-overwrite-ignore`.
 */
export async function pullRepo(t: RepoTarget, opts: ProbeOptions & { now: Date }): Promise<PullResult> {
  // A failed fetch is not fatal: fast-forwarding to the remote branch as last fetched (what the drift that
  // proposed this pull saw) is still only a fast-forward to a commit the remote had.
  let fetchFailed: string | null = null;
  if (opts.fetch) {
    try {
      await fetchRemote(t, opts.fetchTimeoutMs);
    } catch (err) {
      fetchFailed = err instanceof GitError ? (err.timedOut ? `timed out after ${opts.fetchTimeoutMs} ms` : err.stderr || err.message) : (err as Error).message;
    }
  }
  const before = await probeRepo(t, { ...opts, fetch: false });
  if (before.error !== null) {
    const reason: PullRefusal = before.error.startsWith("not a git checkout") ? "not_a_checkout" : "checkout_unusable";
    throw new PullRefusedError(reason, `cannot pull ${t.path}: ${before.error}`);
  }
  if (before.branch !== t.branch) {
    throw new PullRefusedError("wrong_branch", `refused: ${t.path} has ${before.branch === null ? "a detached HEAD" : `branch '${before.branch}' checked out`}, the spec says '${t.branch}'; nothing was changed`);
  }
  if (before.remote_head === null || before.head === null) throw new PullRefusedError("no_remote_branch", `cannot pull ${t.path}: ${t.remote}/${t.branch} is not known`);
  if (before.ahead > 0) {
    throw new PullRefusedError(
      "non_fast_forward",
      `refused: not a fast-forward: ${t.path} has ${before.ahead} local commit(s) not on ${t.remote}/${t.branch}${before.behind > 0 ? ` and is ${before.behind} behind (diverged)` : ""}; nothing was changed, reconcile by hand`,
    );
  }
  if (before.behind === 0) return { from: before.head, to: before.head, commits: 0, quarantined: [], quarantineDir: null, after: before, fetchFailed };
  if (before.colliding_dirty.length > 0) {
    throw new PullRefusedError("dirty_collision", `refused: local changes to tracked files that the incoming commits also change: ${names(before.colliding_dirty)}; nothing was changed, commit or discard them by hand`);
  }
  if (before.colliding_ignored.length > 0) {
    throw new PullRefusedError("ignored_collision", `refused: git-ignored files stand where the incoming commits add files: ${names(before.colliding_ignored)}; Steward never touches ignored files, nothing was changed`);
  }

  const quarantined: Quarantined[] = [];
  let quarantineDir: string | null = null;
  if (before.colliding_untracked.length > 0) {
    quarantineDir = quarantineDirFor(t.path, opts.now);
    try {
      for (const p of before.colliding_untracked) {
        const to = join(quarantineDir, p);
        await move(join(t.path, p), to);
        quarantined.push({ path: p, to });
      }
      for (const q of quarantined) await pruneEmptyDirs(t.path, q.path);
    } catch (err) {
      const restored = await restore(t.path, quarantined);
      throw new PullRefusedError("quarantine_failed", `refused: could not move untracked files to ${quarantineDir}: ${(err as Error).message}; ${restored}`);
    }
  }

  try {
    await git(t.path, ["merge", "--ff-only", "--no-overwrite-ignore", "--no-edit", "--quiet", remoteRef(t)], { timeoutMs: opts.timeoutMs });
  } catch (err) {
    const restored = await restore(t.path, quarantined);
    const why = err instanceof GitError ? err.stderr || err.message : (err as Error).message;
    throw new PullRefusedError("merge_failed", `fast-forward failed: ${why}; ${restored}`);
  }
  const after = await probeRepo(t, { ...opts, fetch: false });
  return { from: before.head, to: after.head ?? before.remote_head, commits: before.behind, quarantined, quarantineDir, after, fetchFailed };
}

/** Puts quarantined files back where nothing has taken their place; says what it did. */
async function restore(root: string, moved: readonly Quarantined[]): Promise<string> {
  if (moved.length === 0) return "nothing was changed";
  const kept: string[] = [];
  for (const q of moved) {
    const back = join(root, q.path);
    if (await exists(back)) {
      kept.push(q.to);
      continue;
    }
    try {
      await move(q.to, back);
    } catch {
      kept.push(q.to);
    }
  }
  return kept.length === 0 ? "the untracked files were put back, nothing was changed" : `these stay in quarantine: ${names(kept)}`;
}

/** One line for the command reply and the audit log. */
export function describePull(t: RepoTarget, r: PullResult): string {
  const fetched = r.fetchFailed !== null ? ` (fetch failed: ${r.fetchFailed}; used ${t.remote}/${t.branch} as last fetched)` : "";
  if (r.commits === 0) return `${t.path} is already at ${t.remote}/${t.branch} (${r.to.slice(0, 12)})${fetched}; nothing to pull`;
  const q = r.quarantined.length > 0 ? `; quarantined ${r.quarantined.length} untracked file(s) that blocked the pull to ${r.quarantineDir}: ${names(r.quarantined.map((x) => x.path))}` : "";
  return `fast-forwarded ${t.path} ${r.from.slice(0, 12)} → ${r.to.slice(0, 12)} (${r.commits} commit(s))${fetched}; head ${r.to}${q}; git-ignored files untouched`;
}
