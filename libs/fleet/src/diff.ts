import type { Drift, DriftKind } from "@steward/contracts/drift";
import type { FleetSpec } from "./fleet-spec.js";
import type { NodeState, ServiceState, Snapshot, WorldState } from "@steward/contracts/world-state";
import { computeSecretDrift } from "./secret-drift.js";
import { classifyRepo } from "./repo-drift.js";
import { applyNodeComposeDrift } from "./compose-drift.js";

export interface DiffOptions {
  /** A snapshot older than this means the observer stopped making progress: everything declared is unknown. */
  snapshotMaxAgeMs: number;
}

type DriftInput = Omit<Drift, "key" | "severity" | "proposes" | "traceparent"> & { traceparent?: string | undefined };

const SEVERITY: Record<DriftKind, Drift["severity"]> = {
  missing: "action",
  down: "action",
  unhealthy: "action",
  unknown: "alert",
  unmanaged: "report",
  config_drift: "action",
  secret_drift: "alert",
  repo_drift: "action",
  deploy_failed: "alert",
};

const PROPOSES: Record<DriftKind, Drift["proposes"]> = {
  missing: "start",
  down: "restart",
  unhealthy: "restart",
  unknown: null,
  unmanaged: null,
  config_drift: "deploy",
  secret_drift: null,
  repo_drift: "pull",
  deploy_failed: null,
};

export const driftKey = (kind: DriftKind, node: string, service: string): string => `${kind}:${node}/${service}`;

function drift(d: DriftInput): Drift {
  const out: Drift = {
    key: driftKey(d.kind, d.node, d.service),
    kind: d.kind,
    node: d.node,
    service: d.service,
    severity: SEVERITY[d.kind],
    message: d.message,
    since: d.since,
    proposes: PROPOSES[d.kind],
  };
  if (d.traceparent) out.traceparent = d.traceparent;
  return out;
}

const RUNNING = new Set<ServiceState["state"]>(["running", "starting"]);

function exitDetail(svc: ServiceState): string {
  const parts: string[] = [];
  if (svc.exit_code !== undefined && svc.exit_code !== null) parts.push(`exit code ${svc.exit_code}`);
  if (svc.signal) parts.push(`signal ${svc.signal}`);
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

/** One declared service on a node that is up and reporting. */
function classify(node: string, svc: ServiceState): Drift | undefined {
  const base = { node, service: svc.name, since: svc.since, traceparent: svc.traceparent };
  if (svc.state === "unknown" || svc.health === "unknown") {
    return drift({ ...base, kind: "unknown", message: `state of ${svc.name} on ${node} is unknown` });
  }
  if (RUNNING.has(svc.state)) {
    if (svc.state === "running" && svc.health === "unhealthy") {
      return drift({ ...base, kind: "unhealthy", message: `${svc.name} on ${node} is running but unhealthy${svc.detail ? `: ${svc.detail}` : ""}` });
    }
    return undefined;
  }
  // stopped, exited or failed
  if (svc.starts === 0) {
    return drift({ ...base, kind: "missing", message: `${svc.name} on ${node} is declared but was never started (${svc.state})` });
  }
  return drift({ ...base, kind: "down", message: `${svc.name} on ${node} is ${svc.state}${exitDetail(svc)}` });
}

function staleNode(nodeName: string, node: NodeState, service: string, svc: ServiceState | undefined): Drift {
  return drift({
    kind: "unknown",
    node: nodeName,
    service,
    message: `node ${nodeName} is stale (last heartbeat ${node.last_heartbeat ?? "never"}): state of ${service} is unknown`,
    since: node.last_heartbeat ?? svc?.since ?? null,
    traceparent: svc?.traceparent,
  });
}

/** How far the snapshot can be trusted as a whole: the one input besides a node's own state that its findings depend on. */
export interface SnapshotAge {
  /** Milliseconds since the observer wrote the snapshot (NaN when written_at does not parse). */
  ageMs: number;
  /** Older than the limit, or of unknown age: the observer is not making progress, everything declared is unknown. */
  tooOld: boolean;
  writtenAt: string;
  maxAgeMs: number;
}

export function snapshotAge(writtenAt: string, now: Date, opts: DiffOptions): SnapshotAge {
  const ageMs = now.getTime() - Date.parse(writtenAt);
  // NaN (unparseable written_at) also counts as too old.
  return { ageMs, tooOld: !(ageMs <= opts.snapshotMaxAgeMs), writtenAt, maxAgeMs: opts.snapshotMaxAgeMs };
}

const byKey = (a: Drift, b: Drift): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * Pure: one node's findings (its declared services, unmanaged ones, its compose stacks, its deploy checkout), sorted
 * by key. They depend only on the spec, this node's state and the snapshot's age, so a supervisor re-diffs a node only
 * when one of those changed. `node` undefined: the node never reported.
 */
export function computeNodeDrift(spec: FleetSpec, nodeName: string, node: NodeState | undefined, age: SnapshotAge): Drift[] {
  const out: Drift[] = [];
  const declared = spec.nodes[nodeName]?.services ?? {};
  for (const service of Object.keys(declared)) {
    const svc = node?.services[service];
    if (age.tooOld) {
      out.push(
        drift({
          kind: "unknown",
          node: nodeName,
          service,
          message: `snapshot is ${Number.isFinite(age.ageMs) ? `${Math.round(age.ageMs / 1000)} s` : "of unknown age"} old (limit ${Math.round(age.maxAgeMs / 1000)} s): the observer is not making progress`,
          since: age.writtenAt,
          traceparent: svc?.traceparent,
        }),
      );
    } else if (!node) {
      out.push(drift({ kind: "unknown", node: nodeName, service, message: `node ${nodeName} never reported: is its agent deployed?`, since: null }));
    } else if (node.status === "stale") {
      out.push(staleNode(nodeName, node, service, svc));
    } else if (!svc) {
      out.push(drift({ kind: "missing", node: nodeName, service, message: `${service} is declared on ${nodeName} but not seen there`, since: null }));
    } else {
      const d = classify(nodeName, svc);
      if (d) out.push(d);
    }
  }

  if (!age.tooOld && node) {
    for (const svc of Object.values(node.services)) {
      if (svc.name in declared || !RUNNING.has(svc.state)) continue;
      out.push(
        drift({
          kind: "unmanaged",
          node: nodeName,
          service: svc.name,
          message: `${svc.name} runs on ${nodeName} but is not declared in the fleet spec`,
          since: svc.since,
          traceparent: svc.traceparent,
        }),
      );
    }
  }

  // Compose stacks: never deployed proposes a deploy; a running config hash unlike the spec's is config_drift.
  const withStacks = applyNodeComposeDrift(spec, nodeName, node, out, { snapshotTooOld: age.tooOld });
  if (!age.tooOld && node && node.status !== "stale" && node.repo && spec.nodes[nodeName]) {
    const d = classifyRepo(nodeName, node.repo);
    if (d) withStacks.push(d);
  }
  return withStacks.length > 1 ? withStacks.sort(byKey) : withStacks;
}

/** Pure: findings that span nodes (a secret's stores on several nodes: node `*`); they depend on every node they name. */
export function computeFleetDrift(spec: FleetSpec, world: WorldState, age: SnapshotAge): Drift[] {
  return computeSecretDrift(spec, world, { snapshotTooOld: age.tooOld });
}

/**
 * Pure diff of the declared fleet against the observed world: every node's findings (declared or reporting) and the
 * fleet-wide ones, sorted by key.
 * Unknown is never missing: a stale node, a node that never reported, or a snapshot too old to trust
 * yields `unknown` (alert only), so unreadable or stale data can never propose an action.
 */
export function computeDrift(spec: FleetSpec, snapshot: Snapshot, now: Date, opts: DiffOptions): Drift[] {
  const age = snapshotAge(snapshot.written_at, now, opts);
  const world = snapshot.world.nodes;
  const out: Drift[] = [];
  for (const nodeName of driftNodes(spec, snapshot.world)) out.push(...computeNodeDrift(spec, nodeName, world[nodeName], age));
  out.push(...computeFleetDrift(spec, snapshot.world, age));
  return out.sort(byKey);
}

/** Every node a diff looks at: declared in the spec or reporting in the world. */
export function driftNodes(spec: FleetSpec, world: WorldState): Set<string> {
  const names = new Set(Object.keys(spec.nodes));
  for (const n in world.nodes) names.add(n);
  return names;
}

/** Counts by kind, every kind present (for gauges and summaries). */
export function countByKind(drifts: readonly Drift[]): Record<DriftKind, number> {
  const c: Record<DriftKind, number> = { missing: 0, down: 0, unhealthy: 0, unknown: 0, unmanaged: 0, config_drift: 0, secret_drift: 0, repo_drift: 0, deploy_failed: 0 };
  for (const d of drifts) c[d.kind] += 1;
  return c;
}
