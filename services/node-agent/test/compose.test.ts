import { describe, expect, it } from "vitest";
import { containerCreateBody } from "../src/compose-container.js";
import { mergeComposeFiles } from "../src/compose-merge.js";
import { ComposeError, type StackRevision } from "../src/compose-model.js";
import { composeDurationMs, splitCommand } from "../src/compose-normalize.js";
import { buildRevision, configHash, deployOrder, engineUnsupported } from "../src/compose-revision.js";
import { observeContainers } from "../src/compose-status.js";
import type { ContainerInspect } from "../src/docker/types.js";

const file = (text: string, path = "compose.yaml") => ({ path, text });

const BASE = `
services:
  web:
    image: shop/web:1.0
    command: ["node", "server.js"]
    environment:
      - MODE=prod
      - LOG=info
    depends_on: [db]
    healthcheck:
      test: ["CMD", "wget", "-q", "localhost/health"]
      interval: 5s
      retries: 3
    ports: ["8080:80"]
  db:
    image: postgres:16
    environment:
      POSTGRES_DB: shop
`;

const REORDERED = `
services:
  db:
    environment:
      POSTGRES_DB: shop
    image: postgres:16
  web:
    ports: ["8080:80"]
    healthcheck:
      retries: 3
      interval: 5s
      test: ["CMD", "wget", "-q", "localhost/health"]
    depends_on:
      db:
        condition: service_started
    environment:
      LOG: info
      MODE: prod
    command: node server.js
    image: shop/web:1.0
`;

function rev(services = mergeComposeFiles([file(BASE)]), over: Partial<Omit<StackRevision, "hash">> = {}): StackRevision {
  return buildRevision({ project: "shop", services, env: {}, env_file: null, env_file_digests: {}, ...over });
}

describe("compose merge", () => {
  it("normalizes list/map spellings and merges later files over earlier ones", () => {
    const s = mergeComposeFiles([
      file(BASE),
      file(
        `
services:
  web:
    image: shop/web:1.1
    environment: { LOG: debug }
    ports: ["9090:90"]
  worker:
    image: shop/worker:1.0
    depends_on: [db]
    healthcheck: { disable: true }
`,
        "compose.prod.yaml",
      ),
    ]);
    expect(s["web"]).toMatchObject({
      image: "shop/web:1.1",
      command: ["node", "server.js"],
      environment: { MODE: "prod", LOG: "debug" },
      depends_on: ["db"],
      ports: ["8080:80", "9090:90"],
      healthcheck: { test: ["CMD", "wget", "-q", "localhost/health"], interval_ms: 5000, retries: 3 },
    });
    expect(s["worker"]?.healthcheck).toBeNull();
    expect(deployOrder(s)).toEqual(["db", "web", "worker"]);
  });

  it.each([
    ["not YAML", "services: [", /YAML/],
    ["no services", "version: '3'\n", /no 'services' map/],
    ["a non-compose file in the list", "name: ci\non: push\njobs: {}\n", /no 'services' map/],
    ["build without image", "services:\n  a:\n    build: .\n", /building images is not supported/],
    ["no image", "services:\n  a:\n    command: x\n", /services.a: no image/],
    ["unknown dependency", "services:\n  a:\n    image: x\n    depends_on: [b]\n", /'b' is not a service of this stack/],
    ["bad duration", "services:\n  a:\n    image: x\n    healthcheck: { test: 'true', interval: soon }\n", /not a duration/],
    ["long port syntax", "services:\n  a:\n    image: x\n    ports: [{ target: 80 }]\n", /short syntax/],
  ])("refuses %s, naming the file", (_what, text, msg) => {
    let err: unknown;
    try {
      mergeComposeFiles([file(text, "stacks/app/compose.yaml")]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ComposeError);
    expect((err as Error).message).toMatch(msg);
  });

  it("with the real Compose (lenient): build and long port/volume syntax are hashed as written, and only the Engine-API applier refuses them", () => {
    const text = "services:\n  a:\n    build: .\n    ports: [{ target: 80, published: 8080 }]\n  b:\n    image: x\n    volumes: [{ type: volume, source: data, target: /data }]\n";
    const s = mergeComposeFiles([file(text, "compose.yaml")], { lenient: true });
    expect(s["a"]).toMatchObject({ image: "", ports: [], other: { build: ".", ports: [{ target: 80, published: 8080 }] } });
    expect(s["b"]?.other).toEqual({ volumes: [{ type: "volume", source: "data", target: "/data" }] });
    expect(engineUnsupported(s)).toMatch(/services\.a\.build: building images needs Compose on the node/);
    expect(engineUnsupported({ b: s["b"] as NonNullable<(typeof s)["b"]> })).toMatch(/services\.b\.volumes: the long syntax needs Compose/);
    // What the strict parser accepts hashes the same either way: the choice of applier is no drift.
    const plain = "services:\n  a:\n    image: x\n    ports: ['80:80']\n";
    expect(mergeComposeFiles([file(plain, "c.yaml")], { lenient: true })).toEqual(mergeComposeFiles([file(plain, "c.yaml")]));
    expect(engineUnsupported(mergeComposeFiles([file(plain, "c.yaml")]))).toBeUndefined();
    // Neither image nor build is refused by both.
    expect(() => mergeComposeFiles([file("services:\n  a:\n    command: x\n", "c.yaml")], { lenient: true })).toThrow(/no image/);
  });

  it.each([
    ["node server.js", ["node", "server.js"]],
    [`sh -c "echo hi there"`, ["sh", "-c", "echo hi there"]],
    [`a '' b`, ["a", "", "b"]],
  ])("splitCommand(%s)", (s, want) => {
    expect(splitCommand(s)).toEqual(want);
  });

  it.each([
    ["10s", 10_000],
    ["1m30s", 90_000],
    ["500ms", 500],
    [3, 3000],
  ])("composeDurationMs(%s)", (v, want) => {
    expect(composeDurationMs(v, "x", "f")).toBe(want);
  });
});

describe("config hash", () => {
  const base = rev();

  it("is stable under key order and list/map spelling", () => {
    expect(rev(mergeComposeFiles([file(REORDERED)])).hash).toBe(base.hash);
    expect(configHash({ project: "shop", services: mergeComposeFiles([file(BASE)]), env: { B: "2", A: "1" }, env_file: null, env_file_digests: {} })).toBe(
      configHash({ project: "shop", services: mergeComposeFiles([file(BASE)]), env: { A: "1", B: "2" }, env_file: null, env_file_digests: {} }),
    );
    expect(base.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it.each([
    ["the image", () => rev(mergeComposeFiles([file(BASE.replace("shop/web:1.0", "shop/web:1.1"))]))],
    ["compose environment", () => rev(mergeComposeFiles([file(BASE.replace("LOG=info", "LOG=debug"))]))],
    ["file content (a healthcheck)", () => rev(mergeComposeFiles([file(BASE.replace("retries: 3", "retries: 4"))]))],
    ["an override file", () => rev(mergeComposeFiles([file(BASE), file("services:\n  db:\n    restart: always\n")]))],
    ["spec env", () => rev(undefined, { env: { FEATURE: "on" } })],
    ["which secret a variable refers to", () => rev(undefined, { env: { DB_PASSWORD: { secret: "db_password_v2" } } })],
    ["an env file value (by its keyed digest)", () => rev(undefined, { env_file: "/srv/.env", env_file_digests: { TOKEN: "aaaa" } })],
    ["the project name", () => rev(undefined, { project: "shop2" })],
  ])("changes with %s", (_what, make) => {
    expect(make().hash).not.toBe(base.hash);
  });

  it("names secrets, never their values: the hashed revision holds refs and digests only", () => {
    const secretValue = "s3cr3t-hunter2-value";
    const r = rev(undefined, { env: { DB_PASSWORD: { secret: "db_password" } }, env_file: "/srv/.env", env_file_digests: { TOKEN: "0123abcd" } });
    const text = JSON.stringify(r);
    expect(text).toContain("db_password");
    expect(text).not.toContain(secretValue);
    // The same ref hashes the same whatever the value would be: the value is not an input.
    expect(rev(undefined, { env: { DB_PASSWORD: { secret: "db_password" } }, env_file: "/srv/.env", env_file_digests: { TOKEN: "0123abcd" } }).hash).toBe(r.hash);
  });
});

describe("container create body", () => {
  it("carries compose labels, the config hash, health in nanoseconds, ports and the final env", () => {
    const r = rev();
    const body = containerCreateBody(r, "shop-stack", "web", { MODE: "prod", DB_PASSWORD: "x" }, "/srv/checkout");
    expect(body).toMatchObject({
      Image: "shop/web:1.0",
      Cmd: ["node", "server.js"],
      Env: ["MODE=prod", "DB_PASSWORD=x"],
      Labels: { "com.docker.compose.project": "shop", "com.docker.compose.service": "web", "steward.config-hash": r.hash, "steward.stack": "shop-stack" },
      Healthcheck: { Test: ["CMD", "wget", "-q", "localhost/health"], Interval: 5_000_000_000, Retries: 3 },
      ExposedPorts: { "80/tcp": {} },
      HostConfig: { PortBindings: { "80/tcp": [{ HostPort: "8080" }] } },
    });
  });
});

function inspect(name: string, over: { running?: boolean; status?: ContainerInspect["State"]["Status"]; health?: "healthy" | "unhealthy" | "starting"; hash?: string; restarts?: number; image?: string; exit?: number } = {}): ContainerInspect {
  const running = over.running ?? true;
  return {
    Id: name,
    Name: `/${name}`,
    Created: "2024-01-01T00:00:00Z",
    Image: over.image ?? "sha256:aaa",
    RestartCount: over.restarts ?? 0,
    State: {
      Status: over.status ?? (running ? "running" : "exited"),
      Running: running,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: running ? 10 : 0,
      ExitCode: over.exit ?? 0,
      Error: "",
      StartedAt: "",
      FinishedAt: "",
      ...(over.health ? { Health: { Status: over.health, FailingStreak: 0, Log: [] } } : {}),
    },
    Config: { Image: "x", Env: ["SECRET=never-published"], Labels: over.hash ? { "steward.config-hash": over.hash } : {}, Cmd: null },
  };
}

describe("stack observation from containers", () => {
  it.each([
    ["no containers: never deployed", [], { state: "stopped", health: "none", starts: 0 }],
    ["all running and healthy", [inspect("a", { health: "healthy", hash: "h1", restarts: 1 }), inspect("b", { hash: "h1", restarts: 2 })], { state: "running", health: "healthy", starts: 1, config_hash: "h1", restart_count: 3 }],
    ["one unhealthy", [inspect("a", { health: "healthy", hash: "h1" }), inspect("b", { health: "unhealthy", hash: "h1" })], { state: "running", health: "unhealthy", detail: "unhealthy: b" }],
    ["one exited", [inspect("a"), inspect("b", { running: false, exit: 2 })], { state: "failed", health: "none" }],
    ["all exited", [inspect("a", { running: false, exit: 137 })], { state: "exited", exit_code: 137 }],
    ["mixed hashes", [inspect("a", { hash: "h1" }), inspect("b", { hash: "h2" })], { config_hash: "mixed" }],
    ["no Steward label", [inspect("a")], { state: "running", config_hash: undefined }],
    ["one paused (docker pause): running but unhealthy, never down", [inspect("a", { health: "healthy" }), { ...inspect("b"), State: { ...inspect("b").State, Paused: true, Status: "paused" } }], { state: "running", health: "unhealthy", detail: "paused: b" }],
  ] as [string, ContainerInspect[], Record<string, unknown>][])("%s", (_what, containers, want) => {
    const o = observeContainers("shop", containers, { desiredHash: "h1", stoppedByCommand: false });
    for (const [k, v] of Object.entries(want)) expect(o[k as keyof typeof o]).toEqual(v);
    expect(o.desired_config_hash).toBe("h1");
    expect(JSON.stringify(o)).not.toContain("never-published");
  });
});
