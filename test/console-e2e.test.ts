/**
 * The acceptance test: a real node-agent, observer, supervisor and executor; the supervised process is
 * killed with -9; the pending restart appears on the open console page by itself; the operator clicks Approve;
 * the page then shows the service running and healthy again (a new pid), and the audit says channel web.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createNodeAgent, loadConfig as loadAgentConfig } from "@steward/node-agent";
import { createObserver, loadConfig as loadObserverConfig } from "@steward/observer";
import { createSupervisor, loadSupervisorConfig } from "@steward/supervisor";
import { createTestDatabase, freePort, startNats, waitFor, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { createExecutor, loadConfig as loadExecutorConfig } from "@steward/executor";
import { launchChromium, signIn } from "../services/executor/test/console-helpers.js";

let nats: NatsServerHandle;
let db: TestDatabase;
let dir = "";
let nc: NatsConnection;
let sql: Sql;
const stops: (() => Promise<void>)[] = [];
const token = randomBytes(24).toString("hex");
const fleetKey = randomBytes(24).toString("hex");
let url = "";
let agent: ReturnType<typeof createNodeAgent>;
let chrome: Awaited<ReturnType<typeof launchChromium>>;
let browser: Browser;

beforeAll(async () => {
  [nats, db, dir] = await Promise.all([startNats(), createTestDatabase("steward_console"), mkdtemp(join(tmpdir(), "steward-console-"))]);
  nc = await connectNats(nats.url, "console-e2e");
  sql = connectDb(db.url, { max: 4 });
  await ensureStreams(nc);
  await migrate(sql);
  const port = await freePort();
  const fleet = join(dir, "fleet.yaml");
  await writeFile(
    fleet,
    `version: 1\nnodes:\n  n1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n`,
  );
  const common = { NATS_URL: nats.url, LOG_LEVEL: "silent" };
  const observer = createObserver({ config: loadObserverConfig({ ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20" }), nc, logger: silentLogger(), registry: createRegistry("observer", false) });
  await observer.start();
  stops.push(() => observer.stop());
  const supervisor = createSupervisor({ config: loadSupervisorConfig({ ...common, DATABASE_URL: db.url, FLEET_SPEC: fleet, RECHECK_MS: "1000", METRICS_PORT: "0" }), nc, sql, logger: silentLogger(), registry: createRegistry("supervisor", false) });
  await supervisor.start();
  stops.push(() => supervisor.stop());
  const executor = createExecutor({
    config: loadExecutorConfig({ ...common, DATABASE_URL: db.url, API_TOKEN: token, FLEET_KEY: fleetKey, HTTP_PORT: "0", POLL_MS: "200", VERIFY_TIMEOUT_MS: "20000" }),
    nc,
    sql,
    logger: silentLogger(),
    registry: createRegistry("executor", false),
  });
  url = (await executor.start()).url;
  stops.push(() => executor.stop());
  agent = createNodeAgent({ config: loadAgentConfig({ ...common, NODE_NAME: "n1", FLEET_SPEC: fleet, FLEET_KEY: fleetKey, HEARTBEAT_MS: "500", LOG_DIR: join(dir, "logs"), METRICS_PORT: "0" }), nc, logger: silentLogger(), registry: createRegistry("node-agent", false) });
  await agent.start();
  stops.push(() => agent.stop());
  chrome = await launchChromium();
  browser = chrome.browser;
});

afterAll(async () => {
  await chrome?.close();
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await sql?.end({ timeout: 2 }).catch(() => undefined);
  await nc?.close().catch(() => undefined);
  await db?.drop().catch(() => undefined);
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("acceptance: approve from the console and see the service come back", () => {
  it("kill -9 → pending restart appears live → click Approve → the page shows web running and healthy again", async () => {
    const pid = await waitFor("web healthy", () => {
      const s = agent.status().find((x) => x.service === "web");
      return s?.health === "healthy" ? s.pid : undefined;
    }, 20_000);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await signIn(ctx, url, { token, name: "ops-ann" });
      await page.waitForURL(/\/console$/);
      const row = page.locator('section[data-node="n1"] tr[data-service="web"]');
      await row.waitFor();
      await page.waitForSelector("#live.ok");
      expect(await row.getAttribute("data-health")).toBe("healthy");

      process.kill(pid!, "SIGKILL");

      // No reload from here on: the page updates itself from the event stream.
      await expect.poll(() => row.getAttribute("data-state"), { timeout: 15_000 }).not.toBe("running");
      const card = page.locator('article.pending[data-service="web"]');
      await card.waitFor({ timeout: 20_000 });
      expect(await card.locator("code.command").innerText()).toBe("restart web on n1");
      const id = await card.getAttribute("data-action-id");

      await card.locator("button.approve").click();
      await page.waitForSelector(".flash.ok");

      // Back on the overview after the redirect; the service comes back without another reload.
      await expect.poll(async () => `${await row.getAttribute("data-state")}/${await row.getAttribute("data-health")}`, { timeout: 30_000, interval: 200 }).toBe("running/healthy");
      expect(await row.innerText()).not.toContain(`pid ${pid}`);
      await expect.poll(() => page.locator(`tr.action[data-action-id="${id}"]`).getAttribute("data-state"), { timeout: 30_000 }).toBe("succeeded");
      expect(await page.locator('article.pending[data-service="web"]').count()).toBe(0);

      const audit = await sql<{ to_state: string; actor: string; channel: string }[]>`SELECT to_state, actor, channel FROM action_audit WHERE action_id = ${id!} ORDER BY id`;
      expect(audit.map((a) => a.to_state)).toEqual(["pending", "approved", "running", "succeeded"]);
      expect(audit[1]).toMatchObject({ actor: "ops-ann", channel: "web" });
    } finally {
      await ctx.close();
    }
  });
});
