import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import type { ServiceEvent } from "@steward/contracts/events";
import { freePort, startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createNodeAgent, type NodeAgent } from "../src/agent.js";
import { tapEvents, tempFleet, testConfig, type TempFleet } from "./helpers.js";

// A service that needs a while before it listens (a JVM, a database replaying its log): with a start_period its
// failing checks until then do not count, so it goes starting -> healthy and an executor verifying its restart
// never sees "unhealthy". The same service without one is the control: it is called unhealthy first.
const SLOW_LISTENER_JS = [
  "const http=require('http');",
  "setTimeout(()=>http.createServer((q,s)=>{s.statusCode=q.url==='/health'?200:404;s.end()}).listen(Number(process.env.PORT),'127.0.0.1'),Number(process.env.DELAY_MS));",
].join("");

const node = "slow1";
let nats: NatsServerHandle;
let nc: NatsConnection;
let fleet: TempFleet;
let agent: NodeAgent;
let tap: ReturnType<typeof tapEvents>;

const slow = (port: number, extra: Record<string, unknown>) => ({
  kind: "process",
  command: [process.execPath, "-e", SLOW_LISTENER_JS],
  env: { PORT: String(port), DELAY_MS: "2000" },
  health: [{ type: "http", url: `http://127.0.0.1:${port}/health`, interval: "200ms", timeout: "500ms", retries: 2, ...extra }],
});

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "start-period-test");
  await ensureStreams(nc);
  tap = tapEvents(nc, node);
  fleet = await tempFleet(node);
  await fleet.write({ graced: slow(await freePort(), { start_period: "60s" }), plain: slow(await freePort(), {}) });
  agent = createNodeAgent({ config: testConfig(node, fleet, nats.url), nc, logger: silentLogger(), registry: createRegistry("start-period-test", false) });
  await agent.start();
});

afterAll(async () => {
  await agent?.stop();
  tap?.stop();
  await nc?.close();
  await nats?.stop();
  await fleet?.cleanup();
});

describe("a health check's start_period", () => {
  it("keeps a slow starter `starting` until it listens; without one it is called unhealthy first", async () => {
    const healths = (name: string) => tap.events.filter((e) => e.event.type === "service" && e.event.service === name).map((e) => (e.event as ServiceEvent).health);
    await waitFor("both slow listeners healthy", () => ["graced", "plain"].every((n) => agent.status().find((s) => s.service === n)?.health === "healthy"), 60_000);
    expect(healths("plain")).toContain("unhealthy");
    expect(healths("graced")).not.toContain("unhealthy");
    expect(healths("graced")).toContain("healthy");
    // Its failures before the first pass were not counted either.
    const failed = tap.events.filter((e) => e.event.type === "health_check" && e.event.service === "graced" && !e.event.ok);
    for (const f of failed) expect(f.event).toMatchObject({ consecutive_failures: 0 });
  });
});
