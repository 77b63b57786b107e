import { describe, expect, it } from "vitest";
import { parseFleetSpec, type EnvValue } from "@steward/fleet/fleet-spec";
import type { ServiceObservation } from "@steward/contracts/events";
import type { StackRevision } from "../src/compose-model.js";
import { buildRevision, resolvedHash, withComposeHashes } from "../src/compose-revision.js";
import { observedHash } from "../src/compose-status.js";
import { isOrphan, serviceOf, shouldPull } from "../src/compose-apply.js";
import { createStackConfig, envFileDigests, renderContainerEnv } from "../src/compose-config.js";
import { startSequence } from "../src/compose-control.js";
import { planRollback } from "../src/compose-deploy.js";
import { containerGate } from "../src/compose-health.js";
import { freshCheckProgress, nextCheckProgress } from "../src/plan.js";
import { containerEnvValue, deployingView, unreadableStack } from "../src/compose-observe.js";
import { EMPTY_RECORD, recordDeploy, type StackRecord } from "../src/compose-records.js";
import { createStackSet, stackSettings } from "../src/compose-stack.js";
import { lostDetail, stacksOfEvent } from "../src/compose-events.js";
import { composeArgs, createComposeHasher, detectCompose, distrustHashes, distrustedHashes, hashDisagreement, overrideFile, parseComposeVersion, parseConfigHashes, redactedTail } from "../src/compose-cli.js";
import type { EventsEnd } from "../src/docker/client.js";
import type { ContainerInspect, EngineEvent } from "../src/docker/types.js";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

function container(name: string, over: { running?: boolean; status?: ContainerInspect["State"]["Status"]; health?: "healthy" | "unhealthy" | "starting"; streak?: number; service?: string; env?: string[]; exit?: number } = {}): ContainerInspect {
  const running = over.running ?? true;
  return {
    Id: `id-${name}`,
    Name: `/${name}`,
    Created: "2025-01-01T00:00:00Z",
    Image: "sha256:aaaa",
    RestartCount: 0,
    State: {
      Status: over.status ?? (running ? "running" : "exited"),
      Running: running,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      Pid: running ? 42 : 0,
      ExitCode: over.exit ?? 0,
      Error: "",
      StartedAt: "2025-01-01T00:00:00Z",
      FinishedAt: "0001-01-01T00:00:00Z",
      ...(over.health ? { Health: { Status: over.health, FailingStreak: over.streak ?? 0, Log: [] } } : {}),
    },
    Config: { Image: "app:v1", Env: over.env ?? null, Labels: over.service === undefined ? null : { "com.docker.compose.service": over.service }, Cmd: null },
  };
}

const rev = (tag: string, services: string[] = ["app"]): StackRevision =>
  buildRevision({ project: "shop", services: Object.fromEntries(services.map((s) => [s, { image: `${s}:${tag}`, environment: {}, labels: {}, depends_on: [], ports: [], volumes: [], other: {} }])), env: {}, env_file: null, env_file_digests: {} });

describe("stack settings from the spec", () => {
  const spec = (nodes: unknown, extra: Record<string, unknown> = {}) => {
    const r = parseFleetSpec(JSON.stringify({ version: 1, nodes, ...extra }));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.spec;
  };
  it.each([
    ["only compose services, project defaulting to the name, checkout the spec dir", spec({ n1: { services: { shop: { kind: "compose", files: ["c.yaml"] }, api: { kind: "process", command: ["x"] } } } }), [{ name: "shop", project: "shop", checkout: "/etc/steward", healthTimeoutMs: 120_000 }]],
    ["project, node repo_path and the stack's own health timeout", spec({ n1: { repo_path: "deploy", services: { shop: { kind: "compose", files: ["c.yaml"], project: "p", deploy: { health_timeout: "5s" } } } } }), [{ name: "shop", project: "p", checkout: "/etc/steward/deploy", healthTimeoutMs: 5000 }]],
    ["the fleet's repo path and deploy timeout", spec({ n1: { services: { shop: { kind: "compose", files: ["c.yaml"] } } } }, { repo: { path: "/srv/repo" }, deploy: { health_timeout: "9s" } }), [{ name: "shop", project: "shop", checkout: "/srv/repo", healthTimeoutMs: 9000 }]],
    ["another node's stacks are not this node's", spec({ n2: { services: { shop: { kind: "compose", files: ["c.yaml"] } } } }), []],
  ])("%s", (_what, s, want) => {
    expect(stackSettings(s, "n1", "/etc/steward").map(({ name, project, checkout, healthTimeoutMs }) => ({ name, project, checkout, healthTimeoutMs }))).toEqual(want);
  });
});

describe("container environment", () => {
  const resolve = (ref: { secret: string }) => (ref.secret === "known" ? "s3cret" : undefined);
  it.each<[string, Record<string, string> | undefined, [string, string][], Record<string, EnvValue>, ReturnType<typeof renderContainerEnv>]>([
    ["compose, then env file, then spec win in that order", { A: "compose", B: "compose", C: "compose" }, [["B", "file"], ["C", "file"]], { C: "spec" }, { ok: true, env: { A: "compose", B: "file", C: "spec" } }],
    ["a secret reference is resolved", undefined, [], { DB: { secret: "known" } }, { ok: true, env: { DB: "s3cret" } }],
    ["the first unresolvable secret fails it, by name", { A: "x" }, [], { OK: { secret: "known" }, DB: { secret: "gone" }, LATER: { secret: "also-gone" } }, { ok: false, secret: "gone", key: "DB" }],
  ])("%s", (_what, compose, envFile, spec, want) => {
    expect(renderContainerEnv(compose, envFile, spec, resolve)).toEqual(want);
  });

  it("env file digests change with a value and never contain it", () => {
    const a = envFileDigests("k".repeat(32), [["TOKEN", "value-one"]]);
    const b = envFileDigests("k".repeat(32), [["TOKEN", "value-two"]]);
    expect(a["TOKEN"]).toMatch(/^[0-9a-f]{24}$/);
    expect(a["TOKEN"]).not.toBe(b["TOKEN"]);
    expect(JSON.stringify(a)).not.toContain("value-one");
    expect(envFileDigests("another-key-0123456789abcdef", [["TOKEN", "value-one"]])["TOKEN"]).not.toBe(a["TOKEN"]);
  });
});

describe("container health gate", () => {
  const deadline = 1000;
  it.each<[string, ContainerInspect, number, unknown]>([
    ["healthy passes", container("shop-app-1", { health: "healthy" }), 0, { pass: "shop-app-1 healthy" }],
    ["running without a healthcheck passes", container("shop-app-1"), 0, { pass: "shop-app-1 running (no container healthcheck)" }],
    ["starting waits", container("shop-app-1", { health: "starting" }), 0, { wait: "starting" }],
    ["starting when the gate closes fails", container("shop-app-1", { health: "starting" }), 1000, { fail: "container shop-app-1 still starting when the health gate closed" }],
    ["unhealthy fails at once", container("shop-app-1", { health: "unhealthy", streak: 3 }), 0, { fail: "container shop-app-1 is unhealthy (failing streak 3)" }],
    ["exited fails at once", container("shop-app-1", { running: false, exit: 2 }), 0, { fail: "container shop-app-1 exited (exit code 2) during its health gate" }],
  ])("%s", (_what, c, now, want) => {
    expect(containerGate(c, now, deadline)).toEqual(want);
  });

  it.each([
    [{ retries: 3, passedOnce: false, consecutiveFailures: 2 }, true, { retries: 3, passedOnce: true, consecutiveFailures: 0 }],
    [{ retries: 3, passedOnce: true, consecutiveFailures: 0 }, false, { retries: 3, passedOnce: true, consecutiveFailures: 1 }],
    // start_period: a failure before the first pass, inside the period, is not counted; after it, or once passed, it is.
    [{ retries: 3, passedOnce: false, consecutiveFailures: 0, startPeriodEndsAt: 1001 }, false, { retries: 3, passedOnce: false, consecutiveFailures: 0, startPeriodEndsAt: 1001 }],
    [{ retries: 3, passedOnce: false, consecutiveFailures: 0, startPeriodEndsAt: 1000 }, false, { retries: 3, passedOnce: false, consecutiveFailures: 1, startPeriodEndsAt: 1000 }],
    [{ retries: 3, passedOnce: true, consecutiveFailures: 0, startPeriodEndsAt: 5000 }, false, { retries: 3, passedOnce: true, consecutiveFailures: 1, startPeriodEndsAt: 5000 }],
  ])("check progress %j after ok=%s at t=1000", (p, ok, want) => {
    expect(nextCheckProgress(p, ok, 1000)).toEqual(want);
  });

  it.each([
    [{ retries: 2, start_period: 0 }, { retries: 2, passedOnce: false, consecutiveFailures: 0 }],
    [{ retries: 2, start_period: 30_000 }, { retries: 2, passedOnce: false, consecutiveFailures: 0, startPeriodEndsAt: 31_000 }],
  ])("fresh progress for %j at t=1000", (check, want) => {
    expect(freshCheckProgress(check, 1000)).toEqual(want);
  });
});

describe("observation pieces", () => {
  const running: ServiceObservation = { service: "shop", state: "running", health: "healthy", starts: 1, declared: true, config_hash: "sha256:1" };
  it.each<[string, ServiceObservation, string | undefined, ServiceObservation]>([
    ["no deploy: unchanged", running, undefined, running],
    ["a deploy in progress reports starting, naming the revision", running, "sha256:2", { ...running, state: "starting", health: "starting", detail: "deploying sha256:2" }],
  ])("%s", (_what, o, deploying, want) => {
    expect(deployingView(o, deploying)).toEqual(want);
  });

  it("an engine that does not answer is unknown, keeping the starts and the desired hash", () => {
    expect(unreadableStack("shop", 2, "connect ENOENT", "sha256:d")).toEqual({ service: "shop", state: "unknown", health: "none", starts: 2, declared: true, detail: "cannot read containers: connect ENOENT", desired_config_hash: "sha256:d" });
    expect(unreadableStack("shop", 0, "x".repeat(3000), undefined).detail).toHaveLength(2000);
  });

  it.each<[string, ContainerInspect[], unknown]>([
    ["found in a running container", [container("a", { env: ["OTHER=1"] }), container("b", { env: ["KEY=v=1"] })], { found: true, value: "v=1" }],
    ["missing from every container", [container("a", { env: ["OTHER=1"] })], { found: false, status: "missing", detail: "no KEY in the environment of stack shop" }],
    ["no running container", [], { found: false, status: "missing", detail: "stack shop has no running container" }],
  ])("container env: %s", (_what, cs, want) => {
    expect(containerEnvValue(cs, "shop", "KEY")).toEqual(want);
  });
});

describe("what was deployed", () => {
  const v1 = rev("v1");
  const v2 = rev("v2");
  it.each<[string, StackRecord, StackRevision, boolean, StackRecord]>([
    ["first deploy on an empty node", EMPTY_RECORD, v1, false, { version: 1, deployed: v1, previous: null, previous_unknown: false }],
    ["first deploy over containers Steward did not create", EMPTY_RECORD, v1, true, { version: 1, deployed: v1, previous: null, previous_unknown: true }],
    ["a new revision pushes the deployed one to previous", { version: 1, deployed: v1, previous: null, previous_unknown: true }, v2, false, { version: 1, deployed: v2, previous: v1, previous_unknown: false }],
    ["the same revision again keeps what ran before", { version: 1, deployed: v2, previous: v1, previous_unknown: false }, v2, false, { version: 1, deployed: v2, previous: v1, previous_unknown: false }],
  ])("%s", (_what, rec, r, ranBefore, want) => {
    expect(recordDeploy(rec, r, ranBefore)).toEqual(want);
  });

  it.each<[string, StackRecord, string | null | undefined, unknown]>([
    ["nothing deployed", EMPTY_RECORD, undefined, { refuse: "nothing was deployed by Steward for shop on n1; nothing to roll back" }],
    ["previous containers not Steward's", { version: 1, deployed: v2, previous: null, previous_unknown: true }, null, { refuse: "the containers that ran before were not deployed by Steward; they cannot be re-created" }],
    ["a target other than the recorded one", { version: 1, deployed: v2, previous: v1, previous_unknown: false }, "sha256:0000", { refuse: `the previous revision recorded here is ${v1.hash}, not sha256:0000; refusing to roll back to something else` }],
    ["null target when something ran before", { version: 1, deployed: v2, previous: v1, previous_unknown: false }, null, { refuse: `the previous revision recorded here is ${v1.hash}, not null; refusing to roll back to something else` }],
    ["nothing ran before: remove", { version: 1, deployed: v1, previous: null, previous_unknown: false }, null, { remove: v1, record: { version: 1, deployed: null, previous: v1, previous_unknown: false } }],
    ["back to the recorded previous revision", { version: 1, deployed: v2, previous: v1, previous_unknown: false }, v1.hash, { reapply: v1, record: { version: 1, deployed: v1, previous: v2, previous_unknown: false } }],
    ["no target named: whatever ran before", { version: 1, deployed: v2, previous: v1, previous_unknown: false }, undefined, { reapply: v1, record: { version: 1, deployed: v1, previous: v2, previous_unknown: false } }],
  ])("rollback: %s", (_what, rec, want, plan) => {
    expect(planRollback(rec, want, "shop", "n1")).toEqual(plan);
  });
});

describe("applying and controlling containers", () => {
  it.each<[string, ContainerInspect, string, boolean]>([
    ["a service of the revision", container("x", { service: "app" }), "app", false],
    ["a service that left the files", container("x", { service: "old" }), "old", true],
    ["a container without a service label", container("x"), "", true],
  ])("orphans: %s", (_what, c, service, orphan) => {
    expect(serviceOf(c)).toBe(service);
    expect(isOrphan(c, rev("v1", ["app", "db"]))).toBe(orphan);
  });

  it.each<[string, ContainerInspect[], string[], string[]]>([
    ["dependencies first", [container("web", { service: "web" }), container("db", { service: "db" })], ["db", "web"], ["id-db", "id-web"]],
    ["unknown services last, in their listed order", [container("x", { service: "gone" }), container("web", { service: "web" }), container("y")], ["web"], ["id-web", "id-x", "id-y"]],
    ["no order (spec unreadable): as listed", [container("b", { service: "b" }), container("a", { service: "a" })], [], ["id-b", "id-a"]],
  ])("start sequence: %s", (_what, cs, order, want) => {
    expect(startSequence(cs, order)).toEqual(want);
  });

});

describe("engine events", () => {
  const spec = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { services: { shop: { kind: "compose", files: ["c.yaml"], project: "shop-p" }, blog: { kind: "compose", files: ["c.yaml"] } } } } }));
  if (!spec.ok) throw new Error("bad spec");
  const set = createStackSet({ node: "n1", specDir: "/srv" });
  set.update(spec.spec);
  const ev = (Action: string, project?: string, Type = "container"): EngineEvent => ({ Type, Action, Actor: { ID: "c1", Attributes: project ? { "com.docker.compose.project": project } : {} } });

  it.each([
    ["die of a declared project", ev("die", "shop-p"), ["shop"]],
    ["health change", ev("health_status: unhealthy", "blog"), ["blog"]],
    ["pause", ev("pause", "blog"), ["blog"]],
    ["a healthcheck run (exec_*) changes nothing", ev("exec_die", "blog"), []],
    ["another project", ev("die", "other"), []],
    ["no project label", ev("die"), []],
    ["not a container", ev("die", "blog", "network"), []],
  ] as [string, EngineEvent, string[]][])("%s", (_what, e, want) => {
    expect(stacksOfEvent(e, set.all()).map((s) => s.name)).toEqual(want);
  });

  it.each([
    [{ connected: true, reason: "ended", detail: "the engine closed its event stream" }, "engine event stream: the engine closed its event stream"],
    [{ connected: false, reason: "broken", detail: "cannot reach the engine (ENOENT)" }, "engine event stream: cannot reach the engine (ENOENT)"],
    [{ connected: false, reason: "refused", detail: "HTTP 404: page not found" }, undefined],
    [{ connected: true, reason: "aborted", detail: "aborted" }, undefined],
  ] as [EventsEnd, string | undefined][])("an ended stream %j → %s", (end, want) => {
    expect(lostDetail(end)).toBe(want);
  });
});

describe("the Compose CLI", () => {
  it.each([
    ["2.27.0\n", "2.27.0"],
    ["v2.29.1-desktop.1", "2.29.1-desktop.1"],
    ["1.29.2", "1.29.2"],
    ["docker: 'compose' is not a docker command.", undefined],
  ])("version %j → %s", (out, want) => expect(parseComposeVersion(out)).toBe(want));

  it("prefers docker compose (v2), else docker-compose (v1), else none", async () => {
    const answers = (ok: Record<string, string>) => (file: string, args: readonly string[]) => {
      const key = [file, ...args.slice(0, file === "docker" ? 1 : 0)].join(" ");
      return Promise.resolve(key in ok ? { code: 0, stdout: ok[key] as string, stderr: "" } : { code: 1, stdout: "", stderr: "unknown command" });
    };
    expect(await detectCompose({}, answers({ "docker compose": "2.27.0", "docker-compose": "1.29.2" }))).toEqual({ command: ["docker", "compose"], version: "2.27.0", label: "docker compose 2.27.0" });
    expect(await detectCompose({}, answers({ "docker-compose": "1.29.2" }))).toMatchObject({ command: ["docker-compose"], label: "docker-compose 1.29.2" });
    expect(await detectCompose({}, answers({}))).toBeUndefined();
  });

  it("the override holds Steward's labels and variable NAMES only", () => {
    const r = { hash: "sha256:abc", services: { web: {} as never, db: {} as never } };
    const doc = JSON.parse(overrideFile(r, "shop", ["TOKEN", "MODE"], "3.8")) as Record<string, unknown>;
    expect(doc).toEqual({
      version: "3.8",
      services: {
        db: { labels: { "steward.config-hash": "sha256:abc", "steward.stack": "shop" }, environment: ["MODE", "TOKEN"] },
        web: { labels: { "steward.config-hash": "sha256:abc", "steward.stack": "shop" }, environment: ["MODE", "TOKEN"] },
      },
    });
    expect(JSON.parse(overrideFile(r, "shop", [], undefined))).not.toHaveProperty("version");
  });

  it("arguments: project, project directory, files in order, env file, then the command", () => {
    expect(composeArgs({ command: ["docker", "compose"] }, "shop", "/srv/d/stacks", ["/a.yaml", "/b.json"], "/srv/d/.env", ["up", "-d", "--remove-orphans"])).toEqual({
      file: "docker",
      args: ["compose", "--project-name", "shop", "--project-directory", "/srv/d/stacks", "--file", "/a.yaml", "--file", "/b.json", "--env-file", "/srv/d/.env", "up", "-d", "--remove-orphans"],
    });
    expect(composeArgs({ command: ["docker-compose"] }, "p", "/x", ["/a.yaml"], null, ["up"]).args).toEqual(["--project-name", "p", "--project-directory", "/x", "--file", "/a.yaml", "up"]);
  });

  it("errors never carry a value Steward passed", () => {
    expect(redactedTail("ERROR: bad value hunter2secret for X\n", ["hunter2secret", "ab"])).toBe("ERROR: bad value *** for X");
    expect(redactedTail("x".repeat(3000), [], 10)).toBe(`…${"x".repeat(10)}`);
  });
});

describe("pull policy (Compose's pull_policy; default: only when missing)", () => {
  it.each([
    [undefined, true, false],
    [undefined, false, true],
    ["missing", true, false],
    ["if_not_present", false, true],
    ["always", true, true],
    ["never", false, false],
    ["build", false, false],
  ])("%s, image present %s → pull %s", (policy, exists, want) => expect(shouldPull(policy, exists)).toBe(want));
});

describe("config drift from Compose's own config hash", () => {
  const H = (c: string) => c.repeat(64);
  it.each([
    ["v1 (`docker-compose config --hash=*`)", `api ${H("a")}\nweb ${H("b")}\n`, { api: H("a"), web: H("b") }],
    ["v2 (`docker compose config --hash \"*\"`), trailing spaces", `web ${H("b")}  \n`, { web: H("b") }],
    ["a warning line among them is skipped", `WARNING: something\nweb ${H("c")}`, { web: H("c") }],
    ["nothing of that shape", "ERROR: no such service\n", undefined],
    ["a short hash is not one", "web abc123\n", undefined],
  ])("%s", (_, out, want) => expect(parseConfigHashes(out)).toEqual(want));

  const KEY = "fleet-key-0123456789";
  const labelled = (name: string, service: string, content: string | undefined, compose: string | undefined): ContainerInspect => {
    const c = container(name, { service });
    c.Config.Labels = { "com.docker.compose.service": service, ...(content ? { "steward.config-hash": content } : {}), ...(compose ? { "com.docker.compose.config-hash": compose } : {}) };
    return c;
  };
  const want = resolvedHash(KEY, "sha256:c1", { api: H("a"), web: H("b") });
  it.each([
    ["both services carry the wanted hashes → the wanted identity", [labelled("a1", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c1", H("b"))], KEY, { hash: want }],
    ["replicas of one service agree → the same", [labelled("a1", "api", "sha256:c1", H("a")), labelled("a2", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c1", H("b"))], KEY, { hash: want }],
    ["one service's resolved config differs (an interpolated tag) → another identity", [labelled("a1", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c1", H("d"))], KEY, { hash: resolvedHash(KEY, "sha256:c1", { api: H("a"), web: H("d") }) }],
    ["replicas disagree → mixed, named", [labelled("a1", "api", "sha256:c1", H("a")), labelled("a2", "api", "sha256:c1", H("e"))], KEY, { hash: "mixed", problem: "the containers of service api carry different Compose config hashes" }],
    ["made by the Engine-API applier (no Compose label) → the content hash, never a resolved one", [labelled("a1", "api", "sha256:c1", undefined)], KEY, { hash: "sha256:c1" }],
    ["no Steward label → nothing to compare", [labelled("a1", "api", undefined, H("a"))], KEY, {}],
    ["different Steward labels → mixed", [labelled("a1", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c2", H("b"))], KEY, { hash: "mixed", problem: "containers carry different config hashes" }],
    ["without Compose (no key) → the content label as before", [labelled("a1", "api", "sha256:c1", H("a"))], undefined, { hash: "sha256:c1" }],
  ] as [string, ContainerInspect[], string | undefined, object][])("%s", (_, cs, key, out) => expect(observedHash(cs, key)).toEqual(out));

  it.each([
    ["every container carries what config --hash says", [labelled("a1", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c1", H("b"))], undefined],
    ["an orphan's service is not asked about", [labelled("a1", "api", "sha256:c1", H("a")), labelled("o1", "old", "sha256:c1", H("f"))], undefined],
    ["a label that differs (a Compose that hashes differently for config --hash than for up)", [labelled("a1", "api", "sha256:c1", H("a")), labelled("w1", "web", "sha256:c1", H("d"))], `service web: its container's com.docker.compose.config-hash is ${"d".repeat(12)}, config --hash says ${"b".repeat(12)}`],
    ["no label at all", [labelled("a1", "api", "sha256:c1", undefined)], `service api: its container's com.docker.compose.config-hash is missing, config --hash says ${"a".repeat(12)}`],
  ] as [string, ContainerInspect[], string | undefined][])("after up: %s", (_, cs, want) => expect(hashDisagreement(cs, { api: H("a"), web: H("b") })).toBe(want));

  it("a Compose found not to reproduce its labels is remembered by its label across restarts", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steward-verdict-"));
    try {
      expect(await distrustedHashes(dir, "docker compose 2.27.0")).toBeUndefined();
      await distrustHashes(dir, "docker compose 2.27.0", "stack shop: service web differs");
      expect(await distrustedHashes(dir, "docker compose 2.27.0")).toBe("stack shop: service web differs");
      // Another version (an upgrade) is asked again.
      expect(await distrustedHashes(dir, "docker compose 2.30.1")).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the resolved identity is keyed (nobody without the fleet key can test guesses of the environment against it)", () => {
    expect(want).toMatch(/^compose:[0-9a-f]{64}$/);
    expect(resolvedHash("other-key", "sha256:c1", { api: H("a"), web: H("b") })).not.toBe(want);
    expect(resolvedHash(KEY, "sha256:c1", { web: H("b"), api: H("a") })).toBe(want);
  });

  it("a revision with Compose's hashes keeps its content hash for the label and the kept files", () => {
    const base = buildRevision({ project: "p", services: {}, env: {}, env_file: null, env_file_digests: {} });
    const r = withComposeHashes(KEY, base, { api: H("a") });
    expect(r.content_hash).toBe(base.hash);
    expect(r.hash).toBe(resolvedHash(KEY, base.hash, { api: H("a") }));
    expect(JSON.parse(overrideFile(r, "shop", [], undefined)).services).toEqual({});
  });

  it("desired(): Compose's hashes fold into the identity; reused only for the same content and environment within maxAgeMs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steward-hash-"));
    try {
      await writeFile(join(dir, "compose.yaml"), "services:\n  web:\n    image: app:${TAG}\n");
      await writeFile(join(dir, ".env"), "TAG=1\n");
      const spec = parseFleetSpec(JSON.stringify({ version: 1, nodes: { n1: { repo_path: ".", services: { shop: { kind: "compose", files: ["compose.yaml"], env_file: ".env", env: { TOKEN: { secret: "t" } } } } } } }));
      if (!spec.ok) throw new Error("spec");
      const [stack] = stackSettings(spec.spec, "n1", dir);
      let answer = H("a");
      let secret = "v1";
      const asked: Record<string, string>[] = [];
      let t = 0;
      let hashing = true;
      let answerNone = false;
      const config = createStackConfig({ node: "n1", fleetKey: KEY, resolveSecret: () => secret, composeHashes: () => (hashing ? (_s, _r, env) => (asked.push(env), Promise.resolve(answerNone ? undefined : { web: answer })) : undefined), now: () => t });
      const s = stack as NonNullable<typeof stack>;
      const r1 = await config.desired(s);
      expect(r1.hash).toBe(resolvedHash(KEY, r1.content_hash as string, { web: H("a") }));
      expect(asked[0]).toEqual({ TAG: "1", TOKEN: "v1" });
      // What Compose resolves changed while Steward's content did not (an image behind a tag, a variable Compose reads).
      answer = H("b");
      t = 10_000;
      expect((await config.desired(s, { maxAgeMs: 30_000 })).hash).toBe(r1.hash);
      expect(asked).toHaveLength(1);
      const r2 = await config.desired(s, { maxAgeMs: 5_000 });
      expect(asked).toHaveLength(2);
      expect(r2.content_hash).toBe(r1.content_hash);
      expect(r2.hash).not.toBe(r1.hash);
      // A changed secret value is a changed environment: asked again whatever the age.
      secret = "v2";
      await config.desired(s, { maxAgeMs: Number.POSITIVE_INFINITY });
      expect(asked).toHaveLength(3);
      // The interpolated tag in the env file: the content changes too, asked again.
      await writeFile(join(dir, ".env"), "TAG=2\n");
      const r3 = await config.desired(s, { maxAgeMs: Number.POSITIVE_INFINITY });
      expect(asked).toHaveLength(4);
      expect(r3.content_hash).not.toBe(r1.content_hash);
      // A Compose that gives no hashes: the content hash alone.
      answerNone = true;
      const none = await config.desired(s);
      expect(none.hash).toBe(r3.content_hash);
      answerNone = false;
      // Without Compose: the content hash alone, as before.
      hashing = false;
      const plain = await config.desired(s);
      expect(plain.hash).toBe(r3.content_hash);
      expect(plain.content_hash).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the hasher runs `config --hash=*` on the kept files plus the same override `up` uses, values only in its environment", async () => {
    const dir = await mkdtemp(join(tmpdir(), "steward-hasher-"));
    try {
      await writeFile(join(dir, "compose.yaml"), "version: '3.8'\nservices:\n  web:\n    image: app:1\n");
      const calls: { file: string; args: readonly string[]; env: NodeJS.ProcessEnv }[] = [];
      let out = { code: 0, stdout: `web ${H("a")}\n`, stderr: "" };
      const hasher = createComposeHasher({ cli: { command: ["docker-compose"], version: "1.29.2", label: "docker-compose 1.29.2" }, dockerHost: "unix:///x.sock", stateDir: join(dir, "state"), run: (file, args, opts) => (calls.push({ file, args, env: opts.env }), Promise.resolve(out)) });
      const settings = { name: "shop", project: "shop", checkout: dir, healthTimeoutMs: 1000, spec: { kind: "compose", files: ["compose.yaml"], env: {} } } as never;
      const r = buildRevision({ project: "shop", services: { web: {} as never }, env: {}, env_file: null, env_file_digests: {} });
      expect(await hasher(settings, r, { TOKEN: "hunter2-secret" })).toEqual({ web: H("a") });
      const call = calls[0];
      expect(call?.args.slice(-2)).toEqual(["config", "--hash=*"]);
      expect(call?.env["TOKEN"]).toBe("hunter2-secret");
      expect(call?.env["DOCKER_HOST"]).toBe("unix:///x.sock");
      expect(call?.args.join(" ")).not.toContain("hunter2");
      const files = (call?.args ?? []).filter((_, i, a) => a[i - 1] === "--file");
      expect(files).toHaveLength(2);
      expect(await readFile(files[0] as string, "utf8")).toContain("image: app:1");
      expect(JSON.parse(await readFile(files[1] as string, "utf8"))).toEqual(JSON.parse(overrideFile(r, "shop", ["TOKEN"], "3.8")));
      // Compose v2.23.0 answers `--hash=*` with nothing: no hashes to trust, not an error.
      out = { code: 0, stdout: "", stderr: "" };
      expect(await hasher(settings, r, {})).toBeUndefined();
      out = { code: 1, stdout: "", stderr: "ERROR: invalid interpolation of hunter2-secret" };
      await expect(hasher(settings, r, { TOKEN: "hunter2-secret" })).rejects.toThrow(/docker-compose 1.29.2 config --hash \(exit 1\): ERROR: invalid interpolation of \*\*\*/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
