import type { Snapshot } from "@steward/contracts/world-state";
import type { Verdict } from "./verdict.js";
import type { CommandMark } from "./verify.js";
import { foldedUpTo } from "./world-position.js";

/**
 * Pure judgement of a `pull`: the node's `repo` report made after the pull (the world folded up to the reply's
 * `events_seq`; without one, a report time-stamped after the command was sent) shows the checkout at the remote
 * branch's head. The command's "ok" alone proves nothing.
 */
export function judgeRepo(snapshot: Snapshot, target: { node: string }, mark: CommandMark): Verdict {
  const node = snapshot.world.nodes[target.node];
  if (!node) return { ok: false, seen: `node '${target.node}' is not in the world snapshot` };
  if (node.status === "stale") return { ok: false, seen: `node '${target.node}' is stale (no heartbeats); its checkout is unknown` };
  const repo = node.repo;
  if (!repo) return { ok: false, seen: `node '${target.node}' has not reported its deploy checkout` };
  const where = `deploy checkout ${repo.path} on ${target.node}`;
  if (mark.eventsSeq !== null) {
    if (!foldedUpTo(snapshot, node, mark.eventsSeq)) return { ok: false, seen: `the world has folded events up to seq ${snapshot.world.last_seq}, not yet up to seq ${mark.eventsSeq} where the node's report after the pull ends` };
  } else if (!(Date.parse(repo.at) >= mark.sentAt.getTime())) {
    return { ok: false, seen: `${where} last reported at ${repo.at}, before the command was sent at ${mark.sentAt.toISOString()}` };
  }
  if (repo.head === null || repo.remote_head === null) return { ok: false, seen: `${where}: head ${repo.head ?? "unknown"}, remote head ${repo.remote_head ?? "unknown"}${repo.error ? ` (${repo.error})` : ""}` };
  if (repo.head !== repo.remote_head) return { ok: false, seen: `${where} is at ${repo.head.slice(0, 12)}, the remote branch at ${repo.remote_head.slice(0, 12)} (${repo.behind} behind, ${repo.ahead} ahead)` };
  return { ok: true, detail: `${where} is at the remote head ${repo.head.slice(0, 12)}` };
}
