import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeDocker, waitFor, type FakeDocker } from "@steward/testkit";
import { DockerClient, DockerError, parseDockerHost, splitImage } from "../src/docker/client.js";

let fake: FakeDocker;
let docker: DockerClient;

beforeAll(async () => {
  fake = await startFakeDocker({ missingImages: ["ghost/app:1"], healthDelayMs: 1000 }); // long enough to inspect "starting" on a busy machine
  docker = new DockerClient({ host: fake.host, apiVersion: "v1.43", timeoutMs: 2000 });
});
afterAll(async () => {
  await fake?.stop();
});

const labels = (project: string, service: string) => ({ "com.docker.compose.project": project, "com.docker.compose.service": service });

describe("docker client against the fake engine", () => {
  it("pulls an image (versioned path, fromImage + tag) and reports a missing one with the engine's message", async () => {
    await docker.pullImage("nginx:1.27");
    const req = fake.requests.at(-1);
    expect(req).toMatchObject({ method: "POST", path: "/images/create", query: { fromImage: "nginx", tag: "1.27" } });
    const err = await docker.pullImage("ghost/app:1").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DockerError);
    expect((err as DockerError).status).toBe(404);
    expect((err as DockerError).message).toMatch(/pull access denied for ghost\/app/);
  });

  it("creates with name and labels, starts, inspects (state, health, image, labels), stops and removes", async () => {
    await docker.pullImage("web:2");
    const created = await docker.createContainer("shop-web-1", {
      Image: "web:2",
      Env: ["A=1"],
      Labels: { ...labels("shop", "web"), "steward.config-hash": "sha256:abc" },
      Healthcheck: { Test: ["CMD", "true"], Interval: 1_000_000_000 },
    });
    expect(created.Id).toMatch(/^[0-9a-f]{64}$/);
    expect(created.Warnings).toEqual([]);
    const createReq = fake.requests.at(-1);
    expect(createReq).toMatchObject({ method: "POST", path: "/containers/create", query: { name: "shop-web-1" } });

    let c = await docker.inspectContainer(created.Id);
    expect(c.State.Status).toBe("created");
    await docker.startContainer(created.Id);
    await docker.startContainer(created.Id); // 304 is success
    c = await docker.inspectContainer("shop-web-1");
    expect(c).toMatchObject({ Name: "/shop-web-1", RestartCount: 0, State: { Status: "running", Running: true, Health: { Status: "starting" } }, Config: { Labels: { "steward.config-hash": "sha256:abc" } } });
    expect(c.Image).toMatch(/^sha256:[0-9a-f]{64}$/);
    await waitFor("health check passes", async () => (await docker.inspectContainer(created.Id)).State.Health?.Status === "healthy", 5000, 10);
    expect((await docker.inspectContainer(created.Id)).State.Health?.Status).toBe("healthy");

    fake.setHealth("shop-web-1", "unhealthy");
    expect((await docker.inspectContainer(created.Id)).State.Health?.Status).toBe("unhealthy");

    const conflict = await docker.createContainer("shop-web-1", { Image: "web:2" }).catch((e: unknown) => e);
    expect((conflict as DockerError).status).toBe(409);

    await docker.stopContainer(created.Id, 1);
    await docker.stopContainer(created.Id, 1); // 304 is success
    expect(fake.requests.at(-1)).toMatchObject({ method: "POST", path: `/containers/${created.Id}/stop`, query: { t: "1" } });
    expect((await docker.inspectContainer(created.Id)).State).toMatchObject({ Status: "exited", Running: false });
    await docker.removeContainer(created.Id, { force: true });
    const gone = await docker.inspectContainer(created.Id).catch((e: unknown) => e);
    expect((gone as DockerError).status).toBe(404);
    expect((gone as DockerError).message).toMatch(/No such container/);
  });

  it("creating from an image that was never pulled is a 404 naming the image", async () => {
    const err = await docker.createContainer("x-y-1", { Image: "never/pulled:1" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 404, engineMessage: "No such image: never/pulled:1" });
  });

  it("lists a compose project's containers in every state through the label filter", async () => {
    await docker.pullImage("db:16");
    const a = await docker.createContainer("proj-a-1", { Image: "db:16", Labels: labels("proj", "a") });
    await docker.createContainer("proj-b-1", { Image: "db:16", Labels: labels("proj", "b") });
    await docker.createContainer("other-a-1", { Image: "db:16", Labels: labels("other", "a") });
    await docker.startContainer(a.Id);
    const list = await docker.listProjectContainers("proj");
    expect(list.map((c) => c.Names[0]).sort()).toEqual(["/proj-a-1", "/proj-b-1"]);
    expect(list.find((c) => c.Names[0] === "/proj-a-1")).toMatchObject({ State: "running", Labels: { "com.docker.compose.service": "a" } });
    const req = fake.requests.at(-1);
    expect(req?.path).toBe("/containers/json");
    expect(req?.query["all"]).toBe("1");
    expect(JSON.parse(req?.query["filters"] ?? "{}")).toEqual({ label: ["com.docker.compose.project=proj"] });
  });

  it("a crash restarts a container with a restart policy (RestartCount) and leaves one without it exited", async () => {
    await docker.pullImage("svc:1");
    const a = await docker.createContainer("crash-a-1", { Image: "svc:1", HostConfig: { RestartPolicy: { Name: "always" } } });
    const b = await docker.createContainer("crash-b-1", { Image: "svc:1" });
    await docker.startContainer(a.Id);
    await docker.startContainer(b.Id);
    fake.crash(a.Id);
    fake.crash(b.Id, 3);
    expect(await docker.inspectContainer(a.Id)).toMatchObject({ RestartCount: 1, State: { Running: true } });
    expect(await docker.inspectContainer(b.Id)).toMatchObject({ RestartCount: 0, State: { Status: "exited", ExitCode: 3 } });
    // Removing a running container without force is refused, as the engine does.
    const err = await docker.removeContainer(a.Id).catch((e: unknown) => e);
    expect((err as DockerError).status).toBe(409);
  });

  it("an engine that is not there is an error saying so", async () => {
    const none = new DockerClient({ host: "unix:///nonexistent/docker.sock", timeoutMs: 500 });
    const err = await none.listContainers().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 0 });
    expect((err as Error).message).toMatch(/cannot reach the engine \(ENOENT\)/);
  });
});

describe("docker host and image names", () => {
  it.each([
    ["unix:///var/run/docker.sock", { socketPath: "/var/run/docker.sock" }],
    ["tcp://10.0.0.5:2376", { host: "10.0.0.5", port: 2376 }],
    ["tcp://docker", { host: "docker", port: 2375 }],
  ])("%s", (host, want) => {
    expect(parseDockerHost(host)).toEqual(want);
  });
  it("refuses ssh:// and relative sockets", () => {
    expect(() => parseDockerHost("ssh://me@host")).toThrow(/only unix/);
    expect(() => parseDockerHost("unix://docker.sock")).toThrow(/absolute/);
  });
  it.each([
    ["nginx", { name: "nginx", tag: "latest" }],
    ["nginx:1.27", { name: "nginx", tag: "1.27" }],
    ["reg.local:5000/team/app", { name: "reg.local:5000/team/app", tag: "latest" }],
    ["reg.local:5000/team/app:v2", { name: "reg.local:5000/team/app", tag: "v2" }],
    ["app@sha256:abcd", { name: "app@sha256:abcd", tag: undefined }],
  ])("splitImage(%s)", (image, want) => {
    expect(splitImage(image)).toEqual(want);
  });
});
