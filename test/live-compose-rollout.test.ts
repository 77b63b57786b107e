/**
 * Deploys through the whole loop on a real Docker Engine (Debian's dockerd 20.10 the test starts, vfs, no bridge):
 * node-agent processes with the real Compose (docker-compose v1 here), real nats-server and PostgreSQL, and in this
 * process observer, supervisor, executor and alerter (pushing to a local ntfy-compatible server).
 *
 * One stack, `shop` on n1: two services on a user-defined network, a named volume, healthchecks, the image tag
 * interpolated from the env file.
 * 1. Declared, never deployed → deploy proposed, approved → both services healthy and reaching each other by name.
 * 2. The tag changed in git → config drift → deploy approved → rolled out (the volume's data survives).
 * 3. A revision whose healthcheck never passes → the rollout fails its gate → rolled back to the revision that ran,
 *    an alert pushed.
 *
 * Three more nodes r1–r3 share the engine, one Compose project per node (`edge-r1`, …): a rollout over all three with
 * `max_parallel: 1` where r2's revision never turns healthy stops at r2 (rolled back), r1 keeps the new revision and
 * r3 is never touched.
 *
 * Needs root, dockerd and `npx tsc -b` first (the agents run from services/node-agent/dist).
 */
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readWorld } from "@steward/world/world-store";
import { readDrift } from "@steward/world/drift-store";
import { openWorldBucket, type KV } from "@steward/platform/bus";
import { actionsOf, auditOf, only } from "@steward/actions/testing";
import type { Action } from "@steward/contracts/action";
import { dockerdUnavailable, importBusyboxImage, startDockerd, startFakeNtfy, stopProcess, unlessExited, waitFor, type Dockerd, type FakeNtfy } from "@steward/testkit";
import { spawnService, type ServiceProcess } from "./support/service-process.js";
import { startStack, type Stack } from "./support/stack.js";

const run = promisify(execFile);
const skip = dockerdUnavailable();
const EDGE_NODES = ["r1", "r2", "r3"] as const;

/**
 * api serves the named volume's page (written once, at its first start); web fetches it from `api` by name on the
 * user network and serves its own page. web's health needs api reachable; a broken revision's never passes.
 */
const shopCompose = (webHealth: string) => `services:
  api:
    image: steward-test/busybox:\${TAG}
    command: ["sh", "-c", "[ -f /data/born ] || cat /proc/sys/kernel/random/uuid > /data/born; cp /data/born /data/index.html; exec httpd -f -p 8080 -h /data"]
    networks: [inner]
    volumes: [data:/data]
    stop_grace_period: 1s
    healthcheck: { test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval: 1s, timeout: 5s, retries: 3 }
  web:
    image: steward-test/busybox:\${TAG}
    command: ["sh", "-c", "mkdir -p /www && echo web > /www/index.html && httpd -p 8081 -h /www && while true; do wget -q -O /tmp/api http://api:8080/ && touch /tmp/ok; sleep 1; done"]
    networks: [inner]
    depends_on: { api: { condition: service_healthy } }
    stop_grace_period: 1s
    healthcheck: { test: ${webHealth}, interval: 1s, timeout: 5s, retries: 3 }
networks:
  inner: {}
volumes:
  data: {}
`;
const UUID_LINE = /^[0-9a-f-]{36}\n$/;
const WEB_OK = `["CMD", "test", "-f", "/tmp/ok"]`;
const WEB_NEVER = `["CMD", "test", "-f", "/tmp/never"]`;

const edgeCompose = (version: string, health: string) => `services:
  app:
    image: steward-test/busybox:1
    network_mode: host
    command: ["sleep", "100000"]
    environment: { EDGE_VERSION: "${version}" }
    stop_grace_period: 1s
    healthcheck: { test: ${health}, interval: 1s, retries: 2 }
`;

const fleetYaml = `version: 1
deploy: { max_parallel: 1, health_timeout: 90s }
nodes:
  n1:
    repo_path: checkouts/n1
    services:
      shop:
        kind: compose
        files: [shop/compose.yaml]
        env_file: shop/.env
${EDGE_NODES.map((n) => `  ${n}:\n    repo_path: checkouts/${n}\n    services:\n      edge:\n        kind: compose\n        project: edge-${n}\n        files: [edge/compose.yaml]\n`).join("")}`;

describe.skipIf(skip)("deploys through the loop with the real Compose on a live dockerd", () => {
  let dockerd: Dockerd;
  let ntfy: FakeNtfy;
  let stack: Stack;
  let kv: KV;
  const agents: ServiceProcess[] = [];
  const docker = (...args: string[]) => run("docker", args, { env: { ...process.env, DOCKER_HOST: dockerd.host }, timeout: 60_000 });
  const git = (node: string, ...args: string[]) => run("git", ["-C", join(stack.dir, "checkouts", node), ...args], { env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } });
  const commit = async (node: string, files: Record<string, string>, message: string) => {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(join(stack.dir, "checkouts", node, path, ".."), { recursive: true });
      await writeFile(join(stack.dir, "checkouts", node, path), text);
    }
    await git(node, "add", "-A");
    await git(node, "commit", "-q", "-m", message);
  };

  const world = async () => {
    const r = await readWorld(kv);
    return r.ok ? r.value : undefined;
  };
  const report = async () => {
    const r = await readDrift(kv);
    return r.ok ? r.value : undefined;
  };
  const svc = async (node: string, service: string) => (await world())?.world.nodes[node]?.services[service];
  type Params = { nodes?: string[]; target_config_hash?: string };
  const paramsOf = (a: Action): Params => (a.params ?? {}) as Params;
  const actions = async (service: string, kind: "deploy", state: "pending") => (await actionsOf(stack.sql, { kind, state })).filter((a) => a.service === service);
  const logs = () => agents.map((a) => `--- ${a.name}\n${a.output.slice(-3000)}`).join("\n");
  const explain = async (err: Error) => new Error(`${err.message}\nactions: ${JSON.stringify(only(await actionsOf(stack.sql), "node", "service", "kind", "state", "result"))}\n${logs()}`);
  const approve = async (id: string) => expect((await stack.executor?.store.approve(id, "alice", "cli"))?.ok).toBe(true);
  /** The one pending deploy of `service`, once it names `nodes` (a rollout proposed while nodes still report drift grows). */
  const pendingDeploy = (service: string, nodes?: readonly string[]) =>
    waitFor(`a pending deploy of ${service}${nodes ? ` over ${nodes.join(", ")}` : ""}`, async () => {
      const [p] = await actions(service, "deploy", "pending");
      if (!p) return undefined;
      return !nodes || JSON.stringify(paramsOf(p).nodes ?? [p.node]) === JSON.stringify(nodes) ? p : undefined;
    }, 120_000, 100, unlessExited(...agents)).catch(async (err: Error) => {
      throw await explain(err);
    });
  const finished = (id: string) =>
    waitFor(`action ${id} finished`, async () => {
      const r = (await actionsOf(stack.sql)).find((a) => a.id === id);
      return r && ["succeeded", "failed", "failed_unknown"].includes(r.state) ? r : undefined;
    }, 300_000, 200, unlessExited(...agents)).catch(async (err: Error) => {
      throw await explain(err);
    });
  const containers = async (project: string) => (await docker("ps", "-a", "--filter", `label=com.docker.compose.project=${project}`, "--format", "{{.ID}} {{.Label \"com.docker.compose.service\"}} {{.Image}} {{.Status}}")).stdout.trim().split("\n").filter(Boolean).map((l) => {
    const [id, service, image, ...status] = l.split(" ");
    return { id: id as string, service: service as string, image: image as string, status: status.join(" ") };
  });
  const exec = async (project: string, service: string, ...cmd: string[]) => {
    const c = (await containers(project)).find((x) => x.service === service);
    return (await docker("exec", c?.id ?? "", ...cmd)).stdout;
  };

  beforeAll(async () => {
    [dockerd, ntfy] = await Promise.all([startDockerd(), startFakeNtfy()]);
    await importBusyboxImage(dockerd.host, "steward-test/busybox:1");
    await run("docker", ["tag", "steward-test/busybox:1", "steward-test/busybox:2"], { env: { ...process.env, DOCKER_HOST: dockerd.host } });
    stack = await startStack({
      fleet: fleetYaml,
      dbPrefix: "steward_live_rollout",
      observer: true,
      supervisor: { RECHECK_MS: "300" },
      executor: { POLL_MS: "100", VERIFY_TIMEOUT_MS: "60000", VERIFY_POLL_MS: "50", COMMAND_TIMEOUT_MS: "120000" },
      alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-live", ALERT_EVAL_MS: "300", RETRY_BASE_MS: "100" },
      nodes: ["n1", ...EDGE_NODES],
    });
    kv = await openWorldBucket(stack.nc);
    for (const node of ["n1", ...EDGE_NODES]) {
      await mkdir(join(stack.dir, "checkouts", node), { recursive: true });
      await git(node, "init", "-q");
    }
    await commit("n1", { "shop/compose.yaml": shopCompose(WEB_OK), "shop/.env": "TAG=1\n" }, "shop");
    for (const n of EDGE_NODES) await commit(n, { "edge/compose.yaml": edgeCompose("1", `["CMD", "true"]`) }, "edge");
    for (const node of ["n1", ...EDGE_NODES]) {
      agents.push(
        spawnService("node-agent", {
          NODE_NAME: node,
          NATS_URL: stack.nats.url,
          ...stack.natsEnv(`node.${node}`),
          FLEET_SPEC: stack.fleetPath,
          ...stack.agentKeys,
          DOCKER_HOST: dockerd.host,
          DOCKER_PROBE_MS: "2000",
          HEARTBEAT_MS: "1000",
          SPEC_POLL_MS: "500",
          STATE_DIR: join(stack.dir, `state-${node}`),
          LOG_DIR: join(stack.dir, `logs-${node}`),
          METRICS_PORT: "0",
        }),
      );
    }
  }, 240_000);

  afterAll(async () => {
    for (const a of agents) await stopProcess(a.child, 20_000).catch(() => undefined);
    await stack?.stop();
    await ntfy?.close();
    await dockerd?.stop();
  }, 180_000);

  it("missing → deploy approved → both services healthy on their network, reaching each other by name, the volume created", async () => {
    const deploy = await pendingDeploy("shop");
    await approve(deploy.id);
    const done = await finished(deploy.id);
    expect(done.state, done.result ?? "").toBe("succeeded");
    const s = await waitFor("shop healthy in the world", async () => {
      const x = await svc("n1", "shop");
      return x?.state === "running" && x.health === "healthy" && x.config_hash === x.desired_config_hash ? x : undefined;
    }, 60_000, 100);
    expect(s.config_hash).toMatch(/^compose:/);
    const cs = await containers("shop");
    expect(cs.map((c) => c.service).sort()).toEqual(["api", "web"]);
    expect(cs.every((c) => c.image === "steward-test/busybox:1" && /healthy/.test(c.status))).toBe(true);
    // By service name on the user-defined network, both ways.
    expect(await exec("shop", "web", "wget", "-q", "-O", "-", "http://api:8080/")).toMatch(UUID_LINE);
    expect(await exec("shop", "api", "wget", "-q", "-O", "-", "http://web:8081/")).toBe("web\n");
    const nets = (await docker("network", "ls", "--format", "{{.Name}}")).stdout;
    expect(nets).toMatch(/^shop_inner$/m);
    expect((await docker("volume", "ls", "--format", "{{.Name}}")).stdout).toMatch(/^shop_data$/m);
  }, 420_000);

  it("the tag changed in git → config drift → deploy approved → rolled out; the named volume's data survives", async () => {
    const born = await exec("shop", "web", "wget", "-q", "-O", "-", "http://api:8080/");
    const before = await svc("n1", "shop");
    await commit("n1", { "shop/.env": "TAG=2\n" }, "shop: tag 2");
    const drift = await waitFor("config drift in the drift report", async () => (await report())?.drifts.find((d) => d.node === "n1" && d.service === "shop" && d.kind === "config_drift"), 60_000, 100).catch(async (err: Error) => {
      throw await explain(err);
    });
    expect(drift.proposes).toBe("deploy");
    const deploy = await pendingDeploy("shop");
    expect(paramsOf(deploy).target_config_hash).toBe(drift.target);
    await approve(deploy.id);
    const done = await finished(deploy.id);
    expect(done.state, done.result ?? "").toBe("succeeded");
    const s = await waitFor("rolled out in the world", async () => {
      const x = await svc("n1", "shop");
      return x?.state === "running" && x.health === "healthy" && x.config_hash === drift.target ? x : undefined;
    }, 60_000, 100);
    expect(s.config_hash).not.toBe(before?.config_hash);
    const cs = await containers("shop");
    expect(cs.map((c) => c.image)).toEqual(["steward-test/busybox:2", "steward-test/busybox:2"]);
    expect(await exec("shop", "web", "wget", "-q", "-O", "-", "http://api:8080/")).toBe(born);
  }, 420_000);

  it("a revision whose healthcheck never passes → its rollout fails the gate → rolled back to the containers' revision that ran, alert pushed", async () => {
    const good = await svc("n1", "shop");
    await commit("n1", { "shop/compose.yaml": shopCompose(WEB_NEVER) }, "shop: broken health");
    const deploy = await pendingDeploy("shop");
    expect(paramsOf(deploy).target_config_hash).not.toBe(good?.config_hash);
    await approve(deploy.id);
    const done = await finished(deploy.id);
    expect(done.state).toBe("failed");
    expect(done.result).toMatch(/stopped at node n1/);
    expect(done.result).toMatch(/rolled back/);
    const s = await waitFor("the previous revision runs again, healthy", async () => {
      const x = await svc("n1", "shop");
      return x?.state === "running" && x.health === "healthy" && x.config_hash === good?.config_hash ? x : undefined;
    }, 60_000, 100).catch(async (err: Error) => {
      throw await explain(err);
    });
    expect(s.desired_config_hash).not.toBe(good?.config_hash);
    expect(await exec("shop", "web", "wget", "-q", "-O", "-", "http://api:8080/")).toMatch(UUID_LINE);
    const alert = await ntfy.waitFor((m) => m.title === "Action failed: deploy n1/shop", 60_000);
    expect(alert.message).toMatch(/rolled back/);
    // The failed revision is held: the drift stays, and no new deploy of it is proposed.
    const held = await waitFor("the drift report holds the failed revision", async () => (await report())?.drifts.find((d) => d.node === "n1" && d.service === "shop" && d.kind === "config_drift" && !d.proposes), 30_000, 100);
    expect(held.message).toMatch(/failed/);
    expect(await actions("shop", "deploy", "pending")).toEqual([]);
  }, 420_000);

  it("three nodes, max_parallel 1: a rollout that fails on r2 stops there (r2 rolled back, r1 deployed, r3 untouched)", async () => {
    // First: the declared, never deployed stack goes out to all three, one at a time.
    const first = await pendingDeploy("edge", EDGE_NODES);
    await approve(first.id);
    const ok = await finished(first.id);
    expect(ok.state, ok.result ?? "").toBe("succeeded");
    const hashes = async () => Object.fromEntries(await Promise.all(EDGE_NODES.map(async (n) => [n, (await svc(n, "edge"))?.config_hash] as const)));
    const v1 = await waitFor("all three healthy on v1", async () => {
      const xs = await Promise.all(EDGE_NODES.map((n) => svc(n, "edge")));
      return xs.every((x) => x?.state === "running" && x.health === "healthy" && x.config_hash === x.desired_config_hash) ? hashes() : undefined;
    }, 60_000, 100);
    const ids = async (n: string) => (await containers(`edge-${n}`)).map((c) => c.id);
    const r3Before = await ids("r3");

    // v2 everywhere; r2's healthcheck never passes there.
    for (const n of EDGE_NODES) await commit(n, { "edge/compose.yaml": edgeCompose("2", n === "r2" ? `["CMD", "false"]` : `["CMD", "true"]`) }, "edge v2");
    const rollout = await pendingDeploy("edge", EDGE_NODES);
    await approve(rollout.id);
    const done = await finished(rollout.id);
    expect(done.state).toBe("failed");
    expect(done.result).toMatch(/stopped at node r2/);
    expect(done.result).toMatch(/deployed: r1/);
    expect(done.result).toMatch(/not touched: r3/);

    const after = await waitFor("r1 on v2, r2 back on v1, r3 on v1", async () => {
      const [r1, r2, r3] = await Promise.all(EDGE_NODES.map((n) => svc(n, "edge")));
      const settled = r1?.config_hash === r1?.desired_config_hash && r2?.config_hash === v1["r2"] && r2?.health === "healthy" && r3?.health === "healthy";
      return settled ? { r1, r2, r3 } : undefined;
    }, 60_000, 100).catch(async (err: Error) => {
      throw await explain(err);
    });
    expect(after.r1?.config_hash).not.toBe(v1["r1"]);
    expect(after.r3?.config_hash).toBe(v1["r3"]);
    expect(after.r3?.desired_config_hash).not.toBe(v1["r3"]);
    // r3's containers were never touched.
    expect(await ids("r3")).toEqual(r3Before);
    const audit = (await auditOf(stack.sql, rollout.id)).map((a) => a.detail ?? "").join("\n");
    expect(audit).toMatch(/node r2: rolling back/);
    expect(audit).not.toMatch(/node r3: deploying/);
    // The action sits on the node whose drift was seen first; its nodes are the rollout's.
    const alert = await ntfy.waitFor((m) => m.title === `Action failed: deploy ${rollout.node}/edge`, 60_000);
    expect(alert.message).toMatch(/stopped at node r2/);
  }, 600_000);
});
