import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { silentLogger } from "@steward/platform/logger";
import { dockerdUnavailable, freePort, importBusyboxImage, startDockerd, waitFor, type Dockerd } from "@steward/testkit";
import { detectCompose } from "../src/compose-cli.js";
import { createComposeDriver, type ComposeDriver } from "../src/compose-driver.js";
import { DockerClient } from "../src/docker/client.js";
import { runOp, type ServiceCommand } from "../src/driver.js";
import type { ServiceOp } from "../src/commands.js";

const run = promisify(execFile);
const skip = dockerdUnavailable();
const SECRET = `s-${randomUUID()}`;

function cmd(op: ServiceOp): ServiceCommand {
  const now = new Date();
  return { id: randomUUID(), node: "n1", op, service: "live", action_id: null, issued_at: now.toISOString(), expires_at: new Date(now.getTime() + 120_000).toISOString() };
}

/** A web server with a healthcheck, its tag and port interpolated from the env file, on the host network. */
const composeText = (healthTest: string) => `services:
  web:
    image: steward-test/busybox:\${WEB_TAG}
    network_mode: host
    command: ["httpd", "-f", "-p", "127.0.0.1:\${PORT}", "-h", "/var/www"]
    healthcheck:
      test: ${healthTest}
      interval: 1s
      timeout: 2s
      retries: 2
    stop_grace_period: 1s
`;
const HEALTHY = `["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:\${PORT}/"]`;

describe.skipIf(skip)("the real Compose on a live dockerd", () => {
  let dockerd: Dockerd;
  let dir: string;
  let port: number;
  let driver: ComposeDriver;
  let docker: DockerClient;
  const cli = (...args: string[]) => run("docker", args, { env: { ...process.env, DOCKER_HOST: dockerd.host }, timeout: 60_000 });

  beforeAll(async () => {
    dockerd = await startDockerd();
    await importBusyboxImage(dockerd.host, "steward-test/busybox:1");
    await cli("tag", "steward-test/busybox:1", "steward-test/busybox:2");
    dir = await mkdtemp(join(tmpdir(), "steward-live-compose-"));
    port = await freePort();
    await writeFile(join(dir, "compose.yaml"), composeText(HEALTHY));
    await writeFile(join(dir, ".env"), `WEB_TAG=1\nPORT=${port}\n`);
    const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { live: { kind: "compose", files: ["compose.yaml"], env_file: ".env", env: { MODE: "live", TOKEN: { secret: "token" } }, deploy: { health_timeout: "90s" } } } } } }));
    if (!res.ok) throw new Error(JSON.stringify(res.problems));
    docker = new DockerClient({ host: dockerd.host, timeoutMs: 20_000 });
    driver = createComposeDriver({
      node: "n1",
      docker,
      dockerHost: dockerd.host,
      fleetKey: "test-fleet-key-0123456789abcdef",
      specDir: dir,
      stateDir: join(dir, "state"),
      probeMs: 60_000,
      logger: silentLogger(),
      publish: () => undefined,
      resolveSecret: (ref) => (ref.secret === "token" ? SECRET : undefined),
      pollMs: 200,
    });
    driver.setSpec(res.spec);
  }, 180_000);

  afterAll(async () => {
    await driver?.stop();
    await dockerd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 120_000);

  it("finds a Compose binary (docker compose v2, else docker-compose v1)", async () => {
    const found = await detectCompose({ ...process.env, DOCKER_HOST: dockerd.host });
    expect(found?.label).toMatch(/^(docker compose|docker-compose) \d+\.\d+\.\d+/);
  }, 60_000);

  it("deploys a stack with a healthcheck through Compose: healthy, serving, env file interpolated, Steward's env and labels on it", async () => {
    const reply = await runOp(driver, cmd("deploy"));
    expect(reply).toMatchObject({ ok: true });
    await driver.probeNow();
    const o = driver.observe()[0];
    expect(o).toMatchObject({ state: "running", health: "healthy" });
    // Compose's own config hash of the resolved files: the containers' labels agree with `config --hash "*"`.
    expect(o?.config_hash).toMatch(/^compose:[0-9a-f]{64}$/);
    expect(o?.config_hash).toBe(o?.desired_config_hash);
    const { stdout } = await run("busybox", ["wget", "-q", "-O", "-", `http://127.0.0.1:${port}/`]);
    expect(stdout).toBe("ok\n");
    const [c] = await docker.listProjectContainers("live");
    const ins = await docker.inspectContainer(c?.Id ?? "");
    expect(ins.Config.Image).toBe("steward-test/busybox:1");
    expect(ins.Config.Env).toEqual(expect.arrayContaining(["MODE=live", `TOKEN=${SECRET}`, "WEB_TAG=1"]));
    expect(ins.Config.Labels?.["com.docker.compose.service"]).toBe("web");
    // No value Steward passed is written to disk: the override names variables only.
    const kept = await run("grep", ["-r", SECRET, join(dir, "state")]).then(() => "found", () => "absent");
    expect(kept).toBe("absent");
  }, 180_000);

  it("a tag changed in the env file is a new revision; a revision whose healthcheck never passes fails its gate and rolls back to the files that ran", async () => {
    const before = driver.observe()[0]?.config_hash;
    await writeFile(join(dir, ".env"), `WEB_TAG=2\nPORT=${port}\n`);
    await driver.probeNow();
    expect(driver.observe()[0]?.desired_config_hash).not.toBe(before);
    expect(await runOp(driver, cmd("deploy"))).toMatchObject({ ok: true });
    const [c2] = await docker.listProjectContainers("live");
    expect((await docker.inspectContainer(c2?.Id ?? "")).Config.Image).toBe("steward-test/busybox:2");
    const good = driver.observe()[0]?.config_hash;

    await writeFile(join(dir, "compose.yaml"), composeText(`["CMD", "false"]`));
    const failed = await runOp(driver, cmd("deploy"));
    expect(failed).toMatchObject({ ok: false });
    expect(failed.ok ? "" : failed.message).toMatch(/unhealthy/);

    expect(await runOp(driver, cmd("rollback"))).toMatchObject({ ok: true });
    await driver.probeNow();
    expect(driver.observe()[0]).toMatchObject({ state: "running", health: "healthy", config_hash: good });
  }, 240_000);

  it("config drift is Compose's own hash of the resolved files: a tag interpolated from the project's .env (no env_file in the spec) changes it", async () => {
    const sub = join(dir, "implicit");
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, "compose.yaml"), `services:\n  app:\n    image: steward-test/busybox:\${TAG}\n    network_mode: host\n    command: ["sleep", "100000"]\n    stop_grace_period: 1s\n    healthcheck: { test: ["CMD", "true"], interval: 1s }\n`);
    // Compose reads .env from the project directory by itself; Steward's spec does not name it.
    await writeFile(join(sub, ".env"), "TAG=1\n");
    const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { implicit: { kind: "compose", files: ["compose.yaml"], deploy: { health_timeout: "90s" } } } } } }));
    if (!res.ok) throw new Error(JSON.stringify(res.problems));
    const d = createComposeDriver({ node: "n1", docker, dockerHost: dockerd.host, fleetKey: "test-fleet-key-0123456789abcdef", specDir: sub, stateDir: join(sub, "state"), probeMs: 60_000, logger: silentLogger(), publish: () => undefined, pollMs: 200, resolvedMaxAgeMs: 0 });
    d.setSpec(res.spec);
    try {
      expect(await runOp(d, { ...cmd("deploy"), service: "implicit" })).toMatchObject({ ok: true });
      await d.probeNow();
      const first = d.observe()[0];
      expect(first).toMatchObject({ state: "running", health: "healthy" });
      expect(first?.config_hash).toBe(first?.desired_config_hash);
      const [c1] = await docker.listProjectContainers("implicit");
      const label = (await docker.inspectContainer(c1?.Id ?? "")).Config.Labels ?? {};
      expect(label["com.docker.compose.config-hash"]).toMatch(/^[0-9a-f]{64}$/);

      await writeFile(join(sub, ".env"), "TAG=2\n");
      await d.probeNow();
      const drifted = d.observe()[0];
      expect(drifted?.config_hash).toBe(first?.config_hash);
      expect(drifted?.desired_config_hash).not.toBe(first?.desired_config_hash);

      expect(await runOp(d, { ...cmd("deploy"), service: "implicit" })).toMatchObject({ ok: true });
      await d.probeNow();
      const after = d.observe()[0];
      expect(after).toMatchObject({ state: "running", health: "healthy" });
      expect(after?.config_hash).toBe(drifted?.desired_config_hash);
      const [c2] = await docker.listProjectContainers("implicit");
      expect((await docker.inspectContainer(c2?.Id ?? "")).Config.Image).toBe("steward-test/busybox:2");
    } finally {
      await d.stop();
    }
  }, 180_000);

  it("a Compose whose config --hash disagrees with the labels its own up wrote is found out at the first deploy: drift falls back to the content hash, remembered", async () => {
    const sub = join(dir, "distrust");
    await mkdir(sub, { recursive: true });
    // docker-compose, except that `config --hash` answers other hashes than `up` writes (as Compose v2.22+ did for env_file).
    const wrapper = join(sub, "skewed-compose");
    await writeFile(wrapper, `#!/bin/sh\ncase " $* " in\n  *" --hash=* "*) docker-compose "$@" | sed 's/[0-9a-f]\\{4\\}$/0000/' ;;\n  *) exec docker-compose "$@" ;;\nesac\n`, { mode: 0o755 });
    await writeFile(join(sub, "compose.yaml"), `services:\n  app:\n    image: steward-test/busybox:1\n    network_mode: host\n    command: ["sleep", "100000"]\n    stop_grace_period: 1s\n    healthcheck: { test: ["CMD", "true"], interval: 1s }\n`);
    const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { skewed: { kind: "compose", files: ["compose.yaml"], deploy: { health_timeout: "90s" } } } } } }));
    if (!res.ok) throw new Error(JSON.stringify(res.problems));
    const cli = { command: [wrapper], version: "1.29.2", label: "skewed-compose 1.29.2" };
    const make = () => createComposeDriver({ node: "n1", docker, dockerHost: dockerd.host, fleetKey: "test-fleet-key-0123456789abcdef", specDir: sub, stateDir: join(sub, "state"), probeMs: 60_000, logger: silentLogger(), publish: () => undefined, pollMs: 200, resolvedMaxAgeMs: 0, detect: () => Promise.resolve(cli) });
    const d = make();
    d.setSpec(res.spec);
    try {
      expect(await runOp(d, { ...cmd("deploy"), service: "skewed" })).toMatchObject({ ok: true });
      await d.probeNow();
      const o = d.observe()[0];
      expect(o).toMatchObject({ state: "running", health: "healthy" });
      expect(o?.config_hash).toMatch(/^sha256:/);
      expect(o?.config_hash).toBe(o?.desired_config_hash);
    } finally {
      await d.stop();
    }
    // A restarted agent with the same Compose does not trust it again.
    const again = make();
    again.setSpec(res.spec);
    try {
      again.start();
      await waitFor("observed after a restart", async () => {
        await again.probeNow();
        const o = again.observe()[0];
        return o?.state === "running" && o.config_hash === o.desired_config_hash && o.config_hash?.startsWith("sha256:") ? o : undefined;
      }, 60_000, 200);
    } finally {
      await again.stop();
    }
  }, 180_000);

  it("the Engine-API fallback deploys a local-only image without pulling (pull_policy missing, as Compose); no registry is reachable", async () => {
    const sub = join(dir, "fallback");
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, "compose.yaml"), `services:\n  app:\n    image: steward-test/busybox:1\n    command: ["sleep", "100000"]\n    healthcheck: { test: ["CMD", "true"], interval: 1s }\n`);
    const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { local: { kind: "compose", files: ["compose.yaml"], deploy: { health_timeout: "60s" } } } } } }));
    if (!res.ok) throw new Error(JSON.stringify(res.problems));
    const fallback = createComposeDriver({ node: "n1", docker, fleetKey: "test-fleet-key-0123456789abcdef", specDir: sub, stateDir: join(sub, "state"), probeMs: 60_000, logger: silentLogger(), publish: () => undefined, pollMs: 200, stopGraceS: 1, composeApply: "engine-api" });
    fallback.setSpec(res.spec);
    try {
      const reply = await runOp(fallback, { ...cmd("deploy"), service: "local" });
      expect(reply).toMatchObject({ ok: true });
      await fallback.probeNow();
      expect(fallback.observe()[0]).toMatchObject({ state: "running", health: "healthy" });
    } finally {
      await fallback.stop();
    }
  }, 120_000);

  it("with Compose, what only Compose does is applied: an image built from the checkout, a named volume in the long syntax", async () => {
    const sub = join(dir, "built");
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, "Dockerfile"), `FROM steward-test/busybox:1\nCMD ["sleep", "100000"]\n`);
    await writeFile(join(sub, "compose.yaml"), `services:\n  app:\n    build: .\n    network_mode: host\n    stop_grace_period: 1s\n    volumes: [{ type: volume, source: data, target: /data }]\n    healthcheck: { test: ["CMD", "touch", "/data/ok"], interval: 1s }\nvolumes:\n  data: {}\n`);
    const res = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { built: { kind: "compose", files: ["compose.yaml"], deploy: { health_timeout: "90s" } } } } } }));
    if (!res.ok) throw new Error(JSON.stringify(res.problems));
    const withCompose = createComposeDriver({ node: "n1", docker, dockerHost: dockerd.host, fleetKey: "test-fleet-key-0123456789abcdef", specDir: sub, stateDir: join(sub, "state"), probeMs: 60_000, logger: silentLogger(), publish: () => undefined, pollMs: 200 });
    withCompose.setSpec(res.spec);
    try {
      const reply = await runOp(withCompose, { ...cmd("deploy"), service: "built" });
      expect(reply).toMatchObject({ ok: true });
      await withCompose.probeNow();
      expect(withCompose.observe()[0]).toMatchObject({ state: "running", health: "healthy" });
      const [c] = await docker.listProjectContainers("built");
      const ins = await docker.inspectContainer(c?.Id ?? "");
      expect(JSON.stringify(ins)).toMatch(/built_data|built-data/);
    } finally {
      await withCompose.stop();
    }
  }, 180_000);
});
