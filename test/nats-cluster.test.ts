/**
 * The control plane on a real 3-server JetStream cluster (three nats-server processes; streams and the world KV with
 * 3 replicas, as docker-compose.yml deploys them). The observer and the supervisor run as their real processes with
 * NATS_URL listing all three servers; the executor, alerter, planner and a real node-agent (node a1) run in this
 * process (startStack), connected to the same three servers; a simulated node-agent (n1) publishes acknowledged events.
 * The server leading the events stream is killed -9 while events flow: every event JetStream acknowledged is still in
 * the stream and folded by the observer, no service exits, and a kill reported after the failover still becomes a
 * pending restart. Then the server the in-process services are connected to is killed -9, and the whole loop still
 * runs on the two left: a killed process → a push to ntfy → Approve pressed → restarted and healthy → resolved, and
 * the planner answers a task from the world store, the events stream and the agent's log tail.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENTS_STREAM, WORLD_BUCKET, eventSubject } from "@steward/contracts/subjects";
import type { NodeEventInput, ServiceObservation } from "@steward/contracts/events";
import { connectNats, jetstream, jetstreamManager, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import type { Sql } from "@steward/platform/db";
import { actionsOf } from "@steward/actions/testing";
import { TaskDetail } from "@steward/contracts/task";
import { runCli } from "@steward/cli";
import { freePort, startFakeNtfy, startFakeOllama, startNatsCluster, stopProcess, waitFor, waitForTicks, type FakeNtfy, type FakeOllama, type NatsCluster } from "@steward/testkit";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";
import { startStack, type Stack } from "./support/stack.js";

const NODE = "n1";
const SERVICES = ["web", "worker"];

let cluster: NatsCluster;
let stack: Stack;
let ntfy: FakeNtfy;
let ollama: FakeOllama;
let sql: Sql;
let nc: NatsConnection;
let dir = "";
const procs: ServiceProcess[] = [];
let observerMetrics = "";
const started = new Date().toISOString();
const states = new Map<string, ServiceObservation>();
let beating = true;
let beats: Promise<void> | undefined;

const observation = (service: string): ServiceObservation => states.get(service) ?? { service, state: "running", health: "none", pid: 100 + SERVICES.indexOf(service), starts: 1, declared: true };

/** Publishes and waits for JetStream's ack; true only when acknowledged. */
async function publish(e: NodeEventInput): Promise<boolean> {
  try {
    await jetstream(nc).publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id, timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const heartbeat = (): NodeEventInput => ({ type: "heartbeat", id: randomUUID(), node: NODE, ts: new Date().toISOString(), interval_ms: 500, started_at: started, services: SERVICES.map(observation), dropped_events: 0 });

/** The sum of an observer counter's samples whose labels contain `labels`. */
async function counter(name: string, labels = ""): Promise<number> {
  const text = await (await fetch(observerMetrics, { signal: AbortSignal.timeout(10_000) })).text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(labels)) n += Number(m[2]);
  return n;
}

function expectAllAlive(): void {
  for (const p of procs) {
    expect({ name: p.name, exit: p.child.exitCode, signal: p.child.signalCode }).toEqual({ name: p.name, exit: null, signal: null });
    expect(p.output, `${p.name} logged a fatal error`).not.toMatch(/"level":60/);
  }
}

function launch(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const p = spawnService(name, env);
  procs.push(p);
  return p;
}

/** The stream's replica set as the cluster reports it: leader and the names of current followers. */
async function replicaSet(stream: string): Promise<{ leader: string; replicas: number; current: number }> {
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  const peers = info.cluster?.replicas ?? [];
  return { leader: info.cluster?.leader ?? "", replicas: info.config.num_replicas, current: peers.filter((p) => p.current && !p.offline).length };
}

beforeAll(async () => {
  [cluster, dir, ntfy, ollama] = await Promise.all([startNatsCluster(3), mkdtemp(join(tmpdir(), "steward-cluster-")), startFakeNtfy(), startFakeOllama()]);
  nc = await connectNats(cluster.url, "cluster-test");
  // A reader (supervisor, executor, alerter, planner) that starts first creates the world bucket with one replica;
  // the observer must bring it to STREAM_REPLICAS.
  await openWorldBucket(nc);
  const common = { NATS_URL: cluster.url, STREAM_REPLICAS: "3", METRICS_PORT: "0" };
  const observer = launch("observer", { ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", STALE_CHECK_MS: "500" });
  observerMetrics = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], 60_000, 20).then((p) => `http://127.0.0.1:${p}/metrics`);
  // The rest start once the observer has brought the world KV to 3 replicas: a JetStream request made while the
  // replica set grows can time out on a busy machine, and the supervisor exits when its first one does (a service
  // manager restarts it in a deployment; here it would be gone).
  for (const stream of [EVENTS_STREAM, `KV_${WORLD_BUCKET}`]) await waitFor(`${stream} with 3 current replicas`, async () => {
    const s = await replicaSet(stream);
    return s.leader && s.replicas === 3 && s.current === 2;
  }, 120_000, 200);
  // a1/shop: a real process the in-process node-agent supervises, with an HTTP health check that allows ~3 s to come
  // up (a node process can take longer than one 300 ms interval to listen on a busy machine).
  const shopPort = await freePort();
  const a1 = `  a1:\n    services:\n      shop:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${shopPort}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${shopPort}/\n            interval: 300ms\n            retries: 10\n`;
  stack = await startStack({
    natsUrl: cluster.url,
    dbPrefix: "steward_cluster",
    fleet: `version: 1\nnodes:\n  ${NODE}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}${a1}`,
    executor: { POLL_MS: "200", VERIFY_TIMEOUT_MS: "60000" },
    agents: { a1: {} },
    planner: { OLLAMA_URL: ollama.url, WORKERS: "1", POLL_MS: "100" },
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-cluster", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100", ALERT_GROUP_WAIT_MS: "500", ALERT_GROUP_INTERVAL_MS: "1000" },
  });
  sql = stack.sql;
  // The supervisor exits when a JetStream request at its start times out (seen on this busy machine with the cluster
  // just formed: `"err":"timeout","msg":"supervisor failed to start"`). A deployment's service manager restarts it
  // (docker-compose.yml: restart: unless-stopped); so does this test, at start only, and says so. Once it runs, any
  // exit fails the test (expectAllAlive).
  for (let attempt = 1; ; attempt++) {
    const sup = launch("supervisor", { ...common, DATABASE_URL: stack.db.url, FLEET_SPEC: stack.fleetPath, RECHECK_MS: "500" });
    const up = await waitFor("the supervisor running, or its exit", () => (/"msg":"supervisor running"/.test(sup.output) ? "up" : sup.child.exitCode !== null ? "exited" : undefined), 120_000, 50);
    if (up === "up") break;
    procs.splice(procs.indexOf(sup), 1);
    console.warn(`supervisor start ${attempt} failed, starting it again (as a service manager would): ${sup.output.slice(-1000)}`);
    if (attempt === 3) throw new Error(`the supervisor failed to start 3 times: ${sup.output.slice(-2000)}`);
  }
  beats = (async () => {
    while (beating) {
      await publish(heartbeat());
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
}, 180_000);

afterAll(async () => {
  beating = false;
  await beats;
  for (const p of procs) if (p.child.exitCode !== null || p.child.signalCode !== null) console.error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}); its last output:\n${p.output.slice(-4000)}`);
  await Promise.allSettled(procs.map((p) => stopProcess(p.child, 5000)));
  await stack?.stop().catch(() => undefined);
  await nc?.close().catch(() => undefined);
  await cluster?.stop();
  await Promise.allSettled([ntfy?.close(), ollama?.close()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("3-server JetStream cluster", () => {
  it("the events stream and the world KV have 3 replicas, all current (the KV made with one by an early reader)", async () => {
    for (const stream of [EVENTS_STREAM, `KV_${WORLD_BUCKET}`]) {
      const set = await waitFor(`${stream} with 3 current replicas`, async () => {
        const s = await replicaSet(stream);
        return s.leader && s.current === 2 ? s : undefined;
      }, 60_000, 200);
      expect(set.replicas).toBe(3);
    }
  }, 150_000);

  it("kill -9 of the events stream's leader while events flow: no acked event lost, all folded, no service exits, a kill still becomes a pending action", async () => {
    await waitForTicks("observer folding heartbeats", () => counter("steward_observer_events_folded_total"), 2, 60_000);
    const acked: string[] = [];
    let failed = 0;
    let flowing = true;
    let killedAt = 0;
    let resumedAt = 0;
    // Back to back, each waiting for its ack: events are in flight at the moment of the kill.
    const flow = (async () => {
      while (flowing) {
        const e: NodeEventInput = { type: "service", id: randomUUID(), node: NODE, ts: new Date().toISOString(), ...observation("worker") };
        if (await publish(e)) {
          acked.push(e.id);
          if (killedAt && !resumedAt && Date.now() > killedAt) resumedAt = Date.now();
        } else {
          failed++;
          // "no responders" comes back at once while no leader is elected: retry soon, without spinning.
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    })();
    await waitFor("events acked before the kill", () => acked.length >= 100, 60_000, 20);
    const { leader } = await replicaSet(EVENTS_STREAM);
    const victim = cluster.byName(leader);
    expect(victim, `leader ${leader} is one of ours`).toBeDefined();
    const ackedAtKill = acked.length;
    await victim!.kill();
    // From the moment the process is gone (an ack already on the wire before that does not count).
    killedAt = Date.now() + 1;
    // A new leader is elected among the two left, and acks resume on it.
    const after = await waitFor("a new events leader", async () => {
      const s = await replicaSet(EVENTS_STREAM);
      return s.leader && s.leader !== leader ? s.leader : undefined;
    }, 60_000, 200);
    expect(after).not.toBe(leader);
    const electedMs = Date.now() - killedAt;
    await waitFor("acks resumed after the failover", () => acked.length >= ackedAtKill + 200, 90_000, 50);
    flowing = false;
    await flow;

    // Every acknowledged id is in the stream (read back by Nats-Msg-Id).
    const inStream = new Set<string>();
    // Read back message by message from the new leader (no consumer: an ephemeral one may be placed on the dead peer).
    const jsm = await jetstreamManager(nc);
    const { first_seq: first, last_seq: last } = (await jsm.streams.info(EVENTS_STREAM)).state;
    for (let seq = first; seq <= last; seq += 50) {
      const batch = Array.from({ length: Math.min(50, last - seq + 1) }, (_, i) => jsm.streams.getMessage(EVENTS_STREAM, { seq: seq + i }));
      for (const m of await Promise.all(batch)) {
        const id = m?.header.get("Nats-Msg-Id");
        if (m && id && m.subject === eventSubject(NODE, "service")) inStream.add(id);
      }
    }
    const lost = acked.filter((id) => !inStream.has(id));
    expect({ acked: acked.length, lost: lost.length }).toEqual({ acked: acked.length, lost: 0 });
    console.info(`cluster failover: ${acked.length} events acked (${ackedAtKill} before the kill of ${leader}), ${failed} publishes not acked during it, 0 lost; new leader ${after} seen ${electedMs} ms after the kill, first ack after it ${resumedAt - killedAt} ms`);

    // The observer folded them all: its count of folded service events reaches every acked one (the only service events).
    await waitFor("the observer folded every acked event", async () => (await counter("steward_observer_events_folded_total", 'type="service"')) >= acked.length, 90_000, 200).catch(async (err) => {
      throw new Error(`${String(err)}; folded ${await counter("steward_observer_events_folded_total", 'type="service"')} of ${acked.length}; observer said:\n${procs[0]!.output.slice(-3000)}`);
    });

    // A kill after the failover still becomes a pending restart.
    const dead: ServiceObservation = { service: "web", state: "exited", health: "none", exit_code: 137, signal: "SIGKILL", starts: 1, declared: true };
    states.set("web", dead);
    await waitFor("the kill event acked", () => publish({ type: "service", id: randomUUID(), node: NODE, ts: new Date().toISOString(), ...dead }), 60_000, 200);
    // Node n1's (a1's services are the real agent's, healthy throughout).
    const pending = await waitFor("a pending restart of n1/web", async () => {
      const open = (await actionsOf(sql, { state: "pending" })).filter((a) => a.node === NODE);
      return open.length > 0 ? open : undefined;
    }, 90_000, 200).catch((err) => {
      throw new Error(`${String(err)}; supervisor said:\n${procs.find((p) => p.name === "supervisor")?.output.slice(-4000)}`);
    });
    expect(pending.map((a) => `${a.kind} ${a.node}/${a.service}`)).toEqual(["restart n1/web"]);
    expectAllAlive();
  }, 300_000);

  it("kill -9 of the server the executor, alerter, planner and agent are connected to: kill → push → approve → healthy, and a planner task, on the two left", async () => {
    // The events leader killed above comes back first, so this kill leaves two of three again (a quorum).
    for (const s of cluster.servers) await s.start();
    await waitFor("the events stream with 3 current replicas", async () => {
      const s = await replicaSet(EVENTS_STREAM);
      return s.leader && s.current === 2;
    }, 90_000, 200);
    const agent = stack.agents["a1"]!;
    const healthyShop = () => agent.status().find((x) => x.service === "shop" && x.state === "running" && x.health === "healthy");
    const pid = await waitFor("a1/shop healthy", () => healthyShop()?.pid, 60_000, 50);

    const connectedTo = stack.nc.info?.server_name ?? "";
    const victim = cluster.byName(connectedTo);
    expect(victim, `the services' connection is to one of ours (${connectedTo})`).toBeDefined();
    await victim!.kill();
    // The services' shared connection moves to one of the two left.
    const movedTo = await waitFor("the services reconnected to another server", () => {
      const now = stack.nc.info?.server_name;
      return !stack.nc.isClosed() && now && now !== connectedTo ? now : undefined;
    }, 60_000, 100);
    expect(movedTo).not.toBe(connectedTo);

    const from = ntfy.published.length;
    const newPush = (pred: (title: string) => boolean) => ntfy.waitFor((m) => ntfy.published.indexOf(m) >= from && pred(m.title ?? ""), 90_000);
    process.kill(pid, "SIGKILL");
    const drift = await newPush((t) => /^Drift (down|unhealthy): a1\/shop$/.test(t));
    const ask = await newPush((t) => t === "Approve restart a1/shop?");
    expect(ask.actions.map((a) => a.label)).toEqual(["Approve", "Reject", "Console"]);
    // Pressed the way the ntfy app does: an HTTP call to the executor's approval route.
    expect((await ntfy.press(ask, "Approve")).status).toBe(200);
    const actionId = ask.actions[0]!.url!.split("/").at(-2)!;
    await waitFor("the restart succeeded", async () => {
      const [a] = (await actionsOf(sql)).filter((x) => x.id === actionId);
      if (a?.state === "failed" || a?.state === "failed_unknown") throw new Error(`restart ${a.state}: ${a.result}`);
      return a?.state === "succeeded";
    }, 120_000, 200);
    const back = await waitFor("a1/shop healthy again with a new pid", () => {
      const s = healthyShop();
      return s && s.pid !== pid ? s : undefined;
    }, 60_000, 50);
    expect(back.pid).not.toBe(pid);
    await newPush((t) => t === `Resolved: ${drift.title}`);

    // The planner, on the same two servers: evidence from the world store, the events stream and the agent's log tail.
    ollama.script({ content: JSON.stringify({ diagnosis: "shop on a1 was killed and restarted after an approval", answer: "a1/shop is healthy again.", proposals: [] }), promptEvalCount: 500, evalCount: 40 });
    const out: string[] = [];
    const io = { out: (x: string) => out.push(x), err: (x: string) => out.push(x), env: { STEWARD_PLANNER_URL: stack.plannerUrl, STEWARD_API_URL: stack.executorUrl, STEWARD_TOKEN: stack.token, STEWARD_USER: "cluster-test" } };
    expect(await runCli(["task", "add", "--json", "--timeout", "90", "why", "did", "a1/shop", "restart?"], io), out.join("\n")).toBe(0);
    const detail = TaskDetail.parse(JSON.parse(out.filter((l) => l.startsWith("{")).at(-1)!));
    expect(detail.task.state, JSON.stringify(detail.steps)).toBe("succeeded");
    const tools = detail.steps.filter((x) => x.kind === "tool" || x.kind === "error").map((x) => `${x.kind}: ${x.message}`);
    expect(tools.filter((t) => t.startsWith("error:")), tools.join("\n")).toEqual([]);
    expect(tools.some((t) => t.startsWith("tool: read the world state")), tools.join("\n")).toBe(true);
    expect(tools.some((t) => /^tool: read [1-9]\d* recent event\(s\) of node a1$/.test(t)), tools.join("\n")).toBe(true);
    expect(tools.some((t) => /^tool: read the last \d+ bytes of the log of shop on a1$/.test(t)), tools.join("\n")).toBe(true);
    expectAllAlive();
  }, 400_000);
});
