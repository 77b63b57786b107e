import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { initTracing, withSpan } from "@steward/platform/tracing";
import { signNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { silentLogger } from "@steward/platform/logger";
import type { ServiceEvent } from "@steward/contracts/events";
import { freePort, startNats, waitFor, waitForTicks, type NatsServerHandle } from "@steward/testkit";
import { createNodeAgent, type NodeAgent } from "../src/agent.js";
import { COMMAND_KEYS, commandBody, httpService, metricValue, readStream, requestRaw, sendCommand, tapEvents, tempFleet, testConfig, type TempFleet } from "./helpers.js";

const node = "web1";
const exporter = new InMemorySpanExporter();
const tracing = initTracing({ component: "node-agent-test", exporter });

let nats: NatsServerHandle;
let nc: NatsConnection;
let fleet: TempFleet;
let agent: NodeAgent;
let registry: Registry;
let tap: ReturnType<typeof tapEvents>;
const ports: Record<string, number> = {};
let services: Record<string, Record<string, unknown>>;

const svc = (name: string) => agent.status().find((s) => s.service === name);
const heartbeats = async () => tap.events.filter((e) => e.event.type === "heartbeat").length;
const serviceEvents = (name: string) => tap.events.filter((e) => e.event.type === "service" && e.event.service === name) as { event: ServiceEvent; at: number }[];

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "agent-test");
  await ensureStreams(nc);
  tap = tapEvents(nc, node);
  fleet = await tempFleet(node);
  for (const n of ["web", "api", "later", "steady", "phoenix"]) ports[n] = await freePort();
  services = {
    web: httpService(ports.web!),
    api: httpService(ports.api!),
    later: httpService(ports.later!, { autostart: false }),
    steady: httpService(ports.steady!, { depends_on: ["web"] }),
    phoenix: httpService(ports.phoenix!, {
      restart: "on-failure",
      health: [
        { type: "tcp", port: ports.phoenix, interval: "200ms" },
        { type: "command", name: "self-test", command: [process.execPath, "-e", "process.exit(0)"], interval: "200ms" },
      ],
    }),
  };
  await fleet.write(services);
  registry = createRegistry("node-agent-test", false);
  agent = createNodeAgent({ config: testConfig(node, fleet, nats.url), nc, logger: silentLogger(), registry });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  tap?.stop();
  await nc?.close();
  await nats?.stop();
  await fleet?.cleanup();
  await tracing.shutdown();
});

describe("node-agent supervising real processes", () => {
  it("starts autostart services in dependency order, logs their output, and their http checks turn healthy", async () => {
    await waitFor("web, api, steady and phoenix healthy", () => ["web", "api", "steady", "phoenix"].every((n) => svc(n)?.health === "healthy"), 10_000);
    for (const n of ["web", "api", "steady"]) expect(svc(n)).toMatchObject({ state: "running", starts: 1, declared: true });
    const started = tap.events.filter((e) => e.event.type === "service" && e.event.state === "running").map((e) => (e.event as ServiceEvent).service);
    expect(started.indexOf("web")).toBeLessThan(started.indexOf("steady"));
    const log = await readFile(join(fleet.dir, "logs", "web.log"), "utf8");
    expect(log).toContain(`listening on ${ports.web}`);
    const healthy = tap.events.find((e) => e.event.type === "health_check" && e.event.service === "web" && e.event.ok);
    expect(healthy?.event).toMatchObject({ check: "http-0", consecutive_failures: 0 });
  });

  it("reports an autostart:false service as stopped with starts 0", async () => {
    expect(svc("later")).toMatchObject({ state: "stopped", starts: 0, health: "none", declared: true });
    expect(svc("later")?.pid).toBeUndefined();
    expect(serviceEvents("later")[0]?.event).toMatchObject({ state: "stopped", starts: 0 });
    const hb = await waitFor("a heartbeat", () => tap.events.find((e) => e.event.type === "heartbeat"));
    expect(hb.event.type === "heartbeat" && hb.event.services.find((s) => s.service === "later")).toMatchObject({ state: "stopped", starts: 0 });
  });

  it("publishes heartbeats at the configured interval, restating every service", async () => {
    await waitFor("4 heartbeats", () => tap.events.filter((e) => e.event.type === "heartbeat").length >= 4, 20_000);
    const hbs = tap.events.filter((e) => e.event.type === "heartbeat");
    // Gaps between the times the agent took each heartbeat (its `ts`): arrival times at the tap bunch up on a busy
    // machine. Timers never fire early but slip late under load (a tick is skipped while one runs), so the bounds
    // are: not faster than the 500 ms asked for, and nowhere near the 5 s default.
    const gaps = hbs.slice(2).map((h, i) => Date.parse(h.event.ts) - Date.parse(hbs[i + 1]!.event.ts));
    for (const g of gaps) expect(g).toBeGreaterThan(250);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    expect(mean).toBeGreaterThan(400);
    expect(mean).toBeLessThan(2000);
    const last = hbs.at(-1)!.event;
    expect(last).toMatchObject({ interval_ms: 500, dropped_events: 0 });
    expect(last.type === "heartbeat" && last.services.map((s) => s.service)).toEqual(["api", "later", "phoenix", "steady", "web"]);
    const host = await waitFor("a host event", () => tap.events.find((e) => e.event.type === "host"));
    expect(host.event.type === "host" && host.event.disks.map((d) => d.path)).toContain("/");
  });

  it("sees kill -9 at once: an exited/SIGKILL service event arrives before any heartbeat says so", async () => {
    const pid = svc("web")!.pid!;
    const before = tap.events.length;
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");
    const exited = await waitFor("web exited event", () => tap.events.slice(before).find((e) => e.event.type === "service" && e.event.service === "web" && e.event.state === "exited"), 15_000, 5);
    // "At once" is proven by the order below (before any heartbeat); the clock bound only catches a poll of seconds.
    expect(exited.at - killedAt).toBeLessThan(5000);
    expect(exited.event).toMatchObject({ signal: "SIGKILL", exit_code: null, declared: true, starts: 1 });
    expect((exited.event as ServiceEvent).pid).toBeUndefined();
    // The first event that tells of the exit is the service event, not a heartbeat.
    const first = tap.events.slice(before).find((e) => (e.event.type === "service" && e.event.service === "web" && e.event.state === "exited") || (e.event.type === "heartbeat" && e.event.services.some((s) => s.service === "web" && s.state === "exited")));
    expect(first?.event.type).toBe("service");
    expect(svc("web")).toMatchObject({ state: "exited", signal: "SIGKILL", health: "none" });
    // restart policy is `never` by default: it stays down, still after three heartbeats (longer than the 1 s a
    // policy restart waits first).
    await waitForTicks("heartbeats", heartbeats, 3);
    expect(svc("web")).toMatchObject({ state: "exited", starts: 1 });
  });

  it("restarts a service with restart: on-failure after it is killed, and its tcp and command checks pass again", async () => {
    const pid = svc("phoenix")!.pid!;
    const before = tap.events.length;
    process.kill(pid, "SIGKILL");
    await waitFor("phoenix running again", () => svc("phoenix")?.state === "running" && svc("phoenix")?.pid !== pid, 20_000);
    expect(svc("phoenix")?.starts).toBe(2);
    const states = () => tap.events.slice(before).filter((e) => e.event.type === "service" && e.event.service === "phoenix").map((e) => (e.event as ServiceEvent).state);
    await waitFor("running event", () => states().includes("running"), 10_000);
    expect(states().slice(0, 2)).toEqual(["exited", "running"]);
    await waitFor("phoenix healthy again", () => svc("phoenix")?.health === "healthy", 20_000);
    const checks = tap.events.filter((e) => e.event.type === "health_check" && e.event.service === "phoenix" && e.event.ok).map((e) => e.event.type === "health_check" && e.event.check);
    expect(new Set(checks)).toEqual(new Set(["tcp-0", "self-test"]));
  });

  it("the exit event is stored with Nats-Msg-Id = event id and the trace of its probe.exit span", async () => {
    const stored = await waitFor("stored exit", async () => (await readStream(nc, node)).find((m) => m.event.type === "service" && m.event.service === "web" && m.event.state === "exited"));
    expect(stored.msgId).toBe(stored.event.id);
    const span = exporter.getFinishedSpans().find((s) => s.name === "probe.exit" && s.attributes["steward.service"] === "web");
    expect(span).toBeDefined();
    expect(stored.traceparent).toBe(`00-${span!.spanContext().traceId}-${span!.spanContext().spanId}-01`);
  });

  it("marks a service unhealthy after `retries` consecutive failed checks", async () => {
    const before = tap.events.length;
    await fetch(`http://127.0.0.1:${ports.api}/fail`);
    const unhealthy = await waitFor("api unhealthy event", () => tap.events.slice(before).find((e) => e.event.type === "service" && e.event.service === "api" && e.event.health === "unhealthy"), 20_000);
    expect(unhealthy.event).toMatchObject({ state: "running" });
    const failedCheck = tap.events.slice(before).filter((e) => e.event.type === "health_check" && e.event.service === "api");
    // Only the change of ok-ness is published, not every failure.
    expect(failedCheck).toHaveLength(1);
    expect(failedCheck[0]!.event).toMatchObject({ ok: false, consecutive_failures: 1 });
    expect(svc("api")).toMatchObject({ state: "running", health: "unhealthy" });
    expect(await metricValue(registry, "steward_node_agent_health_checks_total", { service: "api", result: "fail" })).toBeGreaterThanOrEqual(2);
  });

  it("starts a declared-but-stopped service on a signed start command, inside the caller's trace", async () => {
    const body = commandBody(node, "start", "later", { action_id: "act-1" });
    const reply = await withSpan("executor.run", {}, async (span) => ({ reply: await sendCommand(nc, node, body), traceId: span.spanContext().traceId, spanId: span.spanContext().spanId }));
    expect(reply.reply).toMatchObject({ ok: true, id: body.id, node, service: "later" });
    const pid = reply.reply.ok ? reply.reply.pid : null;
    expect(pid).toBeGreaterThan(0);
    expect(svc("later")).toMatchObject({ state: "running", pid, starts: 1 });
    await waitFor("later healthy", () => svc("later")?.health === "healthy", 20_000);
    const cmdSpan = exporter.getFinishedSpans().find((s) => s.name === "node-agent.command" && s.attributes["steward.command.op"] === "start");
    expect(cmdSpan?.spanContext().traceId).toBe(reply.traceId);
    expect(cmdSpan?.parentSpanContext?.spanId).toBe(reply.spanId);
    expect(await metricValue(registry, "steward_node_agent_commands_total", { op: "start", result: "ok" })).toBe(1);
  });

  it("refuses forged, expired, replayed, too old, too long-lived, misaddressed, malformed and unknown-service commands, changing nothing", async () => {
    const snapshot = () => agent.status().map((s) => [s.service, s.state, s.pid, s.starts]);
    const before = snapshot();
    const valid = commandBody(node, "start", "steady");
    const first = await sendCommand(nc, node, valid);
    expect(first).toMatchObject({ ok: true, pid: svc("steady")!.pid });
    const cases: [string, () => Promise<unknown>, string][] = [
      ["forged", () => sendCommand(nc, node, commandBody(node, "stop", "steady"), newCommandKeyPair().signing), "bad_signature"],
      ["expired", () => sendCommand(nc, node, commandBody(node, "stop", "steady", { issued_at: new Date(Date.now() - 120_000).toISOString(), expires_at: new Date(Date.now() - 60_000).toISOString() })), "expired"],
      ["replayed", () => sendCommand(nc, node, valid), "replayed"],
      ["issued before the agent started", () => sendCommand(nc, node, commandBody(node, "stop", "steady", { issued_at: new Date(Date.now() - 240_000).toISOString(), expires_at: new Date(Date.now() + 30_000).toISOString() })), "issued_before_start"],
      ["living longer than the bound", () => sendCommand(nc, node, commandBody(node, "stop", "steady", { expires_at: new Date(Date.now() + 600_000).toISOString() })), "lifetime_too_long"],
      ["wrong node", () => sendCommand(nc, node, commandBody("web2", "stop", "steady")), "wrong_node"],
      ["not JSON", () => requestRaw(nc, node, "stop steady please"), "invalid"],
      ["schema", () => requestRaw(nc, node, JSON.stringify({ body: commandBody(node, "stop", "steady") })), "invalid"],
      ["unknown op", () => requestRaw(nc, node, JSON.stringify(signNodeCommand({ ...commandBody(node, "stop", "steady"), op: "delete" as "stop" }, COMMAND_KEYS.signing))), "invalid"],
      ["unknown service", () => sendCommand(nc, node, commandBody(node, "stop", "db")), "unknown_service"],
    ];
    for (const [what, send, code] of cases) {
      const reply = await send();
      expect(reply, what).toMatchObject({ ok: false, code });
    }
    expect(snapshot()).toEqual(before);
    for (const code of ["bad_signature", "expired", "replayed", "issued_before_start", "lifetime_too_long", "wrong_node", "unknown_service"]) {
      expect(await metricValue(registry, "steward_node_agent_commands_total", { result: code }), code).toBe(1);
    }
    expect(await metricValue(registry, "steward_node_agent_commands_total", { result: "invalid" })).toBe(3);
  });

  it("stops and restarts by command: SIGTERM, reported as stopped (not exited), then running with a new pid", async () => {
    const before = tap.events.length;
    const stop = await sendCommand(nc, node, commandBody(node, "stop", "later"));
    expect(stop).toMatchObject({ ok: true, pid: null });
    expect(svc("later")).toMatchObject({ state: "stopped", signal: "SIGTERM", health: "none" });
    const evs = tap.events.slice(before).filter((e) => e.event.type === "service" && e.event.service === "later") as { event: ServiceEvent }[];
    expect(evs.some((e) => e.event.state === "stopped")).toBe(true);
    expect(evs.some((e) => e.event.state === "exited")).toBe(false);
    // The reply names the stream sequence through which the node's report after the stop is stored.
    const eventsSeq = stop.ok ? stop.events_seq : undefined;
    expect(eventsSeq).toBeGreaterThan(0);
    const stored = (await readStream(nc, node)).filter((m) => m.event.type === "service" && m.event.service === "later" && m.event.state === "stopped");
    expect(stored.length).toBeGreaterThan(0);
    expect(stored[0]!.seq).toBeLessThanOrEqual(eventsSeq!);
    const restart = await sendCommand(nc, node, commandBody(node, "restart", "web"));
    expect(restart).toMatchObject({ ok: true });
    expect(svc("web")).toMatchObject({ state: "running", starts: 2 });
    await waitFor("web healthy again", () => svc("web")?.health === "healthy", 20_000);
  });

  it("reloads the spec: a new service is added stopped (never started), a removed one is reported undeclared until stopped, an invalid spec is ignored", async () => {
    const newPort = await freePort();
    await fleet.write({ ...services, added: httpService(newPort) });
    await waitFor("added appears", () => svc("added"), 20_000);
    await waitForTicks("heartbeats", heartbeats);
    expect(svc("added")).toMatchObject({ state: "stopped", starts: 0, declared: true });
    expect(svc("web")?.state).toBe("running");

    const invalidBefore = await metricValue(registry, "steward_node_agent_spec_reloads_total", { result: "invalid" });
    await fleet.write({ version: "not a spec" } as never);
    await waitFor("invalid spec seen", async () => (await metricValue(registry, "steward_node_agent_spec_reloads_total", { result: "invalid" })) > invalidBefore, 20_000);
    expect(svc("added")).toBeDefined();
    expect(await metricValue(registry, "steward_node_agent_spec_reloads_total", { result: "invalid" })).toBeGreaterThanOrEqual(1);

    const { api: _api, ...withoutApi } = services;
    await fleet.write({ ...withoutApi, added: httpService(newPort) });
    await waitFor("api undeclared", () => svc("api")?.declared === false, 20_000);
    expect(svc("api")).toMatchObject({ state: "running" });
    const refusedStart = await sendCommand(nc, node, commandBody(node, "start", "api"));
    expect(refusedStart).toMatchObject({ ok: false, code: "unknown_service" });
    const stop = await sendCommand(nc, node, commandBody(node, "stop", "api"));
    expect(stop).toMatchObject({ ok: true });
    expect(svc("api")).toBeUndefined();
    expect(serviceEvents("api").at(-1)?.event).toMatchObject({ state: "stopped", declared: false });
  });
});
