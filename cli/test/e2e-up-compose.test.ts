/**
 * `steward up --fleet` with a compose stack on a live dockerd (Debian's dockerd 20.10 on its own socket, which the test
 * starts), as a new user would run it: DOCKER_HOST, DOCKER_API_VERSION and DOCKER_PROBE_MS come from the operator's
 * environment and must reach the node-agent; the stack's own `deploy.health_timeout` must be the executor's gate (it
 * gets the fleet spec), not the 120 s default; the node-agent's state lives in the stack's dir and goes with it.
 *
 * Needs root, dockerd and `npx tsc -b` first (everything runs from dist/).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action, AuditEntry } from "@steward/contracts/action";
import type { Snapshot } from "@steward/contracts/world-state";
import { dockerdUnavailable, importBusyboxImage, startDockerd, waitFor, type Dockerd } from "@steward/testkit";
import { runSteward, startUp, type RunningUp } from "./steward-process.js";

const skip = dockerdUnavailable();

const COMPOSE = `services:
  app:
    image: steward-test/busybox:1
    network_mode: host
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    healthcheck: { test: ["CMD", "true"], interval: 1s, retries: 2 }
`;

describe.skipIf(skip)("steward up with a compose stack on a live dockerd", () => {
  let dockerd: Dockerd;
  let home = "";
  let up: RunningUp | undefined;
  let stackDir = "";
  const steward = <T = unknown>(...args: string[]) => runSteward<T>(home, args);
  const world = () => steward<Snapshot>("status", "--json").json;

  beforeAll(async () => {
    dockerd = await startDockerd();
    await importBusyboxImage(dockerd.host, "steward-test/busybox:1");
    home = await mkdtemp(join(tmpdir(), "steward-e2e-compose-"));
    const repo = join(home, "repo");
    await mkdir(repo, { recursive: true });
    await writeFile(join(repo, "compose.yaml"), COMPOSE);
    const fleet = join(home, "fleet.yaml");
    await writeFile(
      fleet,
      `version: 1\nnodes:\n  edge1:\n    repo_path: repo\n    services:\n      shop:\n        kind: compose\n        files: [compose.yaml]\n        deploy: { health_timeout: 45s }\n`,
    );
    // No --dir: the stack's dir is a temp dir of its own, removed when it stops.
    up = await startUp(home, ["--fleet", fleet, "--heartbeat-ms", "500"], { DOCKER_HOST: dockerd.host, DOCKER_API_VERSION: "v1.41", DOCKER_PROBE_MS: "700", COMPOSE_APPLY: "cli" }, ["STATE_DIR"]);
    stackDir = (JSON.parse(await readFile(join(home, "stack.json"), "utf8")) as { dir: string }).dir;
  }, 240_000);

  afterAll(async () => {
    await up?.stop();
    await dockerd?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  }, 120_000);

  it("the node-agent gets the operator's Docker settings and keeps its state in the stack's dir", () => {
    const stack = JSON.parse(readFileSync(join(home, "stack.json"), "utf8")) as { processes: Record<string, number> };
    const pid = stack.processes["node-agent-edge1"];
    expect(pid).toBeGreaterThan(0);
    const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(env).toEqual(expect.arrayContaining([`DOCKER_HOST=${dockerd.host}`, "DOCKER_API_VERSION=v1.41", "DOCKER_PROBE_MS=700", "COMPOSE_APPLY=cli", `STATE_DIR=${join(stackDir, "node-state", "edge1")}`]));
  });

  it("missing → deploy with the stack's own 45 s gate (not 120 s) → applied through DOCKER_HOST's engine → healthy; its records in the stack's dir", async () => {
    const deploy = await waitFor("a proposed deploy", () => steward<{ actions: Action[] }>("actions", "--json").json?.actions.find((a) => a.node === "edge1" && a.service === "shop" && a.kind === "deploy" && a.state === "pending"), 60_000, 300);
    const approved = steward("approve", deploy.id);
    expect(approved.code, approved.stderr).toBe(0);
    const done = await waitFor("the deploy to end", () => {
      const a = steward<{ action: Action; audit: AuditEntry[] }>("actions", "show", deploy.id, "--json").json;
      return a && ["succeeded", "failed", "failed_unknown"].includes(a.action.state) ? a : undefined;
    }, 180_000, 500);
    const story = done.audit.map((e) => e.detail ?? "").join("\n");
    expect(done.action.state, `${done.action.result}\n${story}`).toBe("succeeded");
    expect(story).toMatch(/health gate 45000 ms per node/);
    expect(story).not.toMatch(/120000 ms/);
    expect(world()?.world.nodes["edge1"]?.services["shop"]).toMatchObject({ state: "running", health: "healthy" });
    // Deployed records (what ran before, for a rollback) are in the stack's dir.
    expect(readdirSync(join(stackDir, "node-state", "edge1")).length).toBeGreaterThan(0);
    expect(existsSync("/tmp/steward-node-agent-edge1/state")).toBe(false);
  }, 240_000);

  it("stopping the stack removes its dir, node-agent state with it", async () => {
    await up?.stop();
    up = undefined;
    expect(existsSync(stackDir)).toBe(false);
  }, 60_000);
});
