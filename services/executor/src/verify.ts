import type { ActionKind } from "@steward/contracts/action";
import type { NodeState, ServiceState, Snapshot } from "@steward/contracts/world-state";
import type { Verdict } from "./verdict.js";
import { judgeRepo } from "./verify-repo.js";
import { foldedUpTo } from "./world-position.js";

export interface VerifyTarget {
  node: string;
  service: string;
  kind: ActionKind;
}

/**
 * Where a command ended, as far as the world is concerned. `eventsSeq` is the stream sequence the node's reply
 * named: every event the node produced before replying (its observation after the command among them) is stored at
 * or below it. Null when the node could not say (an older agent, or NATS trouble): then only observations
 * time-stamped after the command was sent count, and none of them is final, since a heartbeat sent during the
 * command carries a new time and the old state.
 */
export interface CommandMark {
  sentAt: Date;
  eventsSeq: number | null;
}

/** A mark from a reply's `events_seq` (undefined when the node gave none). */
export const commandMark = (sentAt: Date, eventsSeq: number | undefined | null): CommandMark => ({ sentAt, eventsSeq: eventsSeq ?? null });

/**
 * Pure: whether this observation of a service may speak for the moment after the command. By sequence when the
 * node gave one: the world must have folded the stream up to it (the per-service fold keeps the newest observation
 * by the node's own event time, so nothing the node said during the command can override what it said after).
 * By time otherwise.
 */
export function observedAfter(
  snapshot: Snapshot,
  node: Pick<NodeState, "recent_event_seqs">,
  svc: Pick<ServiceState, "updated_at" | "since" | "state" | "health">,
  name: string,
  mark: CommandMark,
): { ok: true } | { ok: false; seen: string } {
  if (mark.eventsSeq !== null) {
    if (!foldedUpTo(snapshot, node, mark.eventsSeq)) {
      return { ok: false, seen: `the world has folded events up to seq ${snapshot.world.last_seq}, not yet up to seq ${mark.eventsSeq} where the node's report after the command ends (${name} still shows ${svc.state}/${svc.health})` };
    }
    return { ok: true };
  }
  const observedAt = Math.max(Date.parse(svc.updated_at), Date.parse(svc.since));
  if (!(observedAt >= mark.sentAt.getTime())) {
    return { ok: false, seen: `service ${name} last observed ${svc.state}/${svc.health} at ${svc.updated_at}, before the command was sent at ${mark.sentAt.toISOString()}` };
  }
  return { ok: true };
}

/**
 * A started service must stay running `ms` (`VERIFY_SETTLE_MS`) before it counts as verified. A process that exits
 * right after it came up, with no checks to fail, otherwise reads "running" for a moment and the action would be
 * called succeeded. Two conditions, each covering what the other cannot:
 * - on the node's clock: the node reported it running `ms` after it began (both times stamped by the node). Waiting
 *   on the executor's clock alone is not enough: the world read then may not yet hold an exit the node has already
 *   reported (a busy observer, a deferred write).
 * - on the executor's clock: `until` (the node's reply plus `ms`) has passed. When the node never reported the service
 *   as anything but running (a container restarted between two observations), its `since` is from before the
 *   command and says nothing about the new process.
 */
export interface Settle {
  ms: number;
  now: Date;
  until: Date;
}

/**
 * Pure judgement of whether the world shows the action's effect. A command that returned ok proves nothing:
 * the service must be seen in the wanted state by an observation made after the command (see `CommandMark`),
 * so a snapshot from before the command (still saying `running`) never counts. With `settle`, a start or restart
 * must also stay running through its settle window (`Settle`); an exit within it fails the action (final, with the exit).
 */
export function judgeWorld(snapshot: Snapshot | undefined, target: VerifyTarget, mark: CommandMark, settle?: Settle): Verdict {
  if (!snapshot) return { ok: false, seen: "no world snapshot yet" };
  if (target.kind === "pull") return judgeRepo(snapshot, target, mark);
  const name = `${target.node}/${target.service}`;
  const node = snapshot.world.nodes[target.node];
  if (!node) return { ok: false, seen: `node '${target.node}' is not in the world snapshot` };
  if (node.status === "stale") return { ok: false, seen: `node '${target.node}' is stale (no heartbeats); its services are unknown` };
  const svc = node.services[target.service];
  if (!svc) return { ok: false, seen: `service ${name} is not in the world snapshot` };
  const after = observedAfter(snapshot, node, svc, name, mark);
  if (!after.ok) return after;
  const now = `${svc.state}/${svc.health}`;
  if (target.kind === "stop") {
    return svc.state === "stopped" || svc.state === "exited"
      ? { ok: true, detail: `service ${name} is ${svc.state}` }
      : { ok: false, seen: `service ${name} is ${now}, not stopped` };
  }
  // Only an observation placed after the command by sequence can end the action early: by time, a heartbeat sent
  // during the command carries a new time and the old state.
  const final = mark.eventsSeq !== null && finalFailure(svc) ? { final: true as const } : {};
  if (svc.state !== "running") return { ok: false, seen: `service ${name} is ${now}${svc.detail ? ` (${svc.detail})` : exitText(svc)}`, ...final };
  const hasChecks = Object.keys(svc.checks).length > 0;
  if (svc.health === "healthy" || (svc.health === "none" && !hasChecks)) {
    const state = svc.health === "none" ? "has no health checks" : "healthy";
    if (settle && settle.now.getTime() < settle.until.getTime()) {
      return { ok: false, seen: `service ${name} is running and ${state}; settling: it must stay running until ${settle.until.toISOString()} (${settle.until.getTime() - settle.now.getTime()} ms more)` };
    }
    const ranMs = Date.parse(svc.updated_at) - Date.parse(svc.since);
    if (settle && !(ranMs >= settle.ms)) {
      return { ok: false, seen: `service ${name} is running and ${state}; settling: the node has seen it running for ${Number.isNaN(ranMs) ? "an unknown time" : `${ranMs} ms`} of the ${settle.ms} ms it must stay up (running since ${svc.since}, last observed ${svc.updated_at})` };
    }
    return { ok: true, detail: `service ${name} is running and ${state}${settle ? ", and stayed running through the settle window" : ""}` };
  }
  const failing = Object.entries(svc.checks)
    .filter(([, c]) => !c.ok)
    .map(([k, c]) => `${k}${c.detail ? `: ${c.detail}` : ""}`);
  return { ok: false, seen: `service ${name} is running but ${svc.health}${failing.length ? ` (failing: ${failing.join("; ")})` : ""}`, ...final };
}

/**
 * Pure: whether a start/restart's service, as seen after the command, has failed for good. It exited, failed or
 * was stopped (the agent restarts nothing by default, and a process it restarts on failure is still a failed
 * command), or its checks failed often enough to call it unhealthy. `starting`, `unknown` and "health starting"
 * may still turn out well: those wait for the timeout.
 */
export function finalFailure(svc: Pick<ServiceState, "state" | "health">): boolean {
  if (svc.state === "exited" || svc.state === "failed" || svc.state === "stopped") return true;
  return svc.state === "running" && svc.health === "unhealthy";
}

/** " (exit code 3)" / " (killed by SIGKILL)" when the world knows how the process ended but has no detail. */
function exitText(svc: Pick<ServiceState, "exit_code" | "signal">): string {
  if (svc.signal) return ` (killed by ${svc.signal})`;
  if (typeof svc.exit_code === "number") return ` (exit code ${svc.exit_code})`;
  return "";
}

export type DeployVerdict = { ok: true; detail: string } | { ok: false; final: boolean; seen: string };

const short = (h: string | null | undefined): string => (!h ? "none" : h.startsWith("sha256:") ? h.slice(7, 19) : h.slice(0, 12));

/**
 * Pure: does the world show the node running the deployed stack, healthy, observed after the deploy step ended?
 * `final` marks a verdict that waiting cannot change (the stack is unhealthy or down after the deploy); only an
 * observation placed after the node's reply by sequence can be final, never one placed by time.
 */
export function judgeDeployed(snapshot: Snapshot | undefined, node: string, service: string, mark: CommandMark): DeployVerdict {
  if (!snapshot) return { ok: false, final: false, seen: "no world snapshot yet" };
  const n = snapshot.world.nodes[node];
  if (!n) return { ok: false, final: false, seen: `node '${node}' is not in the world snapshot` };
  if (n.status === "stale") return { ok: false, final: false, seen: `node '${node}' is stale` };
  const s = n.services[service];
  if (!s) return { ok: false, final: false, seen: `${node}/${service} is not in the world snapshot` };
  const after = observedAfter(snapshot, n, s, `${node}/${service}`, mark);
  if (!after.ok) return { ok: false, final: false, seen: after.seen };
  const final = mark.eventsSeq !== null;
  if (s.state === "starting") return { ok: false, final: false, seen: `${node}/${service} is still deploying` };
  if (s.state !== "running") return { ok: false, final, seen: `${node}/${service} is ${s.state}${s.detail ? ` (${s.detail})` : ""}` };
  if (s.health === "unhealthy") return { ok: false, final, seen: `${node}/${service} is running but unhealthy${s.detail ? ` (${s.detail})` : ""}` };
  if (s.health !== "healthy" && s.health !== "none") return { ok: false, final: false, seen: `${node}/${service} is running, health ${s.health}` };
  if (s.desired_config_hash && s.config_hash !== s.desired_config_hash) return { ok: false, final: false, seen: `${node}/${service} runs config ${short(s.config_hash)}, not ${short(s.desired_config_hash)}` };
  return { ok: true, detail: `${node}/${service} is running${s.health === "healthy" ? " and healthy" : ""} with config ${short(s.config_hash)}` };
}
