import { REPO_SERVICE, type Drift } from "@steward/contracts/drift";
import type { FleetSpec } from "./fleet-spec.js";
import type { NodeState, Snapshot } from "@steward/contracts/world-state";

type Repo = NonNullable<NodeState["repo"]>;

/** At most this many paths named in a message; the rest are counted. */
const NAMED = 5;

function names(paths: readonly string[]): string {
  const shown = paths.slice(0, NAMED).join(", ");
  return paths.length > NAMED ? `${shown} and ${paths.length - NAMED} more` : shown;
}

const short = (sha: string | null): string => (sha ? sha.slice(0, 12) : "none");

function repoDrift(node: string, repo: Repo, severity: Drift["severity"], proposes: Drift["proposes"], message: string): Drift {
  return { key: `repo_drift:${node}/${REPO_SERVICE}`, kind: "repo_drift", node, service: REPO_SERVICE, severity, message, since: repo.at, proposes };
}

/** One node's deploy checkout: at most one drift, the most severe condition first. */
export function classifyRepo(node: string, repo: Repo): Drift | undefined {
  const where = `deploy checkout ${repo.path} on ${node}`;
  const upstream = repo.branch ? `the remote ${repo.branch}` : "the remote branch";
  if (repo.error !== null) return repoDrift(node, repo, "alert", null, `${where} cannot be checked: ${repo.error}`);
  if (repo.remote_head === null) return repoDrift(node, repo, "alert", null, `${where}: ${upstream} is not known (not fetched, or it does not exist)`);

  if (repo.ahead > 0) {
    // Never a fast-forward: only the operator may decide which commits win.
    const state = repo.behind > 0 ? `has diverged from ${upstream} (${repo.ahead} local commit(s) not on the remote, ${repo.behind} incoming)` : `has ${repo.ahead} local commit(s) that are not on ${upstream}`;
    return repoDrift(node, repo, "alert", null, `${where} ${state}: a pull is not a fast-forward and will be refused; reconcile by hand`);
  }

  if (repo.behind > 0) {
    const behind = `${where} is ${repo.behind} commit(s) behind ${upstream} (${short(repo.head)} → ${short(repo.remote_head)})`;
    const dirty = repo.colliding_dirty ?? [];
    const ignored = repo.colliding_ignored ?? [];
    const untracked = repo.colliding_untracked;
    const blockers: string[] = [];
    if (dirty.length > 0) blockers.push(`local changes to tracked files the incoming commits also change: ${names(dirty)} (commit or discard them by hand; Steward never discards changes)`);
    if (ignored.length > 0) blockers.push(`git-ignored files where the incoming commits add files: ${names(ignored)} (Steward never touches ignored files; move them by hand)`);
    if (blockers.length > 0) {
      const alsoUntracked = untracked.length > 0 ? `; also untracked files in the way: ${names(untracked)}` : "";
      return repoDrift(node, repo, "alert", null, `${behind}; a pull would fail: ${blockers.join("; ")}${alsoUntracked}`);
    }
    if (untracked.length > 0) {
      return repoDrift(
        node,
        repo,
        "action",
        "pull",
        `${behind}; a plain git pull would fail: untracked files would be overwritten by the incoming commits: ${names(untracked)}. The pull action moves them to a quarantine folder first (never deletes), then fast-forwards`,
      );
    }
    return repoDrift(node, repo, "action", "pull", `${behind}; a pull fast-forwards it`);
  }

  if (repo.dirty.length > 0) return repoDrift(node, repo, "report", null, `${where} has local changes to tracked files: ${names(repo.dirty)}`);
  return undefined;
}

/**
 * Pure: drift of each declared node's deploy checkout, as its agent last reported it. Nothing is said about
 * a node that is stale, never reported a checkout, or a snapshot too old to trust (those are `unknown` already).
 */
export function computeRepoDrift(spec: FleetSpec, snapshot: Snapshot, now: Date, opts: { snapshotMaxAgeMs: number }): Drift[] {
  const ageMs = now.getTime() - Date.parse(snapshot.written_at);
  if (!(ageMs <= opts.snapshotMaxAgeMs)) return [];
  const out: Drift[] = [];
  for (const nodeName of Object.keys(spec.nodes)) {
    const node = snapshot.world.nodes[nodeName];
    if (!node || node.status === "stale" || !node.repo) continue;
    const d = classifyRepo(nodeName, node.repo);
    if (d) out.push(d);
  }
  return out;
}
