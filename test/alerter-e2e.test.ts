/**
 * The whole path, every component real and in this process: a supervised process is killed → the observer sees it →
 * the supervisor reports drift and proposes a restart → the alerter pushes the drift and the pending action to ntfy
 * with Approve/Reject buttons → the test presses Approve the way the ntfy app does (an HTTP call to the executor's
 * approval route) → the executor restarts the process through the node-agent → the drift clears → resolved pushes.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createNodeAgent, loadConfig as loadAgentConfig } from "@steward/node-agent";
import { createObserver, loadConfig as loadObserverConfig } from "@steward/observer";
import { createSupervisor, loadSupervisorConfig } from "@steward/supervisor";
import { createExecutor, loadConfig as loadExecutorConfig } from "@steward/executor";
import { createTestDatabase, freePort, startFakeNtfy, startNats, waitFor, type FakeNtfy, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { createAlerter, loadConfig } from "@steward/alerter";

let nats: NatsServerHandle;
let db: TestDatabase;
let dir = "";
let nc: NatsConnection;
let sql: Sql;
let ntfy: FakeNtfy;
let agent: ReturnType<typeof createNodeAgent>;
const stops: (() => Promise<void>)[] = [];
const token = randomBytes(24).toString("hex");
const fleetKey = randomBytes(24).toString("hex");

beforeAll(async () => {
  nats = await startNats();
  db = await createTestDatabase("steward_alerter_e2e");
  dir = await mkdtemp(join(tmpdir(), "steward-alerter-e2e-"));
  nc = await connectNats(nats.url, "alerter-e2e");
  sql = connectDb(db.url);
  await ensureStreams(nc);
  await migrate(sql);
  ntfy = await startFakeNtfy();
  const port = await freePort();
  const fleet = join(dir, "fleet.yaml");
  await writeFile(
    fleet,
    `version: 1\nnodes:\n  e1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        restart: never\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n`,
  );
  const common = { NATS_URL: nats.url, LOG_LEVEL: "silent" };
  const observer = createObserver({ config: loadObserverConfig({ ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", SNAPSHOT_MAX_INTERVAL_MS: "1000" }), nc, logger: silentLogger(), registry: createRegistry("observer", false) });
  await observer.start();
  stops.push(() => observer.stop());
  const supervisor = createSupervisor({ config: loadSupervisorConfig({ ...common, DATABASE_URL: db.url, FLEET_SPEC: fleet, RECHECK_MS: "1000" }), nc, sql, logger: silentLogger(), registry: createRegistry("supervisor", false) });
  await supervisor.start();
  stops.push(() => supervisor.stop());
  const executor = createExecutor({ config: loadExecutorConfig({ ...common, DATABASE_URL: db.url, API_TOKEN: token, FLEET_KEY: fleetKey, HTTP_PORT: "0", VERIFY_TIMEOUT_MS: "20000", POLL_MS: "200" }), nc, sql, logger: silentLogger(), registry: createRegistry("executor", false) });
  const { url: apiUrl } = await executor.start();
  stops.push(() => executor.stop());
  agent = createNodeAgent({ config: loadAgentConfig({ ...common, NODE_NAME: "e1", FLEET_SPEC: fleet, FLEET_KEY: fleetKey, HEARTBEAT_MS: "500", LOG_DIR: join(dir, "logs"), METRICS_PORT: "0" }), nc, logger: silentLogger(), registry: createRegistry("node-agent", false) });
  await agent.start();
  stops.push(() => agent.stop());
  const alerter = createAlerter({
    config: loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, API_TOKEN: token, EXECUTOR_URL: apiUrl, CONSOLE_URL: `${apiUrl}/console`, METRICS_PORT: "0", NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-e2e", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100" }),
    nc,
    sql,
    logger: silentLogger(),
    registry: createRegistry("alerter", false),
  });
  await alerter.start();
  stops.push(() => alerter.stop());
});

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await ntfy?.close();
  await sql?.end();
  await nc?.close();
  await db?.drop();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("killed process → push with buttons → press → restart → resolved", () => {
  it("runs the whole path", async () => {
    const running = () => agent.status().find((x) => x.service === "web" && x.state === "running" && x.health === "healthy");
    const pid = await waitFor("web healthy", () => running()?.pid, 30_000, 50);
    process.kill(pid, "SIGKILL");

    const drift = await ntfy.waitFor((m) => /^Drift (down|unhealthy): e1\/web$/.test(m.title ?? ""), 20_000);
    const push = await ntfy.waitFor((m) => m.title === "Approve restart e1/web?", 20_000);
    expect(push.actions.map((a) => a.label)).toEqual(["Approve", "Reject", "Console"]);
    expect(push.message).toContain("Will run: restart e1/web");
    const approve = push.actions[0]!;
    expect(approve.method).toBe("POST");
    expect(approve.url).toMatch(/\/approvals\/[0-9a-f-]{36}\/approve$/);

    const pressed = await ntfy.press(push, "Approve");
    expect(pressed.status).toBe(200);
    const actionId = approve.url!.split("/").at(-2)!;
    const [audit] = await sql<{ channel: string; actor: string }[]>`SELECT channel, actor FROM action_audit WHERE action_id = ${actionId} AND to_state = 'approved'`;
    expect(audit).toEqual({ channel: "ntfy", actor: "ntfy-button" });

    await waitFor("action succeeded", async () => (await sql<{ state: string }[]>`SELECT state FROM actions WHERE id = ${actionId}`)[0]?.state === "succeeded" || undefined, 30_000, 100);
    const back = await waitFor("web running again with a new pid", () => {
      const s = running();
      return s && s.pid !== pid ? s : undefined;
    }, 30_000, 50);
    expect(back.pid).not.toBe(pid);

    await ntfy.waitFor((m) => m.title === `Resolved: ${drift.title}`, 20_000);
    const resolvedPush = await ntfy.waitFor((m) => m.title === "Resolved: Approve restart e1/web?", 20_000);
    expect(resolvedPush.message).toContain("approved by ntfy-button via ntfy");
    expect(resolvedPush.actions.filter((a) => a.action === "http")).toEqual([]);
  });
});
