/**
 * 200 nodes x 20 services through the real observer, supervisor and executor (in-process, real nats-server and
 * PostgreSQL). Simulated node-agents publish real heartbeats (every service restated) to JetStream. The world at this
 * size is over 1 MiB as one value, and the all-quiet drift report (4,000 unknown findings) is too: both must still
 * be written, read by every reader, and act on nothing they should not.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventSubject } from "@steward/contracts/subjects";
import type { NodeEventInput, ServiceObservation } from "@steward/contracts/events";
import { jetstream, natsHeaders, openWorldBucket, type KV } from "@steward/platform/bus";
import { actionsOf } from "@steward/actions/testing";
import { metricValue, waitFor, waitForTicks } from "@steward/testkit";
import { readWorld, watchWorld, type WorldCache } from "@steward/world/world-store";
import { readDrift } from "@steward/world/drift-store";
import { startStack, type Stack } from "./support/stack.js";

const NODES = Array.from({ length: 200 }, (_, i) => `node-${String(i).padStart(3, "0")}`);
const SERVICES = Array.from({ length: 20 }, (_, i) => `svc-${String(i).padStart(2, "0")}`);
const VICTIM = { node: "node-173", service: "svc-07" };
/**
 * The interval each heartbeat declares: with MISSED_HEARTBEATS 3, a node is stale 6 s after its last heartbeat. Rounds
 * go out as the observer folds them (0.3 to 4.3 s apart under a load average of 26 on 2 cores), so a node's heartbeat
 * can be two rounds old when the observer looks: 1 s (3 s to stale) left too little room on a busy machine.
 */
const HEARTBEAT_MS = 2000;

let stack: Stack;
let kv: KV;
let cache: WorldCache;
let publishing = true;
let beats: Promise<void> | undefined;
const started = new Date().toISOString();
/** What each simulated agent reports: every service running, until one is killed. */
const states = new Map<string, ServiceObservation>();
const key = (node: string, service: string) => `${node}/${service}`;

function observation(node: string, service: string): ServiceObservation {
  return states.get(key(node, service)) ?? { service, state: "running", health: "none", pid: 1000 + SERVICES.indexOf(service), starts: 1, declared: true };
}

/** Like a real agent: each event carries its trace context, which the world keeps per service. Returns its stream sequence. */
async function publish(e: NodeEventInput): Promise<number> {
  const h = natsHeaders();
  h.set("traceparent", `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`);
  return (await jetstream(stack.nc).publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id, headers: h })).seq;
}

/** One round: a heartbeat from every node (every service restated). Returns the stream sequence of its last event. */
async function heartbeatRound(): Promise<number> {
  const ts = new Date().toISOString();
  const seqs = await Promise.all(
    NODES.map((node) =>
      publish({ type: "heartbeat", id: randomUUID(), node, ts, interval_ms: HEARTBEAT_MS, started_at: started, services: SERVICES.map((s) => observation(node, s)), dropped_events: 0 }),
    ),
  );
  return Math.max(...seqs);
}

/** The last stream sequence the observer has folded (its gauge, read from its registry without rendering the rest). */
async function foldedSeq(): Promise<number> {
  const m = await stack.registries["observer"]?.getSingleMetric("steward_observer_last_seq")?.get();
  return m?.values[0]?.value ?? 0;
}

async function api<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await fetch(`${stack.executorUrl}${path}`, { headers: { authorization: `Bearer ${stack.token}` } });
  return { status: r.status, body: (await r.json()) as T };
}

const metric = (service: string, name: string, labels: Record<string, string> = {}) => metricValue(stack.registries[service] as Parameters<typeof metricValue>[0], name, labels);

beforeAll(async () => {
  const fleet = `version: 1\nnodes:\n${NODES.map((n) => `  ${n}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}`).join("")}`;
  stack = await startStack({
    fleet,
    dbPrefix: "steward_scale",
    observer: { STALE_CHECK_MS: "500", MISSED_HEARTBEATS: "3" },
    supervisor: { RECHECK_MS: "2000", SNAPSHOT_MAX_AGE_MS: "60000" },
    // The executor here is a reader (its API and console); nothing is approved, so nothing runs.
    executor: { EXECUTOR_WORKER: "false" },
  });
  kv = await openWorldBucket(stack.nc);
  cache = watchWorld(kv);
  await cache.ready();
  // The next round goes out once the observer has folded the last one: the agents keep the observer's pace instead
  // of a timer's, so a busy machine slows the rounds rather than piling them up in the stream.
  beats = (async () => {
    while (publishing) {
      const upTo = await heartbeatRound().catch(() => undefined);
      const folded = upTo === undefined ? waitForTicks("observer folds", foldedSeq, 1, 60_000) : waitFor("the observer folded the round", async () => (await foldedSeq()) >= upTo, 60_000, 20);
      await folded.catch(() => undefined);
    }
  })();
}, 120_000);

afterAll(async () => {
  publishing = false;
  await beats;
  await cache?.stop();
  await stack?.stop();
});

describe("200 nodes x 20 services", () => {
  it("every reader sees every node, no KV write fails, and a kill on node 173 becomes a pending restart", async () => {
    // The library's watching reader, its one-shot reader, and the executor's API (what `steward status` reads).
    await waitFor("all 200 nodes up in the watched world", () => {
      const w = cache.read();
      return w.ok && Object.values(w.value.world.nodes).filter((n) => n.status === "up" && Object.keys(n.services).length === 20).length === 200;
    }, 60_000, 100);
    // A one-shot read taken while the observer writes may answer "incomplete" (a record newer than its header): the
    // reader says so rather than mix two writes; a later read has all 200.
    const once = await waitFor("a one-shot read with all 200 nodes", async () => {
      const r = await readWorld(kv);
      return r.ok && Object.keys(r.value.world.nodes).length === 200 ? r : undefined;
    }, 30_000, 200);
    expect(once.ok && Object.keys(once.value.world.nodes).length).toBe(200);
    expect(once.ok && JSON.stringify(once.value).length).toBeGreaterThan(1024 * 1024);
    const viaApi = await waitFor("the executor's world has 200 nodes", async () => {
      const r = await api<{ world: { nodes: Record<string, unknown> } }>("/api/world");
      return r.status === 200 && Object.keys(r.body.world.nodes).length === 200 ? r.body : undefined;
    }, 30_000, 200);
    expect(Object.keys(viaApi.world.nodes)).toHaveLength(200);
    // The supervisor has seen every node: its report holds no "never reported" finding (nor anything else).
    await waitFor("a clean drift report", async () => {
      const r = await readDrift(kv);
      return r.ok && r.value.skipped === null && r.value.drifts.length === 0 ? r.value : undefined;
    }, 60_000, 200);

    // The kill: the agent's exit event, and from now on its heartbeats restate the service as exited.
    const killedAt = new Date().toISOString();
    const dead: ServiceObservation = { service: VICTIM.service, state: "exited", health: "none", exit_code: 137, signal: "SIGKILL", starts: 1, declared: true };
    states.set(key(VICTIM.node, VICTIM.service), dead);
    await publish({ type: "service", id: randomUUID(), node: VICTIM.node, ts: killedAt, ...dead });
    const pending = await waitFor("a pending restart of node-173/svc-07", async () => {
      const open = await actionsOf(stack.sql, { state: "pending" });
      return open.length > 0 ? open : undefined;
    }, 60_000, 100);
    expect(pending.map((a) => `${a.kind} ${a.node}/${a.service}`)).toEqual(["restart node-173/svc-07"]);

    expect(await metric("observer", "steward_observer_snapshot_write_errors_total", { store: "kv" })).toBe(0);
    expect(await metric("observer", "steward_observer_snapshot_write_errors_total", { store: "kv_oversized" })).toBe(0);
    expect(await metric("supervisor", "steward_supervisor_report_write_failures_total")).toBe(0);
  });

  it("all 200 nodes go quiet at once: every service unknown, the 4,000-finding report is published and readable, no action", async () => {
    const before = (await actionsOf(stack.sql)).map((a) => a.id);
    publishing = false;
    await beats;
    await waitFor("all 200 nodes stale", () => {
      const w = cache.read();
      return w.ok && Object.values(w.value.world.nodes).every((n) => n.status === "stale" && Object.values(n.services).every((s) => s.state === "unknown"));
    }, 60_000, 100);
    const report = await waitFor("a report with every service unknown", async () => {
      const r = await readDrift(kv);
      return r.ok && r.value.drifts.filter((d) => d.kind === "unknown").length === NODES.length * SERVICES.length ? r.value : undefined;
    }, 60_000, 200);
    expect(report.drifts.every((d) => d.kind === "unknown" && d.proposes === null)).toBe(true);
    // As one value this report would be refused by NATS (1 MiB).
    expect(JSON.stringify(report).length).toBeGreaterThan(1024 * 1024);
    const viaApi = await api<{ drifts: unknown[] }>("/api/drift");
    expect(viaApi.status).toBe(200);
    expect(viaApi.body.drifts).toHaveLength(4000);

    // Cycles go on over the unknown world and propose nothing; the pending restart is kept (unknown never clears it).
    await waitForTicks("supervisor cycles", () => metric("supervisor", "steward_supervisor_cycles_total", { result: "ok" }), 3, 60_000);
    expect((await actionsOf(stack.sql)).map((a) => a.id)).toEqual(before);
    expect((await actionsOf(stack.sql, { state: "pending" })).map((a) => `${a.node}/${a.service}`)).toEqual(["node-173/svc-07"]);
    expect(await metric("supervisor", "steward_supervisor_report_write_failures_total")).toBe(0);
    expect(await metric("observer", "steward_observer_snapshot_write_errors_total", { store: "kv" })).toBe(0);
  });
});
