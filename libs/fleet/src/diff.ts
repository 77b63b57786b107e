import type { Drift, DriftKind } from "@steward/contracts/drift";
import type { FleetSpec } from "./fleet-spec.js";
import type { NodeState, ServiceState, Snapshot } from "@steward/contracts/world-state";
import { computeSecretDrift } from "./secret-drift.js";
import { computeRepoDrift } from "./repo-drift.js";
import { applyComposeDrift } from "./compose-drift.js";

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

/**
 * Pure diff of the declared fleet against the observed world.
 * Unknown is never missing: a stale node, a node that never reported, or a snapshot too old to trust
 * yields `unknown` (alert only), so unreadable or stale data can never propose an action.
 */
export function computeDrift(spec: FleetSpec, snapshot: Snapshot, now: Date, opts: DiffOptions): Drift[] {
  const out: Drift[] = [];
  const ageMs = now.getTime() - Date.parse(snapshot.written_at);
  // NaN (unparseable written_at) also counts as too old.
  const tooOld = !(ageMs <= opts.snapshotMaxAgeMs);
  const world = snapshot.world.nodes;

  for (const [nodeName, nodeSpec] of Object.entries(spec.nodes)) {
    const node = world[nodeName];
    for (const service of Object.keys(nodeSpec.services)) {
      const svc = node?.services[service];
      if (tooOld) {
        out.push(
          drift({
            kind: "unknown",
            node: nodeName,
            service,
            message: `snapshot is ${Number.isFinite(ageMs) ? `${Math.round(ageMs / 1000)} s` : "of unknown age"} old (limit ${Math.round(opts.snapshotMaxAgeMs / 1000)} s): the observer is not making progress`,
            since: snapshot.written_at,
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
  }

  if (!tooOld) {
    for (const [nodeName, node] of Object.entries(world)) {
      const declared = spec.nodes[nodeName]?.services ?? {};
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
  }

  // Compose stacks: never deployed proposes a deploy; a running config hash unlike the spec's is config_drift.
  out.splice(0, out.length, ...applyComposeDrift(spec, snapshot.world, out, { snapshotTooOld: tooOld }));

  out.push(...computeSecretDrift(spec, snapshot.world, { snapshotTooOld: tooOld }));

  out.push(...computeRepoDrift(spec, snapshot, now, opts));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Counts by kind, every kind present (for gauges and summaries). */
export function countByKind(drifts: readonly Drift[]): Record<DriftKind, number> {
  const c: Record<DriftKind, number> = { missing: 0, down: 0, unhealthy: 0, unknown: 0, unmanaged: 0, config_drift: 0, secret_drift: 0, repo_drift: 0, deploy_failed: 0 };
  for (const d of drifts) c[d.kind] += 1;
  return c;
}
