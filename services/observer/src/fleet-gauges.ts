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
  /** The per-service and per-check series were left out: the fleet has more of them than the limit. */
  capped: boolean;
}

/** Per-service and per-check series a world would export: two per service, one per check. */
export function serviceSeriesCount(world: WorldState): number {
  let n = 0;
  for (const node of Object.values(world.nodes)) for (const s of Object.values(node.services)) n += 2 + Object.keys(s.checks).length;
  return n;
}

/**
 * The fleet as Prometheus gauges, read from a world: a node is up while its heartbeats arrive; a service is up while it
 * runs and healthy while its checks pass (a stale node's services are neither: we do not know). Above `maxServiceSeries`
 * per-service and per-check series (5,000 nodes x 20 services with a check each: 300,000 series, a 22 MB scrape taking
 * seconds of the observer's only thread), only the node series are exported. Pure, for the table test.
 */
export function fleetSamples(world: WorldState, maxServiceSeries = Number.POSITIVE_INFINITY): FleetSamples {
  const capped = serviceSeriesCount(world) > maxServiceSeries;
  const out: FleetSamples = { nodeUp: [], nodeLastHeartbeat: [], serviceUp: [], serviceHealthy: [], checkFailures: [], capped };
  for (const n of Object.values(world.nodes)) {
    out.nodeUp.push({ labels: { node: n.name }, value: n.status === "up" ? 1 : 0 });
    if (n.last_heartbeat) out.nodeLastHeartbeat.push({ labels: { node: n.name }, value: Date.parse(n.last_heartbeat) / 1000 });
    if (capped) continue;
    for (const s of Object.values(n.services)) {
      const labels = { node: n.name, service: s.name };
      out.serviceUp.push({ labels, value: s.state === "running" ? 1 : 0 });
      out.serviceHealthy.push({ labels, value: s.health === "healthy" ? 1 : 0 });
      for (const [check, c] of Object.entries(s.checks)) out.checkFailures.push({ labels: { ...labels, check }, value: c.consecutive_failures });
    }
  }
  return out;
}

/** The default of FLEET_METRICS_MAX_SERIES: 1,000 nodes x 20 services with a check each (60,000) stay under it. */
export const FLEET_METRICS_MAX_SERIES = 100_000;

/**
 * Registers the fleet gauges, computed at scrape time from `world()`: the world the active observer folds and writes
 * to the world store. A standby answers undefined and exports none of them, so a pair never doubles the fleet. The
 * samples are computed once per scrape (not once per gauge).
 */
export function registerFleetGauges(registry: Registry, world: () => WorldState | undefined, maxServiceSeries = FLEET_METRICS_MAX_SERIES): void {
  let memo: { world: WorldState; seq: number; applied: number; samples: FleetSamples } | undefined;
  const samples = (): FleetSamples | undefined => {
    const w = world();
    if (!w) return undefined;
    // The observer folds into its world in place: the sequence tells a new scrape from the same one.
    if (memo?.world !== w || memo.seq !== w.last_seq || memo.applied !== w.events_applied) memo = { world: w, seq: w.last_seq, applied: w.events_applied, samples: fleetSamples(w, maxServiceSeries) };
    return memo.samples;
  };
  const gauge = <L extends string>(name: string, help: string, labelNames: L[], key: Exclude<keyof FleetSamples, "capped">) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        const f = samples();
        if (f) for (const s of f[key] as Samples<L>) this.set(s.labels, s.value);
      },
    });
  gauge("steward_node_up", "1 while the node's heartbeats arrive, 0 once it is stale", ["node"], "nodeUp");
  gauge("steward_node_last_heartbeat_timestamp_seconds", "Unix time of the node's last heartbeat", ["node"], "nodeLastHeartbeat");
  gauge("steward_service_up", "1 while the fleet service runs on the node, 0 otherwise (stopped, exited, failed, or unknown on a stale node)", ["node", "service"], "serviceUp");
  gauge("steward_service_healthy", "1 while the fleet service's health checks pass, 0 otherwise", ["node", "service"], "serviceHealthy");
  gauge("steward_service_check_consecutive_failures", "Consecutive failures of each health check of a fleet service", ["node", "service", "check"], "checkFailures");
  new Gauge({
    name: "steward_observer_fleet_series_capped",
    help: "1 while the per-service and per-check fleet series are left out: the fleet has more than FLEET_METRICS_MAX_SERIES of them",
    registers: [registry],
    collect() {
      this.set(samples()?.capped ? 1 : 0);
    },
  });
}
