import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { NodeState, ServiceState, Snapshot } from "@steward/contracts/world-state";

export const T0 = "2025-01-01T00:00:00.000Z";
export const TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

export function svc(name: string, over: Partial<ServiceState> = {}): ServiceState {
  return {
    name,
    state: "running",
    health: "healthy",
    starts: 1,
    declared: true,
    since: T0,
    updated_at: T0,
    checks: {},
    last_event_id: `ev-${name}-0001`,
    ...over,
  };
}

export function node(name: string, services: ServiceState[], over: Partial<NodeState> = {}): NodeState {
  return {
    name,
    status: "up",
    last_heartbeat: T0,
    heartbeat_interval_ms: 5000,
    agent_started_at: T0,
    dropped_events: 0,
    host: null,
    services: Object.fromEntries(services.map((s) => [s.name, s])),
    ...over,
  };
}

export function snapshot(nodes: NodeState[], writtenAt = T0, lastSeq = 10): Snapshot {
  return {
    world: { version: 1, last_seq: lastSeq, events_applied: lastSeq, event_time: writtenAt, nodes: Object.fromEntries(nodes.map((n) => [n.name, n])) },
    written_at: writtenAt,
    observer_id: "observer-test",
  };
}

/** A parsed spec with process services (defaults filled in as the schema would). */
export function spec(nodes: Record<string, string[]>): FleetSpec {
  return {
    version: 1,
    fleet: "test",
    deploy: { max_parallel: 1, health_timeout: 120_000 },
    secrets: {},
    nodes: Object.fromEntries(
      Object.entries(nodes).map(([n, services]) => [
        n,
        {
          labels: {},
          services: Object.fromEntries(
            services.map((s) => [s, { kind: "process" as const, command: ["sleep", "1000"], env: {}, restart: "never" as const, autostart: true, health: [], depends_on: [] }]),
          ),
        },
      ]),
    ),
  };
}

/** The same spec as YAML, for the spec file. */
export function specYaml(nodes: Record<string, string[]>): string {
  const lines = ["version: 1", "fleet: test", "nodes:"];
  for (const [n, services] of Object.entries(nodes)) {
    lines.push(`  ${n}:`, "    services:");
    if (services.length === 0) lines[lines.length - 1] += " {}";
    for (const s of services) lines.push(`      ${s}:`, "        kind: process", "        command: [sleep, '1000']");
  }
  return lines.join("\n") + "\n";
}
