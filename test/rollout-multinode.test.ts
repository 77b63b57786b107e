/**
 * A rolling deploy across three nodes, end to end. Three node-agents run as separate processes (dist/main.js),
 * each with its own node name, deploy checkout, state dir and Docker engine (a fake engine on its own unix socket);
 * real nats-server and Postgres; observer, supervisor and executor in this process.
 *
 * 1. The stack is declared and never deployed: `missing` on every node, each proposing a deploy. Approved, deployed.
 * 2. The compose file changes in every checkout: `config_drift` on every node, proposing a deploy.
 * 3. One rollout action over n1, n2, n3 (max_parallel 1) where n2's engine reports the new container unhealthy:
 *    n1 is deployed, n2 fails its health gate and is rolled back, n3 is never touched, an alert is published,
 *    the action fails naming n2, and the audit log tells the story step by step.
 *
 * Needs `npx tsc -b` first (the agents run from services/node-agent/dist).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeployFailedAlert } from "@steward/contracts/deploy";
import { DEPLOY_FAILED_ALERT_SUBJECT } from "@steward/contracts/subjects";
import { readWorld } from "@steward/world/world-store";
import { readDrift } from "@steward/world/drift-store";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { actionsOf as actionsIn, only } from "@steward/actions/testing";
import { openWorldBucket, type KV } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createSupervisor, loadSupervisorConfig } from "@steward/supervisor";
import { metricValue, startFakeDocker, stopProcess, waitFor, waitForTicks, type FakeDocker } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { spawnService, type ServiceProcess } from "./support/service-process.js";

const NODES = ["n1", "n2", "n3"] as const;

const compose = (tag: string) => `services:
  db:
    image: shop/db:16
  app:
    image: shop/app:${tag}
    depends_on: [db]
    environment:
      MODE: production
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://localhost/health"]
      interval: 1s
      retries: 3
`;

let stack: Stack;
let dir = "";
let kv: KV;
const supervisorCycles = (registry: Registry = stack.registries["supervisor"]!) => metricValue(registry, "steward_supervisor_cycles_total");
const fakes: Record<string, FakeDocker> = {};
const agents: ServiceProcess[] = [];
/** Stopped before the stack: the agents and the second supervisor. */
const stops: (() => Promise<unknown>)[] = [];
const alerts: DeployFailedAlert[] = [];

async function world(): Promise<Snapshot | undefined> {
  const r = await readWorld(kv);
  return r.ok ? r.value : undefined;
}

async function report(): Promise<DriftReport | undefined> {
  const r = await readDrift(kv);
  return r.ok ? r.value : undefined;
}

const stackOf = (s: Snapshot | undefined, node: string) => s?.world.nodes[node]?.services["shop"];

async function actionsOf(kind: "deploy", state: "pending" | "succeeded") {
  return (await actionsIn(stack.sql, { kind, state })).sort((a, b) => a.node.localeCompare(b.node));
}

/** The actions table in a failure message. */
async function actionRows(): Promise<string> {
  return JSON.stringify(only(await actionsIn(stack.sql), "node", "service", "kind", "state", "params", "reason", "result"));
}

function agentLogs(): string {
  return agents.map((a) => `--- ${a.name}\n${a.output.slice(-4000)}`).join("\n");
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-rollout-"));
  for (const n of NODES) {
    await mkdir(join(dir, "checkouts", n, "stacks", "shop"), { recursive: true });
    await writeFile(join(dir, "checkouts", n, "stacks", "shop", "compose.yaml"), compose("v1"));
    // n2's engine: the new version never becomes healthy.
    fakes[n] = await startFakeDocker({ healthDelayMs: 100, healthPolicy: n === "n2" ? (c) => (c.Config.Image === "shop/app:v2" ? "unhealthy" : "healthy") : () => "healthy" });
  }
  const fleetPath = join(dir, "fleet.yaml");
  stack = await startStack({
    dir,
    dbPrefix: "steward_rollout",
    sqlMax: 4,
    fleet: `version: 1
deploy: { max_parallel: 1, health_timeout: 5s }
nodes:
${NODES.map((n) => `  ${n}:\n    repo_path: checkouts/${n}\n    services:\n      shop:\n        kind: compose\n        files: [stacks/shop/compose.yaml]\n`).join("")}`,
    beforeServices: async ({ nc }) => {
      kv = await openWorldBucket(nc);
      nc.subscribe(DEPLOY_FAILED_ALERT_SUBJECT, { callback: (_e, msg) => void alerts.push(DeployFailedAlert.parse(msg.json())) });
    },
    observer: true,
    supervisor: { RECHECK_MS: "300" },
    executor: { EXECUTOR_ID: "exec-1", POLL_MS: "100", VERIFY_TIMEOUT_MS: "5000", VERIFY_POLL_MS: "50", FLEET_SPEC: fleetPath },
    executorSqlMax: 4,
    nodes: [...NODES],
  });

  for (const n of NODES) {
    const agent = spawnService("node-agent", {
      NODE_NAME: n,
      NATS_URL: stack.nats.url,
      ...stack.natsEnv(`node.${n}`),
      FLEET_SPEC: stack.fleetPath,
      ...stack.agentKeys,
      DOCKER_HOST: fakes[n]!.host,
      DOCKER_PROBE_MS: "200",
      // A fake engine: the Engine API applier (the real Compose is tested against a live dockerd).
      COMPOSE_APPLY: "engine-api",
      HEARTBEAT_MS: "500",
      SPEC_POLL_MS: "200",
      STATE_DIR: join(dir, "state", n),
      LOG_DIR: join(dir, "logs", n),
      METRICS_PORT: "0",
    });
    agent.name = n;
    agents.push(agent);
    stops.push(() => stopProcess(agent.child));
  }
}, 60_000);

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await stack?.stop();
  for (const f of Object.values(fakes)) await f.stop().catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("rolling deploy across three node-agent processes", () => {
  let h1 = "";

  it("a stack declared and never deployed is missing everywhere and proposes one rollout; approved, each node deploys it", async () => {
    const missing = await waitFor("missing drift proposing deploy on every node", async () => {
      const r = await report();
      const d = r?.drifts.filter((x) => x.kind === "missing" && x.service === "shop" && x.proposes === "deploy") ?? [];
      return d.length === 3 ? d : undefined;
    }, 20_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}\n${agentLogs()}`);
    });
    expect(missing.map((d) => d.node).sort()).toEqual(["n1", "n2", "n3"]);
    // One rollout over the three nodes, not three single-node deploys.
    const pending = await waitFor("one pending rollout", async () => {
      const p = await actionsOf("deploy", "pending");
      return p.length === 1 ? p : undefined;
    }, 10_000, 100).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await actionRows()}`);
    });
    expect(pending[0]?.params?.["nodes"]).toEqual(["n1", "n2", "n3"]);
    await waitForTicks("supervisor cycles", () => supervisorCycles()); // more supervisor cycles: still one
    expect(await actionsOf("deploy", "pending")).toHaveLength(1);
    for (const a of pending) expect((await stack.executor!.store.approve(a.id, "alice", "cli")).ok).toBe(true);
    await waitFor("the rollout succeeded", async () => (await actionsOf("deploy", "succeeded")).length === 1, 30_000, 100).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await actionRows()}\n${agentLogs()}`);
    });
    const s = await world();
    for (const n of NODES) {
      expect(stackOf(s, n)).toMatchObject({ state: "running", health: "healthy" });
      expect(stackOf(s, n)?.config_hash).toBe(stackOf(s, n)?.desired_config_hash);
    }
    h1 = stackOf(s, "n1")?.config_hash ?? "";
    expect(h1).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Every node deployed the same content, so the same hash; db before app (depends_on).
    expect(new Set(NODES.map((n) => stackOf(s, n)?.config_hash))).toEqual(new Set([h1]));
    const creates = fakes["n1"]?.requests.filter((r) => r.path === "/containers/create").map((r) => r.query["name"]);
    expect(creates).toEqual(["shop-db-1", "shop-app-1"]);
  });

  let rollout = "";
  it("a changed compose file is config drift on every node, proposing one rollout", async () => {
    for (const n of NODES) await writeFile(join(dir, "checkouts", n, "stacks", "shop", "compose.yaml"), compose("v2"));
    const drifts = await waitFor("config drift on every node", async () => {
      const r = await report();
      const d = r?.drifts.filter((x) => x.kind === "config_drift" && x.proposes === "deploy") ?? [];
      return d.length === 3 ? d : undefined;
    }, 20_000, 100);
    expect(drifts[0]?.message).toMatch(/^stack shop on n\d runs config [0-9a-f]{12}; the spec asks for [0-9a-f]{12}$/);
    const [pending] = await waitFor("one pending rollout for the drift", async () => {
      const p = await actionsOf("deploy", "pending");
      return p.length === 1 ? p : undefined;
    }, 10_000, 100);
    expect(pending?.params?.["nodes"]).toEqual(["n1", "n2", "n3"]);
    rollout = pending!.id;
    // The supervisor would re-propose after the failed rollout below; the story ends with the operator.
    await stack.supervisor!.stop();
  });

  it("n2 fails its health gate: the rollout stops, n2 rolls back, n3 is untouched, an alert is raised, the audit tells the story", async () => {
    const n3Before = fakes["n3"]?.containers().map((c) => `${c.Id}:${c.Config.Labels["steward.config-hash"]}`).sort();
    const n3Requests = fakes["n3"]?.requests.length ?? 0;
    const id = rollout;
    expect(id).not.toBe("");
    expect((await stack.executor!.store.approve(id, "alice", "cli")).ok).toBe(true);

    const done = await waitFor("rollout to end", async () => {
      const a = await stack.executor!.store.get(id);
      return a && ["succeeded", "failed", "failed_unknown"].includes(a.action.state) ? a : undefined;
    }, 40_000, 100);
    expect(done.action.state).toBe("failed");
    expect(done.action.result).toMatch(/^deploy of shop stopped at node n2: n2 failed its health gate: container shop-app-1 is unhealthy/);
    expect(done.action.result).toMatch(/rolled back: rolled back to sha256:/);
    expect(done.action.result).toMatch(/deployed: n1; not touched: n3$/);

    // The audit log, one row per step, in order.
    // Nodes may drift in different supervisor cycles: the pending rollout is then extended (pending>pending rows).
    const story = done.audit.map((a) => `${a.from_state ?? "-"}>${a.to_state} ${a.detail ?? ""}`).filter((l) => !l.startsWith("pending>pending rollout extended"));
    const expected = [
      /^->pending /,
      /^pending>approved/,
      /^approved>running claimed by exec-1/,
      /^running>running rollout of shop to n1, n2, n3: at most 1 at a time, health gate 5000 ms per node$/,
      /^running>running node n1: deploying shop \(running config before: [0-9a-f]{12}\)$/,
      /^running>running node n1: healthy \(deployed sha256:.*world: n1\/shop is running and healthy with config [0-9a-f]{12}\)$/,
      /^running>running node n2: deploying shop/,
      /^running>running node n2: health gate failed: container shop-app-1 is unhealthy/,
      /^running>running node n2: rolling back to config [0-9a-f]{12}$/,
      /^running>running node n2: rolled back \(rolled back to sha256:/,
      /^running>running rollout stopped at n2; not touched: n3$/,
      /^running>failed deploy of shop stopped at node n2/,
    ];
    expect(story).toHaveLength(expected.length);
    expected.forEach((re, i) => expect(story[i]).toMatch(re));

    // The alert.
    await waitFor("the deploy_failed alert", () => alerts.length > 0, 5000, 50);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ action_id: id, node: "n2", service: "shop", rolled_back: true, untouched: ["n3"] });

    // n1 runs v2; n2 runs v1 again (re-created), healthy; n3 was never touched: no engine call other than reads.
    const h2 = (await world())?.world.nodes["n1"]?.services["shop"]?.desired_config_hash;
    expect(h2).toBeDefined();
    expect(h2).not.toBe(h1);
    const n2App = fakes["n2"]?.find("shop-app-1");
    expect(n2App?.Config.Image).toBe("shop/app:v1");
    expect(n2App?.Config.Labels["steward.config-hash"]).toBe(h1);
    expect(n2App?.State.Running).toBe(true);
    const n3Writes = fakes["n3"]?.requests.slice(n3Requests).filter((r) => r.method !== "GET") ?? [];
    expect(n3Writes).toEqual([]);
    expect(fakes["n3"]?.containers().map((c) => `${c.Id}:${c.Config.Labels["steward.config-hash"]}`).sort()).toEqual(n3Before);

    const settled = await waitFor("the world to show n1 on v2, n2 back on v1 and healthy, n3 on v1", async () => {
      const s = await world();
      const ok = stackOf(s, "n1")?.config_hash === h2 && stackOf(s, "n2")?.config_hash === h1 && stackOf(s, "n2")?.health === "healthy" && stackOf(s, "n3")?.config_hash === h1;
      return ok ? s : undefined;
    }, 10_000, 100);
    expect(stackOf(settled, "n2")?.state).toBe("running");
  });
  it("after the failed rollout the supervisor does not propose the same revision again: an alert that names the action", async () => {
    const againRegistry = createRegistry("supervisor", false);
    // A second supervisor, as after a restart: it reads the failed rollout from the table, not from memory.
    const again = createSupervisor({ config: loadSupervisorConfig({ NATS_URL: stack.nats.url, DATABASE_URL: stack.db.url, FLEET_SPEC: stack.fleetPath, RECHECK_MS: "300", METRICS_PORT: "0", SUPERVISOR_ID: "sup-again" }), nc: await stack.connectAs("supervisor"), sql: stack.sql, logger: silentLogger(), registry: againRegistry });
    await again.start();
    stops.push(() => again.stop());
    const r = await again.runCycle();
    expect(r.status).toBe("ok");
    const held = r.status === "ok" ? r.drifts.filter((d) => d.kind === "config_drift" && d.service === "shop") : [];
    expect(held.map((d) => d.node).sort()).toEqual(["n2", "n3"]);
    for (const d of held) {
      expect(d).toMatchObject({ severity: "alert", proposes: null });
      expect(d.message).toMatch(/not proposed again: the rollout of this revision failed \(action [0-9a-f]{8}/);
    }
    await waitForTicks("supervisor cycles", () => supervisorCycles(againRegistry)); // a few more cycles
    expect(await actionsOf("deploy", "pending")).toEqual([]);
  });
});
