import type { Drift } from "@steward/contracts/drift";
import type { FleetSpec } from "./fleet-spec.js";
import type { NodeState, ServiceState } from "@steward/contracts/world-state";

export interface ComposeDriftOptions {
  /** The snapshot is too old to trust: nothing is added (the services are already `unknown`). */
  snapshotTooOld: boolean;
}

const short = (h: string | undefined): string => (h === undefined ? "none" : h.startsWith("sha256:") ? h.slice(7, 19) : h.slice(0, 12));

/** Kinds that already say what is wrong with a stack; config drift waits until they are resolved. */
const BLOCKING = new Set<Drift["kind"]>(["missing", "down", "unknown"]);

/**
 * Compose-specific drift, applied to the service drifts the generic diff computed (pure):
 * - a declared stack that was never deployed (no containers) is `missing` and proposes `deploy`, not `start`:
 *   a start only touches what exists, and nothing does;
 * - a running stack whose config hash (label on its containers) differs from the hash the agent computed from
 *   the spec and its deploy checkout is `config_drift`, which proposes `deploy`. A stack the agent cannot hash
 *   (unreadable compose file) gets no config drift: unknown is not drift.
 * Applied to one node's drifts (`node` undefined: it never reported); the diff goes node by node.
 */
export function applyNodeComposeDrift(spec: FleetSpec, nodeName: string, node: NodeState | undefined, drifts: readonly Drift[], opts: ComposeDriftOptions): Drift[] {
  const services = spec.nodes[nodeName]?.services ?? {};
  let stacks = false;
  for (const name in services) if (services[name]?.kind === "compose") stacks = true;
  if (!stacks) return [...drifts];
  const out = drifts.map((d): Drift => {
    if (d.kind !== "missing" || services[d.service]?.kind !== "compose") return d;
    const desired = node?.services[d.service]?.desired_config_hash;
    return { ...d, proposes: "deploy", message: `stack ${d.service} is declared on ${d.node} but was never deployed there`, ...(desired ? { target: desired } : {}) };
  });
  if (opts.snapshotTooOld || !node || node.status !== "up") return out;
  const blocked = new Set(out.filter((d) => BLOCKING.has(d.kind)).map((d) => d.service));
  for (const [service, svcSpec] of Object.entries(services)) {
    if (svcSpec.kind !== "compose" || blocked.has(service)) continue;
    const svc: ServiceState | undefined = node.services[service];
    if (!svc || svc.state !== "running" || !svc.desired_config_hash) continue;
    if (svc.config_hash === svc.desired_config_hash) continue;
    const running = svc.config_hash === undefined ? "containers not deployed by Steward (no config hash)" : `config ${short(svc.config_hash)}`;
    const d: Drift = {
      key: `config_drift:${nodeName}/${service}`,
      kind: "config_drift",
      node: nodeName,
      service,
      severity: "action",
      message: `stack ${service} on ${nodeName} runs ${running}; the spec asks for ${short(svc.desired_config_hash)}`,
      since: svc.since,
      proposes: "deploy",
      target: svc.desired_config_hash,
    };
    if (svc.traceparent) d.traceparent = svc.traceparent;
    out.push(d);
  }
  return out;
}
