import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Evidence } from "./evidence.js";
import { scopeOf } from "./trust-boundary.js";

/**
 * Sensitivity comes from the spec (`sensitive: true` on a service or a node), never from who filed the task: a task
 * whose evidence touches such a service is served by the local model only, supervisor escalations included.
 */
export type Sensitivity = { sensitive: false } | { sensitive: true; why: string };

/**
 * Pure: whether anything the task touches is sensitive. "Touches" is everything its evidence holds (targets and
 * their declared dependencies, drift findings, world records, events, log tails, host metrics of a node). Without a
 * spec nobody can tell, so the answer is sensitive: unknown is never treated as "not sensitive".
 */
export function sensitivityOf(spec: FleetSpec | undefined, ev: Evidence | null): Sensitivity {
  if (!spec) return { sensitive: true, why: "the fleet spec could not be read, so which services are sensitive is unknown" };
  if (!ev) return { sensitive: false };
  const services = new Set<string>([...scopeOf(ev.targets, spec).keys(), ...ev.drifts.map((d) => `${d.node}/${d.service}`), ...Object.keys(ev.services), ...Object.keys(ev.logs), ...Object.keys(ev.crashes)]);
  const nodes = new Set<string>([...Object.keys(ev.hosts), ...Object.keys(ev.events), ...[...services].map((s) => s.split("/")[0] ?? "")]);
  const hits: string[] = [];
  for (const node of [...nodes].sort()) if (spec.nodes[node]?.sensitive === true) hits.push(`node ${node}`);
  for (const key of [...services].sort()) {
    const [node = "", service = ""] = key.split("/");
    if (spec.nodes[node]?.services[service]?.sensitive === true) hits.push(key);
  }
  return hits.length > 0 ? { sensitive: true, why: `the task touches ${hits.join(", ")} (sensitive: true in fleet.yaml)` } : { sensitive: false };
}

/** Pure: whether what one tool call reads (a node, or a service on it) is sensitive in the spec. */
export function sensitivityOfReads(spec: FleetSpec, reads: readonly { node: string; service?: string }[]): Sensitivity {
  const hits: string[] = [];
  for (const r of reads) {
    if (spec.nodes[r.node]?.sensitive === true) hits.push(`node ${r.node}`);
    else if (r.service !== undefined && spec.nodes[r.node]?.services[r.service]?.sensitive === true) hits.push(`${r.node}/${r.service}`);
  }
  return hits.length > 0 ? { sensitive: true, why: `the investigation read ${[...new Set(hits)].join(", ")} (sensitive: true in fleet.yaml)` } : { sensitive: false };
}
