/**
 * The alerter's dead-man covers the executor and the planner too: both run as their own processes (as an operator
 * runs them), the alerter polls their health checks, and when a process is killed (-9) an alert says so; when it is
 * back (same port) the alert resolves. Real NATS and Postgres, a local ntfy server.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAlerter, loadConfig } from "@steward/alerter";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { freePort, startFakeNtfy, unlessExited, waitFor, type FakeNtfy } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";

let stack: Stack;
let ntfy: FakeNtfy;
const procs: Partial<Record<"executor" | "planner", ServiceProcess>> = {};
const env: Partial<Record<"executor" | "planner", Record<string, string>>> = {};
const ports: Record<"executor" | "planner", number> = { executor: 0, planner: 0 };

async function run(name: "executor" | "planner"): Promise<void> {
  const p = spawnService(name as ServiceName, env[name]!);
  procs[name] = p;
  await waitFor(`${name} answering`, async () => (await fetch(`http://127.0.0.1:${ports[name]}/healthz`).then((r) => r.status === 200, () => false)) || undefined, 60_000, 100, unlessExited(p));
}
function kill(name: "executor" | "planner"): Promise<void> {
  const p = procs[name]!;
  const gone = new Promise<void>((r) => p.child.once("exit", () => r()));
  p.child.kill("SIGKILL");
  return gone;
}

beforeAll(async () => {
  ntfy = await startFakeNtfy();
  ports.executor = await freePort();
  ports.planner = await freePort();
  stack = await startStack({
    dbPrefix: "steward_alerter_deadman",
    observer: { SNAPSHOT_MAX_INTERVAL_MS: "1000" },
    supervisor: true,
    // A node without an agent: the observer and the supervisor keep writing (their own dead-man stays quiet).
    fleet: 'version: 1\nnodes:\n  d1:\n    services:\n      web:\n        kind: process\n        command: ["sleep", "3600"]\n',
  });
  const withDb = { NATS_URL: stack.nats.url, DATABASE_URL: stack.db.url, API_TOKEN: stack.token, LOG_LEVEL: "warn" };
  env.executor = { ...withDb, ...stack.natsEnv("executor"), EXECUTOR_SIGNING_KEY: stack.commandKeys.privateKey, HTTP_PORT: String(ports.executor) };
  env.planner = { ...withDb, ...stack.natsEnv("planner"), HTTP_PORT: String(ports.planner), FLEET_SPEC: stack.fleetPath, CLAUDE_ENABLED: "false" };
  await Promise.all([run("executor"), run("planner")]);
}, 120_000);

afterAll(async () => {
  for (const p of Object.values(procs)) if (p && p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  await stack?.stop();
  await ntfy?.close();
});

describe("dead-man: executor and planner", () => {
  it("the executor killed -9: an alert that it does not answer; back on its port: resolved", async () => {
    const alerter = createAlerter({
      config: loadConfig({ DATABASE_URL: stack.db.url, NATS_URL: stack.nats.url, API_TOKEN: stack.token, EXECUTOR_URL: `http://127.0.0.1:${ports.executor}`, PLANNER_URL: `http://127.0.0.1:${ports.planner}`, PLANNER_TOKEN: stack.token, METRICS_PORT: "0", NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-deadman", ALERT_EVAL_MS: "250", ALERT_DEADMAN_S: "3", ALERT_LIVENESS_POLL_MS: "250", ALERT_GROUP_WAIT_MS: "500", ALERT_GROUP_INTERVAL_MS: "1000", RETRY_BASE_MS: "100" }),
      nc: await stack.connectAs("alerter"),
      sql: stack.sql,
      logger: silentLogger(),
      registry: createRegistry("alerter", false),
    });
    await alerter.start();
    try {
      await kill("executor");
      const fired = await ntfy.waitFor((m) => m.title === "Dead man: executor not answering", 30_000);
      expect(fired.priority).toBe(5);
      expect(fired.message).toMatch(/The executor has not answered its health check for \d+ s/);
      await run("executor");
      await ntfy.waitFor((m) => m.title === "Resolved: Dead man: executor not answering", 30_000);

      await kill("planner");
      const planner = await ntfy.waitFor((m) => m.title === "Dead man: planner not answering", 30_000);
      expect(planner.message).toMatch(/The planner has not answered its health check for \d+ s/);
      await run("planner");
      await ntfy.waitFor((m) => m.title === "Resolved: Dead man: planner not answering", 30_000);
    } finally {
      await alerter.stop();
    }
  }, 180_000);
});
