/**
 * The whole loop on a real 3-server JetStream cluster (three nats-server processes; streams and the world KV with 3
 * replicas, as docker-compose.yml deploys them). The observer and the supervisor run as their real processes with
 * NATS_URL listing all three servers; the executor, alerter, planner (rules only: no model is reachable) and a real
 * node-agent (a1, process driver, one real process with an HTTP health check) run in this process (startStack),
 * each with its own connection (all to the first listed server while it runs); a simulated node (n1) publishes
 * acknowledged events. Every server runs the contracts' NATS identities and TLS on client connections.
 *
 * The server leading the events stream is killed -9 while events flow, and it is the server the in-process services
 * are connected to (leadership is moved there first), so they lose their connection too. Afterwards: every event
 * JetStream acknowledged is in the stream and folded, every service still runs its loop, and the loop still closes on
 * the two servers left: a1's process killed → down → a pending restart → pushed to ntfy → approved through the
 * executor's API → restarted, verified, resolved.
 *
 * Why the earlier version (reverted in 093a4bf) failed at 68 s: a KV watch whose consumer lived on the dead server
 * stays silent for about 60 s. nats.js makes every watch an ordered push consumer with a 30 s idle heartbeat and
 * re-creates it only after two heartbeats are missed, whatever happens to the connection (measured with one writer and
 * one reader on a 3-server cluster, the reader's server killed: 60.5, 61.2 and 70.7 s from the kill to the next
 * delivery, the reader reconnected within 0.3 s). The executor verifies a restart from its watched copy of the
 * world, so with the default VERIFY_TIMEOUT_MS (60 s) a restart approved during that minute failed verification
 * although the service was back. The world cache now notices a silent watch itself (libs/world kv-cache: the store's
 * header is probed every 3 s, a watch behind it twice with nothing delivered is restarted from its last revision), so
 * the executor runs with the product's default verification timeout here. Every wait has a deadline of minutes and
 * is about an eventual outcome; the durations the test prints are for reading, not asserted.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENTS_STREAM, WORLD_BUCKET, eventSubject } from "@steward/contracts/subjects";
import type { NodeEventInput, ServiceObservation } from "@steward/contracts/events";
import { TaskDetail } from "@steward/contracts/task";
import { jetstream, jetstreamManager, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { runCli } from "@steward/cli";
import { freePort, metricValue, startFakeNtfy, startNatsCluster, stopProcess, waitFor, waitForTicks, type FakeNtfy, type MetricsSource, type NatsCluster } from "@steward/testkit";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";
import { startStack, type Stack } from "./support/stack.js";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./support/secure-nats.js";
import { api, type ActionView } from "./support/process-node.js";

const NODE = "n1";
const SERVICES = ["web", "worker"];
const AGENT = "a1";
/** Generous: each is a deadline for something that happens eventually, sized for a loaded 2-core machine. */
const LONG = 180_000;

let cluster: NatsCluster;
let stack: Stack;
let ntfy: FakeNtfy;
let nc: NatsConnection;
let security: NatsSecurity;
let dir = "";
const procs: ServiceProcess[] = [];
let observerMetrics = "";
let supervisorMetrics = "";
const started = new Date().toISOString();
let beats: { unsubscribe(): void } | undefined;

const observation = (service: string): ServiceObservation => ({ service, state: "running", health: "none", pid: 100 + SERVICES.indexOf(service), starts: 1, declared: true });

/** Publishes and waits for JetStream's ack; true only when acknowledged. */
async function publish(e: NodeEventInput): Promise<boolean> {
  try {
    await jetstream(nc).publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id, timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const heartbeat = (): NodeEventInput => ({ type: "heartbeat", id: randomUUID(), node: NODE, ts: new Date().toISOString(), interval_ms: 1000, started_at: started, services: SERVICES.map(observation), dropped_events: 0 });

const metric = (source: MetricsSource, name: string, labels: Record<string, string> = {}) => metricValue(source, name, labels);

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

const output = (name: ServiceName) => procs.find((p) => p.name === name)?.output.slice(-4000) ?? "";

/** The stream's replica set as the cluster reports it: leader, configured replicas and current followers. */
async function replicaSet(stream: string): Promise<{ leader: string; replicas: number; current: number }> {
  const info = await (await jetstreamManager(nc)).streams.info(stream);
  const peers = info.cluster?.replicas ?? [];
  return { leader: info.cluster?.leader ?? "", replicas: info.config.num_replicas, current: peers.filter((p) => p.current && !p.offline).length };
}

/** Waits until the stream has a leader (JetStream answers publishes again), returning it. */
const leaderOf = (stream: string, timeoutMs = LONG) => waitFor(`a leader of ${stream}`, async () => (await replicaSet(stream)).leader || undefined, timeoutMs, 200);

/**
 * Moves the stream's leadership to `server`: each step-down elects one of the other replicas, so a few at most. The
 * next step-down is asked once the previous election is seen, never on a timer.
 */
async function moveLeader(stream: string, server: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const now = await leaderOf(stream);
    if (now === server) return;
    const set = await waitFor(`${stream} with every replica current`, async () => {
      const s = await replicaSet(stream);
      return s.leader && s.current === 2 ? s : undefined;
    }, LONG, 200);
    await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 10_000 }).catch(() => undefined);
    await waitFor(`${stream} led by another than ${set.leader}`, async () => {
      const s = await replicaSet(stream);
      return s.leader && s.leader !== set.leader;
    }, LONG, 200);
  }
  throw new Error(`could not move the leadership of ${stream} to ${server}`);
}

beforeAll(async () => {
  security = await natsSecurity([NODE, AGENT]);
  const [c, d, n, shopPort, noModelPort] = await Promise.all([startNatsCluster(3, { config: security.config }), mkdtemp(join(tmpdir(), "steward-cluster-")), startFakeNtfy(), freePort(), freePort()]);
  [cluster, dir, ntfy] = [c, d, n];
  nc = await security.connect(cluster.url, TEST_HARNESS_IDENTITY, "cluster-test");
  // A reader (supervisor, executor, alerter, planner) that starts first creates the world bucket with one replica;
  // the observer must bring it to STREAM_REPLICAS.
  await openWorldBucket(nc);
  const common = { NATS_URL: cluster.url, STREAM_REPLICAS: "3", METRICS_PORT: "0" };
  // MISSED_HEARTBEATS 60: a node is stale after a minute without heartbeats, not 3 s, so the failover (seconds, more
  // on a busy machine) does not turn the nodes' services unknown and expire the pending restart the test waits for.
  // Staleness has tests of its own.
  const observer = launch("observer", { ...common, ...security.env("observer"), SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", STALE_CHECK_MS: "500", MISSED_HEARTBEATS: "60" });
  observerMetrics = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], LONG, 50).then((p) => `http://127.0.0.1:${p}/metrics`);
  // The rest start once the observer has brought the streams to 3 replicas.
  for (const stream of [EVENTS_STREAM, `KV_${WORLD_BUCKET}`]) await waitFor(`${stream} with 3 current replicas`, async () => {
    const s = await replicaSet(stream);
    return s.leader && s.replicas === 3 && s.current === 2;
  }, LONG, 200);
  // a1/shop: a real process the in-process node-agent supervises (restart: never, so a kill stays down until the
  // approved restart), with an HTTP health check that allows ~3 s to come up on a busy machine.
  const shop = [
    "      shop:",
    "        kind: process",
    `        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${shopPort}, '127.0.0.1')"]`,
    "        restart: never",
    "        health:",
    "          - type: http",
    `            url: http://127.0.0.1:${shopPort}/`,
    "            interval: 300ms",
    "            retries: 10",
    "",
  ].join("\n");
  stack = await startStack({
    natsUrl: cluster.url,
    natsSecurity: security,
    dbPrefix: "steward_cluster",
    fleet: `version: 1\nnodes:\n  ${NODE}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}  ${AGENT}:\n    services:\n${shop}`,
    // The product's default VERIFY_TIMEOUT_MS (60 s): the executor's world watch recovers from the kill by itself.
    executor: { POLL_MS: "200" },
    agents: { [AGENT]: { HEARTBEAT_MS: "1000" } },
    // Nothing listens on the model's port and Claude is off: the planner answers from its runbooks (rules).
    planner: { OLLAMA_URL: `http://127.0.0.1:${noModelPort}`, WORKERS: "1", POLL_MS: "200" },
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-cluster", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100", ALERT_GROUP_WAIT_MS: "500", ALERT_GROUP_INTERVAL_MS: "1000" },
  });
  const supervisor = launch("supervisor", { ...common, ...security.env("supervisor"), DATABASE_URL: stack.db.url, FLEET_SPEC: stack.fleetPath, RECHECK_MS: "500" });
  supervisorMetrics = await waitFor("the supervisor running", () => {
    if (supervisor.child.exitCode !== null) throw new Error(`the supervisor exited: ${supervisor.output.slice(-3000)}`);
    return /"metrics":"(http:[^"]+)"[^\n]*"msg":"supervisor running"/.exec(supervisor.output)?.[1];
  }, LONG, 50);
  // n1 beats when a1 beats: each heartbeat the real agent publishes (on its own timer) triggers one of n1's, and a
  // beat still waiting for its ack skips the next trigger, so n1 is paced by a real clock without a sleep here.
  let beating = false;
  beats = nc.subscribe(eventSubject(AGENT, "heartbeat"), {
    callback: () => {
      if (beating) return;
      beating = true;
      void publish(heartbeat()).finally(() => (beating = false));
    },
  });
}, 600_000);

afterAll(async () => {
  beats?.unsubscribe();
  for (const p of procs) if (p.child.exitCode !== null || p.child.signalCode !== null) console.error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}); its last output:\n${p.output.slice(-4000)}`);
  await Promise.allSettled(procs.map((p) => stopProcess(p.child, 5000)));
  await stack?.stop().catch(() => undefined);
  await nc?.close().catch(() => undefined);
  await cluster?.stop();
  await security?.remove();
  await ntfy?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe("3-server JetStream cluster", () => {
  it("the events stream and the world KV have 3 replicas, all current (the KV made with one by an early reader)", async () => {
    for (const stream of [EVENTS_STREAM, `KV_${WORLD_BUCKET}`]) {
      const set = await waitFor(`${stream} with 3 current replicas`, async () => {
        const s = await replicaSet(stream);
        return s.leader && s.current === 2 ? s : undefined;
      }, LONG, 200);
      expect(set.replicas).toBe(3);
    }
  }, 400_000);

  it("kill -9 of the events stream's leader (the in-process services' server) while events flow: no acked event lost, every service keeps running, and kill → pending → approved → restarted, verified, pushed", async () => {
    const agent = stack.agents[AGENT]!;
    const healthyShop = () => agent.status().find((x) => x.service === "shop" && x.state === "running" && x.health === "healthy");
    const pid = await waitFor("a1/shop healthy", () => healthyShop()?.pid, LONG, 50);
    await waitForTicks("observer folding heartbeats", () => metric(observerMetrics, "steward_observer_events_folded_total", { type: "heartbeat" }), 2, LONG);

    // The worst case: the server that leads the events stream is also the one the in-process services talk through.
    const servicesServer = stack.nc.info?.server_name ?? "";
    for (const [svc, c] of Object.entries(stack.connections)) expect(c.info?.server_name, `${svc}'s server`).toBe(servicesServer);
    expect(cluster.byName(servicesServer), `the services' connection is to one of ours (${servicesServer})`).toBeDefined();
    await moveLeader(EVENTS_STREAM, servicesServer);

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
          // "no responders" comes back at once while no leader is elected: the next try waits until there is one.
          await leaderOf(EVENTS_STREAM).catch(() => undefined);
        }
      }
    })();
    await waitFor("events acked before the kill", () => acked.length >= 100, LONG, 20);
    const { leader } = await replicaSet(EVENTS_STREAM);
    expect(leader).toBe(servicesServer);
    const victim = cluster.byName(leader)!;
    // Each service's loop counter before the kill: each must move after the failover.
    const loops = {
      observer: () => metric(observerMetrics, "steward_observer_events_folded_total"),
      supervisor: () => metric(supervisorMetrics, "steward_supervisor_cycles_total", { result: "ok" }),
      executor: () => metric(stack.registries["executor"]!, "steward_executor_claim_polls_total"),
      alerter: () => metric(stack.registries["alerter"]!, "steward_alerter_evaluations_total", { result: "ok" }),
      "node-agent": () => metric(stack.registries[`node-agent-${AGENT}`]!, "steward_node_agent_events_published_total"),
    };
    const ackedAtKill = acked.length;
    await victim.kill();
    // From the moment the process is gone (an ack already on the wire before that does not count).
    killedAt = Date.now() + 1;
    const atKill = Object.fromEntries(await Promise.all(Object.entries(loops).map(async ([k, read]) => [k, await read()] as const)));

    // A new leader is elected among the two left, and acks resume on it.
    const after = await waitFor("a new events leader", async () => {
      const s = await replicaSet(EVENTS_STREAM);
      return s.leader && s.leader !== leader ? s.leader : undefined;
    }, LONG, 200);
    const electedMs = Date.now() - killedAt;
    await waitFor("acks resumed after the failover", () => acked.length >= ackedAtKill + 200, LONG, 50);
    flowing = false;
    await flow;

    // Every acknowledged id is in the stream (read back by Nats-Msg-Id), message by message from the new leader (no
    // consumer: an ephemeral one may be placed on the dead peer).
    const inStream = new Set<string>();
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

    // The observer folded them all: its count of folded service events reaches every acked one (n1's only service events).
    await waitFor("the observer folded every acked event", async () => (await metric(observerMetrics, "steward_observer_events_folded_total", { type: "service" })) >= acked.length, LONG, 200).catch(async (err) => {
      throw new Error(`${String(err)}; folded ${await metric(observerMetrics, "steward_observer_events_folded_total", { type: "service" })} of ${acked.length}; observer said:\n${output("observer")}`);
    });
    // The services' connection moved to one of the two left.
    const phases: string[] = [];
    const phase = (what: string) => phases.push(`${what} +${((Date.now() - killedAt) / 1000).toFixed(1)} s`);
    phase("acked events all folded");
    const movedTo = await waitFor("the services reconnected to another server", () => {
      const now = stack.nc.info?.server_name;
      return !stack.nc.isClosed() && now && now !== leader ? now : undefined;
    }, LONG, 100);

    // Every service's loop ran after the failover (each counter moved past its value at the kill).
    for (const [name, read] of Object.entries(loops)) {
      await waitFor(`the ${name}'s loop running after the failover`, async () => (await read()) > atKill[name]!, LONG, 200).catch((err) => {
        throw new Error(`${String(err)}${name === "observer" || name === "supervisor" ? `; it said:\n${output(name)}` : ""}`);
      });
    }
    phase("every loop moved");
    // The executor's and the alerter's HTTP APIs answer.
    expect(Array.isArray((await api(stack, "/api/actions?state=pending"))["actions"])).toBe(true);
    expect((await fetch(`${stack.alerterUrl}/healthz`, { signal: AbortSignal.timeout(20_000) })).status).toBe(200);

    // kill → down → pending restart → pushed → approved through the executor's API → restarted, verified → resolved.
    const from = ntfy.published.length;
    const newPush = (what: string, pred: (title: string) => boolean) =>
      waitFor(`ntfy: ${what}`, () => ntfy.published.slice(from).find((m) => pred(m.title ?? "")), LONG, 100);
    process.kill(pid, "SIGKILL");
    const pending = await waitFor("a pending restart of a1/shop", async () => ((await api(stack, "/api/actions?state=pending"))["actions"] as ActionView[]).find((a) => a.service === "shop" && a.kind === "restart"), LONG, 200).catch((err) => {
      throw new Error(`${String(err)}; a1/shop is ${JSON.stringify(agent.status().find((s) => s.service === "shop"))}; supervisor said:\n${output("supervisor")}`);
    });
    phase("pending restart");
    const drift = await newPush("the drift of a1/shop", (t) => /^Drift down: a1\/shop$/.test(t));
    const ask = await newPush("the pending restart", (t) => t === "Approve restart a1/shop?");
    // An open topic: the buttons open the console's confirmation (alerter.test.ts); the approval here is the API's.
    expect(ask.actions.map((a) => a.label)).toEqual(["Approve…", "Reject…", "Console"]);
    expect(ask.message).toContain("Will run: restart a1/shop");

    phase("pushed");
    const approved = await api(stack, `/api/actions/${pending.id}/approve`, { method: "POST", body: JSON.stringify({ actor: "cluster-test", channel: "api" }) });
    expect((approved["action"] as ActionView | undefined)?.state, JSON.stringify(approved)).toBe("approved");
    const done = await waitFor("the restart to finish", async () => {
      const a = (await api(stack, `/api/actions/${pending.id}`))["action"] as ActionView;
      return ["succeeded", "failed", "failed_unknown", "rejected", "expired"].includes(a.state) ? a : undefined;
    }, LONG, 200);
    phase(`restart ${done.state}`);
    expect(done.state, done.result ?? "").toBe("succeeded");
    expect(done.result).toMatch(/; verified: /);
    const back = await waitFor("a1/shop healthy again with a new pid", () => {
      const s = healthyShop();
      return s && s.pid !== pid ? s : undefined;
    }, LONG, 50);
    expect(back.pid).not.toBe(pid);
    await newPush("the drift resolved", (t) => t === `Resolved: ${drift.title}`);
    await newPush("the restart resolved", (t) => t === "Resolved: Approve restart a1/shop?");

    phase("resolved pushed");
    // The planner, on the same two servers, answers a task from its runbooks (no model is reachable).
    const out: string[] = [];
    const io = { out: (x: string) => out.push(x), err: (x: string) => out.push(x), env: { STEWARD_PLANNER_URL: stack.plannerUrl, STEWARD_API_URL: stack.executorUrl, STEWARD_TOKEN: stack.token, STEWARD_USER: "cluster-test" } };
    expect(await runCli(["task", "add", "--json", "--timeout", "170", "why", "did", "a1/shop", "restart?"], io), out.join("\n")).toBe(0);
    const detail = TaskDetail.parse(JSON.parse(out.filter((l) => l.startsWith("{")).at(-1)!));
    expect(detail.task.state, JSON.stringify(detail.steps)).toBe("succeeded");
    expect(detail.calls.map((x) => x.provider)).toContain("rules");

    phase("planner answered");
    expectAllAlive();
    // Read, not asserted: how long each step took after the kill of the leader (seconds on a busy machine).
    console.info(`cluster loop: services moved from ${leader} to ${movedTo}; kill of a1/shop → pending → approved → ${done.state} (${done.result}); after the kill: ${phases.join(", ")}`);
  }, 1_200_000);
});
