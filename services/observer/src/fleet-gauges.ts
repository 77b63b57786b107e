import type { WorldState } from "@steward/contracts/world-state";
import { Gauge, type Registry } from "@steward/platform/metrics";

/** One gauge's samples: label values and the value. */
export type Samples<L extends string> = { labels: Record<L, string>; value: number }[];

export interface FleetSamples {
  nodeUp: Samples<"node">;
  nodeLastHeartbeat: Samples<"node">;
  serviceUp: Samples<"node" | "service">;
  serviceHealthy: Samples<"node" | "service">;
  checkFailures: Samples<"node" | "service" | "check">;
}

/**
 * The fleet as Prometheus gauges, read from a world: a node is up while its heartbeats arrive; a service is up while it
 * runs and healthy while its checks pass (a stale node's services are neither: we do not know). Pure, for the table test.
 */
export function fleetSamples(world: WorldState): FleetSamples {
  const out: FleetSamples = { nodeUp: [], nodeLastHeartbeat: [], serviceUp: [], serviceHealthy: [], checkFailures: [] };
  for (const n of Object.values(world.nodes)) {
    out.nodeUp.push({ labels: { node: n.name }, value: n.status === "up" ? 1 : 0 });
    if (n.last_heartbeat) out.nodeLastHeartbeat.push({ labels: { node: n.name }, value: Date.parse(n.last_heartbeat) / 1000 });
    for (const s of Object.values(n.services)) {
      const labels = { node: n.name, service: s.name };
      out.serviceUp.push({ labels, value: s.state === "running" ? 1 : 0 });
      out.serviceHealthy.push({ labels, value: s.health === "healthy" ? 1 : 0 });
      for (const [check, c] of Object.entries(s.checks)) out.checkFailures.push({ labels: { ...labels, check }, value: c.consecutive_failures });
    }
  }
  return out;
}

/**
 * Registers the fleet gauges, computed at scrape time from `world()`: the world the active observer folds and writes
 * to the world store. A standby answers undefined and exports none of them, so a pair never doubles the fleet.
 */
export function registerFleetGauges(registry: Registry, world: () => WorldState | undefined): void {
  // Each gauge reads the world when scraped (one pass per gauge: a whole fleet is a few milliseconds).
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], key: keyof FleetSamples) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const w = world();
        if (w) for (const s of fleetSamples(w)[key] as Samples<L>) this.set(s.labels, s.value);
      },
    });
  gauge("steward_node_up", "1 while the node's heartbeats arrive, 0 once it is stale", ["node"], "nodeUp");
  gauge("steward_node_last_heartbeat_timestamp_seconds", "Unix time of the node's last heartbeat", ["node"], "nodeLastHeartbeat");
  gauge("steward_service_up", "1 while the fleet service runs on the node, 0 otherwise (stopped, exited, failed, or unknown on a stale node)", ["node", "service"], "serviceUp");
  gauge("steward_service_healthy", "1 while the fleet service's health checks pass, 0 otherwise", ["node", "service"], "serviceHealthy");
  gauge("steward_service_check_consecutive_failures", "Consecutive failures of each health check of a fleet service", ["node", "service", "check"], "checkFailures");
}
