/**
 * The control plane on a real 3-server JetStream cluster (three nats-server processes; streams and the world KV with
 * 3 replicas, as docker-compose.yml deploys them). The observer and the supervisor run as their real processes with
 * NATS_URL listing all three servers; a simulated node-agent publishes acknowledged events. The server leading the
 * events stream is killed -9 while events flow: every event JetStream acknowledged is still in the stream and folded
 * by the observer, no service exits, and a kill reported after the failover still becomes a pending restart.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENTS_STREAM, WORLD_BUCKET, eventSubject } from "@steward/contracts/subjects";
import type { NodeEventInput, ServiceObservation } from "@steward/contracts/events";
import { connectNats, jetstream, jetstreamManager, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { connectDb, type Sql } from "@steward/platform/db";
import { actionsOf } from "@steward/actions/testing";
import { createTestDatabase, startNatsCluster, stopProcess, waitFor, waitForTicks, type NatsCluster, type TestDatabase } from "@steward/testkit";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";

const NODE = "n1";
const SERVICES = ["web", "worker"];

let cluster: NatsCluster;
let db: TestDatabase;
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
  [cluster, db, dir] = await Promise.all([startNatsCluster(3), createTestDatabase("steward_cluster"), mkdtemp(join(tmpdir(), "steward-cluster-"))]);
  nc = await connectNats(cluster.url, "cluster-test");
  sql = connectDb(db.url);
  // A reader (supervisor, executor, alerter, planner) that starts first creates the world bucket with one replica;
  // the observer must bring it to STREAM_REPLICAS.
  await openWorldBucket(nc);
  const fleet = join(dir, "fleet.yaml");
  await writeFile(fleet, `version: 1\nnodes:\n  ${NODE}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}`);
  const common = { NATS_URL: cluster.url, STREAM_REPLICAS: "3", METRICS_PORT: "0" };
  const observer = launch("observer", { ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", STALE_CHECK_MS: "500" });
  launch("supervisor", { ...common, DATABASE_URL: db.url, FLEET_SPEC: fleet, RECHECK_MS: "500" });
  observerMetrics = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], 60_000, 20).then((p) => `http://127.0.0.1:${p}/metrics`);
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
  await nc?.close().catch(() => undefined);
  await sql?.end({ timeout: 2 }).catch(() => undefined);
  await db?.drop().catch(() => undefined);
  await cluster?.stop();
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
    const pending = await waitFor("a pending restart of n1/web", async () => {
      const open = await actionsOf(sql, { state: "pending" });
      return open.length > 0 ? open : undefined;
    }, 90_000, 200);
    expect(pending.map((a) => `${a.kind} ${a.node}/${a.service}`)).toEqual(["restart n1/web"]);
    expectAllAlive();
  }, 300_000);
});
