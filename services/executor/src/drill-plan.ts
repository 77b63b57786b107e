import type { Action } from "@steward/contracts/action";
import { DRILL_FOLLOW_UP_KIND, type DrillParams, type DrillVerdict } from "@steward/contracts/drill";
import type { ServiceState, Snapshot } from "@steward/contracts/world-state";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import { observedAfter, type CommandMark } from "./verify.js";

/**
 * The pure decisions of a restart drill (docs/drills.md): which services a request names, whether one may be
 * drilled now, what the world shows after the kill, whether a pending action is the restart the drill caused, and
 * the verdict. The thin steps around them are http-drills.ts (propose) and drill-run.ts (run).
 */

export interface DrillTarget {
  node: string;
  service: string;
}

/** How long a drill watches after the kill: long enough to see a late recovery, and bounded. */
export function drillWindowMs(objectiveMs: number): number {
  return Math.max(2 * objectiveMs, objectiveMs + 60_000);
}

/** Pure: the declared services a request names (one service on every node, or on `node`; or all), or why none. */
export function drillTargets(spec: FleetSpec, req: { service?: string | undefined; all?: boolean | undefined; node?: string | undefined }): { ok: true; targets: DrillTarget[] } | { ok: false; field: string; message: string } {
  if (req.node !== undefined && !spec.nodes[req.node]) return { ok: false, field: "node", message: `no node '${req.node}' in the fleet spec` };
  const nodes = req.node !== undefined ? [req.node] : Object.keys(spec.nodes).sort();
  const targets = nodes.flatMap((node) =>
    Object.keys(spec.nodes[node]?.services ?? {})
      .filter((service) => req.all === true || service === req.service)
      .sort()
      .map((service) => ({ node, service })),
  );
  if (targets.length === 0) {
    const where = req.node !== undefined ? ` on node '${req.node}'` : "";
    return req.all === true ? { ok: false, field: "all", message: `no service is declared${where} in the fleet spec` } : { ok: false, field: "service", message: `no service '${req.service ?? ""}' is declared${where} in the fleet spec` };
  }
  return { ok: true, targets };
}

/** Running and healthy (or running with no checks to pass): the state a drill starts from and must come back to. */
export function healthy(svc: ServiceState | undefined): boolean {
  if (!svc || svc.state !== "running") return false;
  return svc.health === "healthy" || (svc.health === "none" && Object.keys(svc.checks).length === 0);
}

const looks = (svc: ServiceState | undefined): string => (svc ? `${svc.state}/${svc.health}` : "not reported");

export interface RefusalInputs {
  spec: FleetSpec;
  /** The world as the executor sees it now; undefined when it cannot be read. */
  world: Snapshot | undefined;
  /** Open actions (pending, approved, running): a drill never runs beside another action on its service. */
  open: readonly Pick<Action, "id" | "node" | "service" | "kind" | "state">[];
  now: Date;
  /** A world older than this is not trusted (as the supervisor's diff). */
  worldMaxAgeMs: number;
  /** The drill being run, when the check is made again just before the kill (it is open itself then). */
  self?: string | undefined;
}

/**
 * Pure: why a drill must not touch this service now, or null when it may. Checked when the drill is proposed and
 * again just before the kill; a refusal changes nothing. Never a stale or unknown node, never a service that is not
 * healthy (nothing to time), never one whose dependencies are not healthy, never beside another open action on it.
 */
export function refuseDrill(t: DrillTarget, inp: RefusalInputs): string | null {
  const name = `${t.node}/${t.service}`;
  const spec = inp.spec.nodes[t.node]?.services[t.service];
  if (!spec) return `${name} is not declared in the fleet spec`;
  if (spec.kind !== "process") return `${name} is a ${spec.kind} service: drills kill process services only`;
  if (spec.recovery_objective === undefined) return `${name} has no recovery_objective in the fleet spec: there is nothing to measure the drill against`;
  if (!inp.world) return "the world cannot be read: the fleet's state is unknown";
  const age = inp.now.getTime() - Date.parse(inp.world.written_at);
  if (!(age <= inp.worldMaxAgeMs)) return `the world was last written ${Math.round(age / 1000)} s ago: the fleet's state is unknown`;
  const node = inp.world.world.nodes[t.node];
  if (!node) return `node ${t.node} never reported: its state is unknown`;
  if (node.status === "stale") return `node ${t.node} is stale (last heartbeat ${node.last_heartbeat ?? "never"}): a drill needs a node that reports`;
  const other = inp.open.find((a) => a.node === t.node && a.service === t.service && a.id !== inp.self);
  if (other) return `${name} already has an open ${other.kind} action (${other.id.slice(0, 8)}, ${other.state}): one thing at a time`;
  const svc = node.services[t.service];
  if (!healthy(svc)) return `${name} is ${looks(svc)}, not running and healthy: a drill starts from a healthy service`;
  for (const dep of spec.depends_on) {
    const d = node.services[dep];
    if (!healthy(d)) return `${name} depends on ${dep}, which is ${looks(d)}: a drill never touches a service whose dependencies are unhealthy`;
  }
  return null;
}

/** Where the drilled service is, as the world shows it after the kill. */
export type DrillSighting =
  /** The world has not yet folded the node's report after the kill, or still shows the old process. */
  | { phase: "before"; seen: string }
  /** Down (or already restarting): detected. */
  | { phase: "down"; seen: string }
  /** A new start, running and healthy: recovered. */
  | { phase: "recovered"; seen: string };

/**
 * Pure: what the world shows of the drilled service. `startsBefore` is the service's start count before the kill:
 * a higher count is a new process (the node's restart policy or the approved restart), so a recovery fast enough to
 * happen between two looks still counts as detected and recovered.
 */
export function sightDrill(snapshot: Snapshot, t: DrillTarget, mark: CommandMark, startsBefore: number): DrillSighting {
  const name = `${t.node}/${t.service}`;
  const node = snapshot.world.nodes[t.node];
  if (!node) return { phase: "before", seen: `node ${t.node} is not in the world` };
  if (node.status === "stale") return { phase: "before", seen: `node ${t.node} is stale` };
  const svc = node.services[t.service];
  if (!svc) return { phase: "before", seen: `${name} is not in the world` };
  const after = observedAfter(snapshot, node, svc, name, mark);
  if (!after.ok) return { phase: "before", seen: after.seen };
  const seen = `${name} is ${looks(svc)}${svc.detail ? ` (${svc.detail})` : ""}`;
  const restarted = svc.starts > startsBefore;
  if (restarted && healthy(svc)) return { phase: "recovered", seen };
  if (restarted || svc.state !== "running") return { phase: "down", seen };
  return { phase: "before", seen };
}

export interface DrillWindow {
  drillId: string;
  node: string;
  service: string;
  /** The kill was sent. */
  startedAt: Date;
  /** startedAt + window_ms. */
  endsAt: Date;
  approveRestart: boolean;
}

/**
 * Pure: whether the drill approves this pending action by itself. Only with the operator's `--approve`, only the
 * restart of exactly the drilled service on its node, proposed after the kill and inside the drill's window, and
 * only while the window lasts. Anything else waits for a human. (The repository checks the same bounds again under
 * the row lock when it approves.)
 */
export function followUpApproval(w: DrillWindow, a: Pick<Action, "id" | "node" | "service" | "kind" | "state" | "created_at">, now: Date): { approve: true } | { approve: false; why: string } {
  if (!w.approveRestart) return { approve: false, why: "the drill was proposed without --approve: the restart waits for an operator" };
  if (a.kind !== DRILL_FOLLOW_UP_KIND) return { approve: false, why: `a drill approves only a ${DRILL_FOLLOW_UP_KIND}, not a ${a.kind}` };
  if (a.node !== w.node || a.service !== w.service) return { approve: false, why: `${a.node}/${a.service} is not the drilled service ${w.node}/${w.service}` };
  if (a.state !== "pending") return { approve: false, why: `the action is ${a.state}, not pending` };
  const created = Date.parse(a.created_at);
  if (!(created >= w.startedAt.getTime())) return { approve: false, why: `the action was proposed at ${a.created_at}, before the drill's kill` };
  if (!(created <= w.endsAt.getTime())) return { approve: false, why: `the action was proposed at ${a.created_at}, after the drill's window` };
  if (now.getTime() > w.endsAt.getTime()) return { approve: false, why: "the drill's window is over" };
  return { approve: true };
}

/** When each step was seen (epoch ms); absent when it was not. */
export interface DrillMarks {
  sentAt: number;
  detectedAt?: number | undefined;
  proposedAt?: number | undefined;
  approvedAt?: number | undefined;
  recoveredAt?: number | undefined;
}

export interface DrillTimings {
  detected_ms: number | null;
  proposed_ms: number | null;
  approved_ms: number | null;
  recovered_ms: number | null;
}

/** Pure: each step's time after the kill was sent (clocks of different machines can put a step a little before it: 0 then). */
export function drillTimings(m: DrillMarks): DrillTimings {
  const after = (t: number | undefined) => (t === undefined || !Number.isFinite(t) ? null : Math.max(0, Math.round(t - m.sentAt)));
  return { detected_ms: after(m.detectedAt), proposed_ms: after(m.proposedAt), approved_ms: after(m.approvedAt), recovered_ms: after(m.recoveredAt) };
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** Pure: the drill's verdict against its objective, and the sentence that says why. */
export function drillVerdict(params: Pick<DrillParams, "objective_ms" | "window_ms">, t: DrillTimings, lastSeen: string): { verdict: DrillVerdict; reason: string } {
  const steps = [
    t.detected_ms !== null ? `down in the world after ${secs(t.detected_ms)}` : "never seen down in the world",
    t.proposed_ms !== null ? `restart pending after ${secs(t.proposed_ms)}` : "no restart proposed",
    t.approved_ms !== null ? `approved after ${secs(t.approved_ms)}` : null,
  ].filter((s): s is string => s !== null);
  const objective = `objective ${secs(params.objective_ms)}`;
  if (t.recovered_ms === null) {
    return { verdict: "missed", reason: `not healthy again within the ${secs(params.window_ms)} drill window (${objective}); ${steps.join(", ")}; last seen: ${lastSeen}` };
  }
  const back = `healthy again after ${secs(t.recovered_ms)}`;
  if (t.recovered_ms <= params.objective_ms) return { verdict: "passed", reason: `${back}, within the ${objective}; ${steps.join(", ")}` };
  return { verdict: "missed", reason: `${back}, over the ${objective}; ${steps.join(", ")}` };
}
