import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { silentLogger } from "@steward/platform/logger";
import type { ServiceObservation } from "@steward/contracts/events";
import { startFakeDocker, type FakeDocker } from "@steward/testkit";
import { createComposeDriver, type ComposeDriver } from "../src/compose-driver.js";
import { DockerClient } from "../src/docker/client.js";
import type { ServiceOp } from "../src/commands.js";
import { runOp, type ServiceCommand } from "../src/driver.js";

const SECRET = `pw-${randomUUID()}`;
const ENV_FILE_SECRET = `ef-${randomUUID()}`;

let dir: string;
let fake: FakeDocker;
let driver: ComposeDriver;
let published: ServiceObservation[];
let secretsAvailable: boolean;

const composeText = (tag: string) => `services:\n  app:\n    image: app:${tag}\n    healthcheck: { test: ["CMD", "true"], interval: 1s }\n`;

function cmd(op: ServiceOp, params?: Record<string, unknown>): ServiceCommand {
  const now = new Date();
  return { id: randomUUID(), node: "n1", op, service: "shop", action_id: null, ...(params ? { params } : {}), issued_at: now.toISOString(), expires_at: new Date(now.getTime() + 30_000).toISOString() };
}

// Commands go through the driver's op table, as the agent's driver table sends them.
const execute = (c: ServiceCommand) => runOp(driver, c);

async function setup(env: Record<string, unknown>): Promise<void> {
  const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: "checkout", services: { shop: { kind: "compose", files: ["compose.yaml"], env_file: ".env", env, deploy: { health_timeout: "2s" } } } } } }));
  if (!res.ok) throw new Error(JSON.stringify(res.problems));
  driver = createComposeDriver({
    node: "n1",
    docker: new DockerClient({ host: fake.host, timeoutMs: 2000 }),
    fleetKey: "test-fleet-key-0123456789abcdef",
    specDir: dir,
    stateDir: join(dir, "state"),
    probeMs: 60_000,
    logger: silentLogger(),
    publish: (o) => published.push(o),
    resolveSecret: (ref) => (secretsAvailable && ref.secret === "db_password" ? SECRET : undefined),
    pollMs: 20,
    stopGraceS: 1,
    // The fake engine stands in for the Engine API only; the real Compose is tested on a live dockerd.
    composeApply: "engine-api",
  });
  driver.setSpec(res.spec);
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-compose-driver-"));
  await mkdir(join(dir, "checkout"));
  await writeFile(join(dir, "checkout", "compose.yaml"), composeText("v1"));
  await writeFile(join(dir, "checkout", ".env"), `API_TOKEN=${ENV_FILE_SECRET}\n`);
  fake = await startFakeDocker({ healthDelayMs: 30, healthPolicy: (c) => (c.Config.Image === "app:bad" ? "unhealthy" : "healthy") });
  published = [];
  secretsAvailable = true;
});
afterEach(async () => {
  await driver?.stop();
  await fake.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("compose driver", () => {
  it("never deployed: stopped with starts 0 and the desired hash; deploy brings it up healthy with that hash as its label", async () => {
    await setup({ DB_PASSWORD: { secret: "db_password" }, MODE: "prod" });
    await driver.probeNow();
    const before = driver.observe()[0];
    expect(before).toMatchObject({ service: "shop", state: "stopped", health: "none", starts: 0 });
    expect(before?.desired_config_hash).toMatch(/^sha256:/);

    const reply = await execute(cmd("deploy"));
    expect(reply).toMatchObject({ ok: true, service: "shop", pid: null });
    const after = driver.observe()[0];
    expect(after).toMatchObject({ state: "running", health: "healthy", starts: 1, restart_count: 0, config_hash: before?.desired_config_hash, desired_config_hash: before?.desired_config_hash });
    expect(after?.image_digest).toMatch(/^sha256:/);

    // The engine got the resolved values; nothing the agent publishes or stores holds them.
    const app = fake.find("shop-app-1");
    expect(app?.Config.Env).toEqual(expect.arrayContaining([`DB_PASSWORD=${SECRET}`, `API_TOKEN=${ENV_FILE_SECRET}`, "MODE=prod"]));
    const stored = await Promise.all((await readdir(join(dir, "state", "compose"))).map((f) => readFile(join(dir, "state", "compose", f), "utf8")));
    for (const text of [JSON.stringify(published), JSON.stringify(driver.observe()), JSON.stringify(reply), ...stored]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(ENV_FILE_SECRET);
    }
  });

  it("an engine that does not answer makes the stack unknown, not down", async () => {
    await setup({ MODE: "prod" });
    expect((await execute(cmd("deploy"))).ok).toBe(true);
    await fake.stop();
    await driver.probeNow();
    const o = driver.observe()[0];
    expect(o).toMatchObject({ service: "shop", state: "unknown" });
    expect(o?.detail).toMatch(/^cannot read containers: /);
    fake = await startFakeDocker({ healthDelayMs: 30 }); // afterEach stops it again
  });

  it("an env file value change changes the desired hash without revealing the value", async () => {
    await setup({});
    await driver.probeNow();
    const h1 = driver.observe()[0]?.desired_config_hash;
    await writeFile(join(dir, "checkout", ".env"), `API_TOKEN=${ENV_FILE_SECRET}-rotated\n`);
    await driver.probeNow();
    expect(driver.observe()[0]?.desired_config_hash).not.toBe(h1);
  });

  it("a secret the node cannot resolve fails the deploy naming the secret, never a value, and touches no container", async () => {
    secretsAvailable = false;
    await setup({ DB_PASSWORD: { secret: "db_password" } });
    const reply = await execute(cmd("deploy"));
    expect(reply).toEqual({ ok: false, id: expect.any(String), code: "failed", message: "secret 'db_password' (for DB_PASSWORD) cannot be resolved on node n1" });
    expect(fake.requests.filter((r) => r.method !== "GET")).toEqual([]);
  });

  it("an unhealthy new revision fails its gate; rollback to the recorded previous revision re-creates it; a wrong target is refused", async () => {
    await setup({});
    expect((await execute(cmd("deploy"))).ok).toBe(true);
    const h1 = driver.observe()[0]?.config_hash;
    await writeFile(join(dir, "checkout", "compose.yaml"), composeText("bad"));
    const failed = await execute(cmd("deploy", { health_timeout_ms: 2000, previous_config_hash: h1 }));
    expect(failed).toMatchObject({ ok: false, code: "failed", message: "container shop-app-1 is unhealthy (failing streak 3)" });
    expect(driver.observe()[0]).toMatchObject({ state: "running", health: "unhealthy" });

    const wrong = await execute(cmd("rollback", { to_config_hash: "sha256:0000" }));
    expect(wrong).toMatchObject({ ok: false, message: expect.stringMatching(/previous revision recorded here is sha256:.*, not sha256:0000; refusing/) });

    const back = await execute(cmd("rollback", { to_config_hash: h1 }));
    expect(back).toMatchObject({ ok: true, detail: expect.stringMatching(/^rolled back to sha256:/) });
    expect(fake.find("shop-app-1")?.Config.Image).toBe("app:v1");
    expect(driver.observe()[0]).toMatchObject({ state: "running", health: "healthy", config_hash: h1 });
    // The spec still asks for the bad revision: the observation says so (config drift for the supervisor).
    expect(driver.observe()[0]?.desired_config_hash).not.toBe(h1);
  });

  it("rolling back a first deploy removes its containers: nothing ran before", async () => {
    await setup({});
    await writeFile(join(dir, "checkout", "compose.yaml"), composeText("bad"));
    expect((await execute(cmd("deploy", { health_timeout_ms: 1000 }))).ok).toBe(false);
    const back = await execute(cmd("rollback", { to_config_hash: null }));
    expect(back).toMatchObject({ ok: true, detail: expect.stringMatching(/nothing ran before/) });
    expect(fake.containers()).toEqual([]);
    expect(driver.observe()[0]).toMatchObject({ state: "stopped", starts: 0 });
  });

  it("containers that ran before Steward's first deploy cannot be rolled back to", async () => {
    await setup({});
    fake.seed("shop-app-1", { image: "app:old", labels: { "com.docker.compose.project": "shop", "com.docker.compose.service": "app" } });
    await writeFile(join(dir, "checkout", "compose.yaml"), composeText("bad"));
    expect((await execute(cmd("deploy", { health_timeout_ms: 1000 }))).ok).toBe(false);
    const back = await execute(cmd("rollback", { to_config_hash: null }));
    expect(back).toMatchObject({ ok: false, message: expect.stringMatching(/not deployed by Steward; they cannot be re-created/) });
  });

  it("stop and start act on the stack's containers; a crash without restart policy shows as exited", async () => {
    await setup({});
    expect((await execute(cmd("deploy"))).ok).toBe(true);
    expect(await execute(cmd("stop"))).toMatchObject({ ok: true });
    expect(driver.observe()[0]).toMatchObject({ state: "stopped" });
    expect(await execute(cmd("start"))).toMatchObject({ ok: true });
    expect(driver.observe()[0]).toMatchObject({ state: "running" });
    fake.crash("shop-app-1", 3);
    await driver.probeNow();
    expect(driver.observe()[0]).toMatchObject({ state: "exited", exit_code: 3, starts: 1 });
  });

  it("restart stops then starts the stack's containers, and a stack without containers is refused", async () => {
    await setup({});
    expect(await execute(cmd("restart"))).toMatchObject({ ok: false, code: "failed", message: "stack shop has no containers on n1; deploy it" });
    expect((await execute(cmd("deploy"))).ok).toBe(true);
    const id = fake.find("shop-app-1")?.Id;
    const before = fake.requests.length;
    expect(await execute(cmd("restart"))).toMatchObject({ ok: true, detail: "restart done (1 container)" });
    expect(fake.requests.slice(before).filter((r) => r.method === "POST").map((r) => r.path.replace(/^\/v[\d.]+/, ""))).toEqual([`/containers/${id}/stop`, `/containers/${id}/start`]);
    expect(driver.observe()[0]).toMatchObject({ state: "running" });
  });

  it("a missing compose file is reported on the spec side and fails a deploy naming it", async () => {
    await setup({});
    await rm(join(dir, "checkout", "compose.yaml"));
    await driver.probeNow();
    expect(driver.observe()[0]?.desired_config_hash).toBeUndefined();
    expect(driver.observe()[0]?.detail).toMatch(/spec side: compose.yaml: not found in the deploy checkout/);
    expect(await execute(cmd("deploy"))).toMatchObject({ ok: false, message: expect.stringMatching(/^compose.yaml: not found/) });
  });
});
