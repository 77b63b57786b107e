import type { ActionKind } from "@steward/contracts/action";
import type { Snapshot } from "@steward/contracts/world-state";
import type { Verdict } from "./verdict.js";
import { judgeRepo } from "./verify-repo.js";

export interface VerifyTarget {
  node: string;
  service: string;
  kind: ActionKind;
}

/**
 * Pure judgement of whether the world shows the action's effect. A command that returned ok proves nothing:
 * the service must be seen in the wanted state by an observation made after the command was sent, so a
 * snapshot from before the command (still saying `running`) never counts.
 */
export function judgeWorld(snapshot: Snapshot | undefined, target: VerifyTarget, sentAt: Date): Verdict {
  if (!snapshot) return { ok: false, seen: "no world snapshot yet" };
  if (target.kind === "pull") return judgeRepo(snapshot, target, sentAt);
  const name = `${target.node}/${target.service}`;
  const node = snapshot.world.nodes[target.node];
  if (!node) return { ok: false, seen: `node '${target.node}' is not in the world snapshot` };
  if (node.status === "stale") return { ok: false, seen: `node '${target.node}' is stale (no heartbeats); its services are unknown` };
  const svc = node.services[target.service];
  if (!svc) return { ok: false, seen: `service ${name} is not in the world snapshot` };
  const observedAt = Math.max(Date.parse(svc.updated_at), Date.parse(svc.since));
  const now = `${svc.state}/${svc.health}`;
  if (!(observedAt >= sentAt.getTime())) {
    return { ok: false, seen: `service ${name} last observed ${now} at ${svc.updated_at}, before the command was sent at ${sentAt.toISOString()}` };
  }
  if (target.kind === "stop") {
    return svc.state === "stopped" || svc.state === "exited"
      ? { ok: true, detail: `service ${name} is ${svc.state}` }
      : { ok: false, seen: `service ${name} is ${now}, not stopped` };
  }
  if (svc.state !== "running") return { ok: false, seen: `service ${name} is ${now}${svc.detail ? ` (${svc.detail})` : ""}` };
  const hasChecks = Object.keys(svc.checks).length > 0;
  if (svc.health === "healthy" || (svc.health === "none" && !hasChecks)) {
    return { ok: true, detail: `service ${name} is running and ${svc.health === "none" ? "has no health checks" : "healthy"}` };
  }
  const failing = Object.entries(svc.checks)
    .filter(([, c]) => !c.ok)
    .map(([k, c]) => `${k}${c.detail ? `: ${c.detail}` : ""}`);
  return { ok: false, seen: `service ${name} is running but ${svc.health}${failing.length ? ` (failing: ${failing.join("; ")})` : ""}` };
}
