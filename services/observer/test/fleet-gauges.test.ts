import { describe, expect, it } from "vitest";
import { emptyWorld, type NodeState, type ServiceState, type WorldState } from "@steward/contracts/world-state";
import { createRegistry } from "@steward/platform/metrics";
import { sampleValue } from "@steward/testkit";
import { fleetSamples, registerFleetGauges, serviceSeriesCount } from "../src/fleet-gauges.js";

const T = "2026-12-01T06:00:00.000Z";

function svc(name: string, over: Partial<ServiceState> = {}): ServiceState {
  return { name, state: "running", health: "healthy", starts: 1, declared: true, since: T, updated_at: T, checks: {}, last_event_id: "e1", ...over };
}

function node(name: string, services: ServiceState[], over: Partial<NodeState> = {}): NodeState {
  return { name, status: "up", last_heartbeat: T, heartbeat_interval_ms: 1000, agent_started_at: T, dropped_events: 0, host: null, services: Object.fromEntries(services.map((s) => [s.name, s])), ...over };
}

function world(...nodes: NodeState[]): WorldState {
  return { ...emptyWorld(), nodes: Object.fromEntries(nodes.map((n) => [n.name, n])) };
}

describe("fleetSamples: the fleet as gauges", () => {
  it.each([
    ["running and healthy", svc("web"), 1, 1],
    ["running, checks failing", svc("web", { health: "unhealthy", checks: { http: { ok: false, consecutive_failures: 3, at: T } } }), 1, 0],
    ["running, still starting", svc("web", { health: "starting" }), 1, 0],
    ["running without checks", svc("web", { health: "none" }), 1, 0],
    ["exited", svc("web", { state: "exited", health: "unhealthy", exit_code: 1 }), 0, 0],
    ["failed", svc("web", { state: "failed", health: "unhealthy" }), 0, 0],
    ["stopped", svc("web", { state: "stopped", health: "none" }), 0, 0],
    ["unknown (its node is stale)", svc("web", { state: "unknown", health: "unknown" }), 0, 0],
  ])("%s: up %i, healthy %i", (_what, s, up, healthy) => {
    const f = fleetSamples(world(node("n1", [s])));
    expect(f.serviceUp).toEqual([{ labels: { node: "n1", service: "web" }, value: up }]);
    expect(f.serviceHealthy).toEqual([{ labels: { node: "n1", service: "web" }, value: healthy }]);
  });

  it("nodes: up or stale, the last heartbeat as Unix seconds (none before the first); checks by their consecutive failures", () => {
    const f = fleetSamples(
      world(
        node("a", [svc("web", { checks: { http: { ok: false, consecutive_failures: 4, at: T }, tcp: { ok: true, consecutive_failures: 0, at: T } } })]),
        node("b", [], { status: "stale" }),
        node("c", [], { last_heartbeat: null }),
      ),
    );
    expect(f.nodeUp).toEqual([
      { labels: { node: "a" }, value: 1 },
      { labels: { node: "b" }, value: 0 },
      { labels: { node: "c" }, value: 1 },
    ]);
    expect(f.nodeLastHeartbeat).toEqual([
      { labels: { node: "a" }, value: Date.parse(T) / 1000 },
      { labels: { node: "b" }, value: Date.parse(T) / 1000 },
    ]);
    expect(f.checkFailures).toEqual([
      { labels: { node: "a", service: "web", check: "http" }, value: 4 },
      { labels: { node: "a", service: "web", check: "tcp" }, value: 0 },
    ]);
  });
});

describe("fleetSamples: a cap on per-service series", () => {
  const w = world(node("a", [svc("web", { checks: { http: { ok: true, consecutive_failures: 0, at: T } } }), svc("db")]), node("b", [svc("web")]));
  it.each([
    ["under the cap", 10, false],
    ["at the cap (2 per service, 1 per check: 7)", 7, false],
    ["one over", 6, true],
    ["0: node series only", 0, true],
  ])("%s", (_what, max, capped) => {
    expect(serviceSeriesCount(w)).toBe(7);
    const f = fleetSamples(w, max);
    expect(f.capped).toBe(capped);
    expect(f.nodeUp).toHaveLength(2);
    expect(f.nodeLastHeartbeat).toHaveLength(2);
    expect([f.serviceUp.length, f.serviceHealthy.length, f.checkFailures.length]).toEqual(capped ? [0, 0, 0] : [3, 3, 1]);
  });
});

describe("registerFleetGauges", () => {
  it("above the cap: node series only, and steward_observer_fleet_series_capped says so", async () => {
    const registry = createRegistry("observer", false);
    let current = world(node("n1", [svc("web"), svc("db")]));
    registerFleetGauges(registry, () => current, 3);
    let text = await registry.metrics();
    expect(sampleValue(text, "steward_node_up", { node: "n1" })).toBe(1);
    expect(sampleValue(text, "steward_service_up")).toBeUndefined();
    expect(sampleValue(text, "steward_observer_fleet_series_capped")).toBe(1);
    current = world(node("n1", [svc("web")]));
    text = await registry.metrics();
    expect(sampleValue(text, "steward_service_up", { node: "n1", service: "web" })).toBe(1);
    expect(sampleValue(text, "steward_observer_fleet_series_capped")).toBe(0);
  });


  it("exports the world at scrape time, follows it, and exports nothing while there is none (a standby)", async () => {
    let current: WorldState | undefined = world(node("n1", [svc("web"), svc("db", { state: "exited", health: "unhealthy" })]));
    const registry = createRegistry("observer", false);
    registerFleetGauges(registry, () => current);
    let text = await registry.metrics();
    expect(sampleValue(text, "steward_service_up", { node: "n1", service: "web" })).toBe(1);
    expect(sampleValue(text, "steward_service_up", { node: "n1", service: "db" })).toBe(0);
    expect(sampleValue(text, "steward_service_healthy", { node: "n1", service: "web" })).toBe(1);
    expect(sampleValue(text, "steward_node_up", { node: "n1" })).toBe(1);

    current = world(node("n1", [svc("web", { state: "unknown", health: "unknown" })], { status: "stale" }));
    text = await registry.metrics();
    expect(sampleValue(text, "steward_service_up", { node: "n1", service: "web" })).toBe(0);
    expect(sampleValue(text, "steward_service_up", { node: "n1", service: "db" })).toBeUndefined();
    expect(sampleValue(text, "steward_node_up", { node: "n1" })).toBe(0);

    current = undefined;
    text = await registry.metrics();
    for (const name of ["steward_service_up", "steward_service_healthy", "steward_node_up"]) expect(sampleValue(text, name)).toBeUndefined();
    expect(text).toContain("# TYPE steward_service_up gauge");
  });
});
