/**
 * The planner's investigation tools on compose services, against a real dockerd (Debian's, started by the test), a real
 * nats-server and a node-agent in this process: `service_logs` reads a stack's container logs through the node-agent's
 * log-tail responder (redacted, bounded, with a time range from the engine's timestamps), and `container_inspect`
 * answers a stack's container state (exit code, OOMKilled, health and its last results) with env names, never values.
 *
 * Needs root and dockerd (skipped without them) and `npx tsc -b` first.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { containerInspectSubject } from "@steward/contracts/subjects";
import { ContainerInspectReply } from "@steward/contracts/container-inspect";
import { loadFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { createNodeAgent, type NodeAgent } from "@steward/node-agent";
import { TOOLS, createNatsSources, runTool, type ToolContext } from "@steward/planner";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./support/secure-nats.js";
import { dockerdUnavailable, importBusyboxImage, startDockerd, startNats, waitFor, type Dockerd, type NatsServerHandle } from "@steward/testkit";

const run = promisify(execFile);
const skip = dockerdUnavailable();
const IMAGE = "steward-test/busybox:1";
const SECRET = "hunter2-very-secret-42";
const PLAIN = "plain-visible-value-77";
const SPEC_SECRET = "spec-declared-value-99";

describe.skipIf(skip)("investigating compose services on a live dockerd", () => {
  let dockerd: Dockerd;
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let agentNc: NatsConnection;
  let plannerNc: NatsConnection;
  let security: NatsSecurity;
  let agent: NodeAgent;
  let dir = "";
  let spec: FleetSpec;
  let ctx: Omit<ToolContext, "signal">;
  const docker = (...args: string[]) => run("docker", args, { env: { ...process.env, DOCKER_HOST: dockerd.host }, timeout: 60_000 });
  const inspect = async (name: string) => JSON.parse((await docker("inspect", name)).stdout)[0] as { State: { Status: string; ExitCode: number; OOMKilled: boolean; Health?: { Status: string; Log: unknown[] } } };
  const tool = (name: string) => TOOLS.find((t) => t.name === name)!;
  const call = async (name: string, args: unknown) => runTool(tool(name), tool(name).args.parse(args), { ...ctx, now: new Date() }, { timeoutMs: 20_000, maxChars: 20_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-compose-investigate-"));
    await mkdir(join(dir, "checkout"));
    await writeFile(join(dir, "checkout", "compose.yaml"), `services:\n  app:\n    image: ${IMAGE}\n`);
    const stack = (extra = "") => `        kind: compose\n        files: [compose.yaml]\n        autostart: false\n${extra}`;
    await writeFile(
      join(dir, "fleet.yaml"),
      `version: 1\nnodes:\n  n1:\n    repo_path: checkout\n    services:\n      crash:\n${stack(`        env: { SOME_SETTING: "${SPEC_SECRET}" }\n`)}      sick:\n${stack()}      oom:\n${stack()}      proc:\n        kind: process\n        command: ["sleep", "1000"]\n        autostart: false\n`,
    );
    spec = await loadFleetSpec(join(dir, "fleet.yaml"));
    security = await natsSecurity(["n1"]);
    [dockerd, nats] = await Promise.all([startDockerd(), startNats({ config: security.config })]);
    await importBusyboxImage(dockerd.host, IMAGE);
    // The agent and the planner's sources each on its own identity (the planner asks n1 for log tails and inspects).
    nc = await security.connect(nats.url, TEST_HARNESS_IDENTITY, "compose-investigation-test");
    agentNc = await security.connect(nats.url, "node.n1");
    plannerNc = await security.connect(nats.url, "planner");
    await ensureStreams(nc);
    const keys = newCommandKeyPair();
    agent = createNodeAgent({
      config: {
        nodeName: "n1",
        natsUrl: nats.url,
        fleetSpec: join(dir, "fleet.yaml"),
        fleetKey: "test-fleet-key-0123456789abcdef",
        commandKeys: [keys.signing.publicKey],
        heartbeatMs: 1000,
        hostProbeMs: 60_000,
        specPollMs: 60_000,
        maxInFlight: 64,
        backlogMax: 1000,
        metricsPort: 0,
        metricsHost: "127.0.0.1",
        logDir: join(dir, "logs"),
        stateDir: join(dir, "state"),
        stopGraceMs: 2000,
        publishTimeoutMs: 1000,
        dockerHost: dockerd.host,
        composeApply: "engine-api",
        dockerProbeMs: 60_000,
        repoProbeMs: 600_000,
      },
      nc: agentNc,
      logger: silentLogger(),
      registry: createRegistry("compose-investigation-test", false),
    });
    await agent.start();
    ctx = { sources: createNatsSources(plannerNc, { fleetSpecPath: join(dir, "fleet.yaml"), logTailBytes: 4096, logTailTimeoutMs: 20_000 }), actions: { listForService: async () => [] }, spec, now: new Date(), eventsWindowMs: 3_600_000, logBytes: 4096 };

    const label = (project: string, service: string) => ["--label", `com.docker.compose.project=${project}`, "--label", `com.docker.compose.service=${service}`];
    // A crash: prints the secret it was given, then exits 3.
    await docker("run", "-d", "--name", "crash-app-1", "--network", "none", ...label("crash", "app"), "-e", `DB_PASSWORD=${SECRET}`, "-e", `PLAIN_SETTING=${PLAIN}`, IMAGE, "sh", "-c", `echo starting; echo "connecting with $DB_PASSWORD"; echo "value $PLAIN_SETTING and ${SPEC_SECRET}"; i=0; while [ $i -lt 20 ]; do echo "filler line $i"; i=$((i+1)); done; echo "error: connection refused to db:5432" >&2; exit 3`);
    // A second container in the same stack: its lines are merged in, tagged with its compose service.
    await docker("run", "-d", "--name", "crash-worker-1", "--network", "none", ...label("crash", "worker"), IMAGE, "sh", "-c", "echo worker up; sleep 100000");
    // Unhealthy: its health check prints and fails.
    await docker("run", "-d", "--name", "sick-app-1", "--network", "none", ...label("sick", "app"), "-e", `API_TOKEN=${SECRET}`, "-e", `PLAIN_SETTING=${PLAIN}`, "-v", `${dir}:/data:ro`, "--health-cmd", "echo checking db; exit 1", "--health-interval", "1s", "--health-retries", "1", IMAGE, "sleep", "100000");
    // Out of memory: a 16 MiB limit, then a shell string that grows past it.
    await docker("run", "-d", "--name", "oom-app-1", "--network", "none", ...label("oom", "app"), "--memory", "16m", "--memory-swap", "16m", IMAGE, "sh", "-c", "echo filling memory; x=a; while true; do x=$x$x; done");
    await waitFor("the crash container exited", async () => (await inspect("crash-app-1")).State.Status === "exited", 60_000, 200);
    await waitFor("the sick container unhealthy", async () => (await inspect("sick-app-1")).State.Health?.Status === "unhealthy", 60_000, 200);
    await waitFor("the oom container ended", async () => (await inspect("oom-app-1")).State.Status === "exited", 60_000, 200);
  }, 240_000);

  afterAll(async () => {
    await agent?.stop().catch(() => undefined);
    for (const c of [nc, agentNc, plannerNc]) await c?.close().catch(() => undefined);
    await nats?.stop();
    await security?.remove();
    await dockerd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("service_logs reads a stack's container logs through the node-agent: merged by time, tagged, redacted, bounded", async () => {
    const r = await call("service_logs", { node: "n1", service: "crash", tail: 200 });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    const text = r.ok ? r.text : "";
    expect(text).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z app \| error: connection refused to db:5432$/m);
    expect(text).toMatch(/Z worker \| worker up$/m);
    expect(text).toContain("connecting with [redacted]");
    expect(text).toContain(`value ${PLAIN} and [redacted]`);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(SPEC_SECRET);

    // Bounded: the responder answers at most max_bytes, cut at a line start.
    const small = await ctx.sources.logTail("n1", "crash", 600);
    expect(small).toMatchObject({ ok: true, truncated: true });
    expect(small.ok && small.bytes).toBeLessThanOrEqual(600);
    expect(small.ok && small.text).toMatch(/^\d{4}-/);

    // A time range from the engine's timestamps: nothing was logged in the future, everything since an hour ago.
    const later = await ctx.sources.logTail("n1", "crash", 65_536, { since: new Date(Date.now() + 3_600_000).toISOString() });
    expect(later).toMatchObject({ ok: true, text: "" });
    const before = await ctx.sources.logTail("n1", "crash", 65_536, { until: new Date(Date.now() - 3_600_000).toISOString() });
    expect(before).toMatchObject({ ok: true, text: "" });
    const range = await call("service_logs", { node: "n1", service: "crash", grep: "refused", since_minutes: 60, until_minutes: 0 });
    expect(range.ok && range.text).toMatch(/^1 line\(s\) containing "refused"/);

    // A process service's log has no timestamps: a range is refused, naming why.
    const proc = await call("service_logs", { node: "n1", service: "proc", since_minutes: 5 });
    expect(proc).toMatchObject({ ok: false, text: expect.stringMatching(/invalid: since\/until: .*no timestamps/) });
  }, 60_000);

  it("container_inspect answers exit code, health with its last results, OOMKilled, ports and mounts: env names, never values", async () => {
    const crash = await call("container_inspect", { node: "n1", service: "crash" });
    expect(crash.ok, JSON.stringify(crash)).toBe(true);
    const crashed = JSON.parse(crash.ok ? crash.text : "{}") as { project: string; containers: Record<string, unknown>[] };
    expect(crashed.project).toBe("crash");
    const app = crashed.containers.find((c) => c["compose_service"] === "app");
    expect(app).toMatchObject({ name: "crash-app-1", image: IMAGE, status: "exited", running: false, exit_code: 3, oom_killed: false, restart_count: 0 });
    expect(app?.["env_names"]).toEqual(expect.arrayContaining(["DB_PASSWORD", "PLAIN_SETTING", "PATH"]));
    expect(crashed.containers.find((c) => c["compose_service"] === "worker")).toMatchObject({ running: true, exit_code: null });

    const sick = await call("container_inspect", { node: "n1", service: "sick" });
    const sickText = sick.ok ? sick.text : "";
    const s = (JSON.parse(sickText) as { containers: Record<string, unknown>[] }).containers[0] as { health: { status: string; failing_streak: number; log: { exit_code: number; output: string }[] }; mounts: unknown[] };
    expect(s.health.status).toBe("unhealthy");
    expect(s.health.failing_streak).toBeGreaterThanOrEqual(1);
    expect(s.health.log.at(-1)).toMatchObject({ exit_code: 1, output: "checking db" });
    expect(s.mounts).toEqual([{ type: "bind", source: dir, destination: "/data", read_only: true }]);

    const oom = await call("container_inspect", { node: "n1", service: "oom" });
    const o = (JSON.parse(oom.ok ? oom.text : "{}") as { containers: Record<string, unknown>[] }).containers[0];
    expect(o).toMatchObject({ status: "exited", oom_killed: true, exit_code: 137 });

    // What reaches the model never holds an env value, secret-named or not.
    for (const t of [crash, sick, oom].map((x) => (x.ok ? x.text : x.text))) {
      expect(t).not.toContain(SECRET);
      expect(t).not.toContain(PLAIN);
    }
    // And neither does the node-agent's own answer on NATS.
    const raw = (await nc.request(containerInspectSubject("n1"), JSON.stringify({ service: "sick" }), { timeout: 20_000 })).string();
    expect(ContainerInspectReply.parse(JSON.parse(raw))).toMatchObject({ ok: true, total: 1 });
    expect(raw).not.toContain(SECRET);
    expect(raw).not.toContain(PLAIN);
  }, 60_000);

  it("container_inspect refuses what is not a compose service, without asking the node for a process service", async () => {
    expect(await call("container_inspect", { node: "n1", service: "proc" })).toMatchObject({ ok: false, text: expect.stringMatching(/proc on n1 is a process service, not a compose service/) });
    expect(await ctx.sources.containerInspect("n1", "proc")).toMatchObject({ ok: false, code: "not_compose" });
    expect(await ctx.sources.containerInspect("n1", "nope")).toMatchObject({ ok: false, code: "unknown_service" });
  }, 30_000);
});
