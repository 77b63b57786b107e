import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerdUnavailable, importBusyboxImage, startDockerd, type Dockerd } from "@steward/testkit";
import { DockerClient, DockerError, MAX_API_VERSION, compareApiVersions, negotiateApiVersion } from "../src/docker/client.js";

const run = promisify(execFile);
const skip = dockerdUnavailable();

describe("Engine API version negotiation (pure)", () => {
  it.each([
    ["1.41", "1.43", "1.41"],
    ["1.43", "1.43", "1.43"],
    ["1.45", "1.43", "1.43"],
    ["v1.40", "1.43", "1.40"],
    ["1.9", "1.10", "1.9"],
    [undefined, "1.43", "1.43"],
    ["garbage", "1.43", "1.43"],
  ])("engine %s, client %s → %s", (engine, ours, want) => {
    expect(negotiateApiVersion(engine, ours)).toBe(want);
  });

  it("compares versions part by part", () => {
    expect(compareApiVersions("1.9", "1.10")).toBeLessThan(0);
    expect(compareApiVersions("v1.41", "1.41")).toBe(0);
  });
});

describe.skipIf(skip)("a live dockerd (Debian docker.io, its own socket)", () => {
  let dockerd: Dockerd;

  beforeAll(async () => {
    dockerd = await startDockerd();
    await importBusyboxImage(dockerd.host, "steward-test/busybox:1");
  }, 120_000);
  afterAll(async () => {
    await dockerd?.stop();
  }, 60_000);

  it("negotiates down to the engine's API version, where a fixed newer version is refused", async () => {
    const docker = new DockerClient({ host: dockerd.host, timeoutMs: 10_000 });
    expect(compareApiVersions(dockerd.apiVersion, MAX_API_VERSION)).toBeLessThanOrEqual(0);
    expect(await docker.apiVersion()).toBe(dockerd.apiVersion);
    expect(Array.isArray(await docker.listContainers())).toBe(true);

    if (compareApiVersions(dockerd.apiVersion, MAX_API_VERSION) < 0) {
      const fixed = new DockerClient({ host: dockerd.host, apiVersion: `v${MAX_API_VERSION}`, timeoutMs: 10_000 });
      const err = await fixed.listContainers().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DockerError);
      expect((err as DockerError).message).toMatch(/too new/);
    }
  });

  it("runs a container from the imported busybox image, seen through the negotiated client", async () => {
    const env = { ...process.env, DOCKER_HOST: dockerd.host };
    const { stdout } = await run("docker", ["run", "-d", "--network", "host", "--label", "com.docker.compose.project=probe", "steward-test/busybox:1", "sleep", "300"], { env });
    const id = stdout.trim();
    const docker = new DockerClient({ host: dockerd.host, timeoutMs: 10_000 });
    const list = await docker.listProjectContainers("probe");
    expect(list.map((c) => c.Id)).toEqual([id]);
    expect((await docker.inspectContainer(id)).State.Running).toBe(true);
    await docker.removeContainer(id, { force: true });
    expect(await docker.listProjectContainers("probe")).toEqual([]);
  });
});
