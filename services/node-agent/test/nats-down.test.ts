import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { freePort, startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createNodeAgent, type NodeAgent } from "../src/agent.js";
import { httpService, metricValue, readStream, tempFleet, testConfig, type TempFleet } from "./helpers.js";

let nats: NatsServerHandle;
let admin: NatsConnection;
const fleets: TempFleet[] = [];
const agents: NodeAgent[] = [];

beforeAll(async () => {
  nats = await startNats();
  admin = await connectNats(nats.url, "admin");
  await ensureStreams(admin);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await admin?.close();
  await nats?.stop();
  for (const f of fleets) await f.cleanup();
});

async function newAgent(node: string, services: Record<string, unknown>, over: Parameters<typeof testConfig>[3]) {
  const fleet = await tempFleet(node);
  fleets.push(fleet);
  await fleet.write(services);
  const registry = createRegistry("node-agent-test", false);
  // No connection injected: the agent connects (and keeps retrying) by itself.
  const agent = createNodeAgent({ config: testConfig(node, fleet, nats.url, over), logger: silentLogger(), registry });
  agents.push(agent);
  return { agent, registry, svc: (name: string) => agent.status().find((s) => s.service === name) };
}

describe("node-agent while NATS is unreachable", () => {
  it("keeps an exit seen during an outage and delivers it, in order, after reconnect", async () => {
    const { agent, registry, svc } = await newAgent("edge1", { app: httpService(await freePort()) }, { heartbeatMs: 200, hostProbeMs: 200 });
    await agent.start();
    await waitFor("app healthy", () => svc("app")?.health === "healthy", 10_000);
    await waitFor("running event stored", async () => (await readStream(admin, "edge1")).some((m) => m.event.type === "service" && m.event.state === "running"), 10_000);

    await nats.stop({ keepStore: true });
    const pid = svc("app")!.pid!;
    process.kill(pid, "SIGKILL");
    await waitFor("app exited locally", () => svc("app")?.state === "exited", 3000);
    // Probing goes on during the outage: more events are taken and buffered.
    const buffered = await metricValue(registry, "steward_node_agent_backlog_size");
    await waitFor("events buffered during the outage", async () => (await metricValue(registry, "steward_node_agent_backlog_size")) >= buffered + 2, 5000);
    await nats.restart();

    const exit = await waitFor(
      "exit event stored after reconnect",
      async () => (await readStream(admin, "edge1")).find((m) => m.event.type === "service" && m.event.service === "app" && m.event.state === "exited"),
      15_000,
    );
    expect(exit.event).toMatchObject({ signal: "SIGKILL" });
    expect(exit.msgId).toBe(exit.event.id);
    await waitFor("a heartbeat after the exit", async () => (await readStream(admin, "edge1")).some((m) => m.seq > exit.seq && m.event.type === "heartbeat"), 5000);
    const stored = await readStream(admin, "edge1");
    const ids = stored.map((m) => m.event.id);
    expect(new Set(ids).size).toBe(ids.length);
    // Buffered heartbeats went out in the order they were taken.
    const hbTimes = stored.filter((m) => m.event.type === "heartbeat").map((m) => Date.parse(m.event.ts));
    expect(hbTimes).toEqual([...hbTimes].sort((a, b) => a - b));
    expect(agent.droppedEvents).toBe(0);
  });

  it("starts with NATS down, overflows its bounded backlog dropping the oldest, counts it and reports it in heartbeats", async () => {
    await nats.stop({ keepStore: true });
    const { agent, registry, svc } = await newAgent("edge2", { app: httpService(await freePort()) }, { heartbeatMs: 50, hostProbeMs: 50, backlogMax: 5 });
    await agent.start();
    await waitFor("app healthy without NATS", () => svc("app")?.health === "healthy", 10_000);
    await waitFor("backlog overflow", async () => (await metricValue(registry, "steward_node_agent_events_dropped_total")) >= 10, 10_000);
    expect(await metricValue(registry, "steward_node_agent_backlog_size")).toBe(5);
    await nats.restart();
    await waitFor("heartbeat with dropped_events stored", async () => (await readStream(admin, "edge2")).some((m) => m.event.type === "heartbeat" && m.event.dropped_events > 0), 15_000);
    const stored = await readStream(admin, "edge2");
    // The events from the agent's start (its first service events and heartbeat) were the oldest: dropped.
    expect(stored.some((m) => m.event.type === "service" && m.event.state === "running")).toBe(false);
    expect(stored.some((m) => m.event.type === "heartbeat" && m.event.dropped_events === 0)).toBe(false);
    expect(agent.droppedEvents).toBeGreaterThanOrEqual(10);
  });
});
