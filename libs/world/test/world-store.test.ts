import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DRIFT_HEADER_KEY, LEGACY_WORLD_KEY, WORLD_HEADER_KEY, driftNodeKey, worldNodeKey } from "@steward/contracts/subjects";
import type { Drift, DriftReport } from "@steward/contracts/drift";
import { emptyWorld, type NodeState, type WorldState } from "@steward/contracts/world-state";
import { connectNats, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { inBatchWait, readSettled } from "../src/kv-cache.js";
import { createWorldWriter, readWorld, readWorldAsStored, readWorldNodes, watchWorld } from "../src/world-store.js";
import { createDriftWriter, readDrift, watchDrift } from "../src/drift-store.js";
import { clearWorldStore } from "../src/testing.js";
import { createPositionLog } from "../src/liveness.js";

let nats: NatsServerHandle;
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "world-store-test");
  kv = await openWorldBucket(nc);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

beforeEach(async () => {
  await clearWorldStore(kv);
});

const T = "2026-12-01T00:00:00.000Z";

function node(name: string, services = 20): NodeState {
  const s: NodeState["services"] = {};
  for (let i = 0; i < services; i++) {
    const n = `svc-${i}`;
    s[n] = { name: n, state: "running", health: "healthy", starts: 1, declared: true, since: T, updated_at: T, checks: {}, last_event_id: `ev-${name}-${i}`, detail: "x".repeat(200) };
  }
  return { name, status: "up", last_heartbeat: T, heartbeat_interval_ms: 5000, agent_started_at: T, dropped_events: 0, host: null, services: s };
}

function world(n: number, seq = 1): WorldState {
  const w = emptyWorld();
  w.last_seq = seq;
  for (let i = 0; i < n; i++) w.nodes[`n${i}`] = node(`n${i}`);
  return w;
}

describe("world store", () => {
  it("a world far over 1 MiB is written as one record per node and read back whole", async () => {
    const w = world(300);
    expect(JSON.stringify(w).length).toBeGreaterThan(2 * 1024 * 1024);
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    const r = await writer.write(w, T);
    expect(r).toMatchObject({ nodesWritten: 300, nodesDeleted: 0, oversized: [], revision: 1 });
    const back = await readWorld(kv);
    expect(back.ok).toBe(true);
    if (!back.ok) return;
    expect(back.value.world).toEqual(w);
    expect(back.value).toMatchObject({ written_at: T, observer_id: "obs-1" });
    expect(JSON.parse(writer.prepare(w, T).snapshotJson())).toEqual(back.value);
  });

  it("writes only nodes whose object changed, and a watcher hears which", async () => {
    const w = world(50);
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(w, T);
    const changes: string[][] = [];
    const cache = watchWorld(kv, { onChange: (c) => changes.push([...c.changed]) });
    try {
      await cache.ready();
      expect(cache.read()).toMatchObject({ ok: true });
      expect(changes).toHaveLength(1);
      expect(changes[0]).toHaveLength(50);

      w.nodes["n7"] = { ...(w.nodes["n7"] as NodeState), status: "stale" };
      w.nodes["n9"] = { ...(w.nodes["n9"] as NodeState) }; // same content, new object: not written
      w.last_seq = 2;
      const r = await writer.write(w, T);
      expect(r.nodesWritten).toBe(1);
      await waitFor("the change", () => changes.length === 2);
      expect(changes[1]).toEqual(["n7"]);
      const seen = cache.read();
      expect(seen.ok && seen.value.world.nodes["n7"]?.status).toBe("stale");
      expect(seen.ok && seen.value.world.last_seq).toBe(2);
      expect(cache.nodes(["n7", "nope"])).toMatchObject({ ok: true, value: { world: { nodes: { n7: { status: "stale" } } } } });
    } finally {
      await cache.stop();
    }
  });

  it("liveness budget: a restatement waits its turn, a real change never does; the header claims only what the store holds", async () => {
    const at = (ms: number) => new Date(Date.parse(T) + ms).toISOString();
    const w = world(3, 10);
    let applied = 30;
    for (const n of Object.values(w.nodes)) Object.assign(n, { recent_event_ids: [`${n.name}-10`], recent_event_seqs: [10] });
    w.events_applied = applied;
    const positions = createPositionLog(w);
    const writer = createWorldWriter({ kv, observerId: "obs-1", liveness: { writesPerSecond: 1, maxAgeMs: 60_000 } });
    // The first write is whole, whatever the budget.
    expect(await writer.write(w, T, positions)).toMatchObject({ nodesWritten: 3, nodesDeferred: 0, lastSeq: 10 });

    // A heartbeat from each node (seqs 11, 12, 13) restating its record: liveness only.
    const beat = (name: string, seq: number, ts: string) => {
      const n = w.nodes[name] as NodeState;
      const services = Object.fromEntries(Object.entries(n.services).map(([k, v]) => [k, { ...v, updated_at: ts }]));
      w.nodes[name] = { ...n, last_heartbeat: ts, services, recent_event_ids: [...(n.recent_event_ids ?? []), `${name}-${seq}`], recent_event_seqs: [...(n.recent_event_seqs ?? []), seq] };
      w.last_seq = seq;
      w.events_applied = ++applied;
      w.event_time = ts;
      positions.record(w);
    };
    beat("n0", 11, at(500));
    beat("n1", 12, at(500));
    beat("n2", 13, at(500));
    // One token (the bucket starts full, at one second's worth): n0 is written; n1 and n2 wait, so the header
    // claims the stream up to seq 11 only, with the counters as they were after it.
    expect(await writer.write(w, at(500), positions)).toMatchObject({ nodesWritten: 1, nodesDeferred: 2, lastSeq: 11 });
    const stored = await readWorld(kv);
    expect(stored.ok && stored.value.world).toMatchObject({ last_seq: 11, events_applied: 31, event_time: at(500) });
    expect(stored.ok && stored.value.world.nodes["n0"]?.last_heartbeat).toBe(at(500));
    expect(stored.ok && stored.value.world.nodes["n1"]?.last_heartbeat).toBe(T);

    // A real change on n2 goes out at once, with no token left; n1 still waits.
    w.nodes["n2"] = { ...(w.nodes["n2"] as NodeState), status: "stale", recent_event_seqs: [10, 13], recent_event_ids: ["n2-10", "n2-13"] };
    expect(await writer.write(w, at(600), positions)).toMatchObject({ nodesWritten: 1, nodesDeferred: 1, lastSeq: 11 });

    // Past maxAgeMs every waiting node is written, whatever the budget; the header claims the whole stream again.
    expect(await writer.write(w, at(61_000), positions)).toMatchObject({ nodesWritten: 1, nodesDeferred: 0, lastSeq: 13 });
    const whole = await readWorld(kv);
    expect(whole.ok && whole.value.world).toMatchObject({ last_seq: 13, events_applied: 33 });
    expect(whole.ok && whole.value.world.nodes).toEqual(w.nodes);
  });

  it("liveness budget: a node with more messages since its write than its record lists is written at once", async () => {
    const w = world(2, 10);
    for (const n of Object.values(w.nodes)) Object.assign(n, { recent_event_ids: [`${n.name}-10`], recent_event_seqs: [10] });
    const positions = createPositionLog(w);
    const writer = createWorldWriter({ kv, observerId: "obs-1", liveness: { writesPerSecond: 1, maxAgeMs: 60_000 } });
    expect(await writer.write(w, T, positions)).toMatchObject({ nodesWritten: 2, lastSeq: 10 });
    // The budget's one token goes to n0's restatement; n1 restated too, but after 64 messages of its own (seqs
    // 11..74): its list no longer reaches back to seq 10, so where its unwritten part begins is unknown.
    const ts = new Date(Date.parse(T) + 500).toISOString();
    const restate = (name: string, seqs: number[]) => {
      const n = w.nodes[name] as NodeState;
      w.nodes[name] = { ...n, last_heartbeat: ts, recent_event_ids: [...(n.recent_event_ids ?? []), ...seqs.map((q) => `${name}-${q}`)].slice(-64), recent_event_seqs: [...(n.recent_event_seqs ?? []), ...seqs].slice(-64) };
      for (const q of seqs) {
        w.last_seq = Math.max(w.last_seq, q);
        w.events_applied += 1;
        positions.record(w);
      }
    };
    restate("n1", Array.from({ length: 64 }, (_, i) => 11 + i));
    restate("n0", [75]);
    // Both written, though one token was left: n1 could not wait without the header claiming messages no record holds.
    expect(await writer.write(w, ts, positions)).toMatchObject({ nodesWritten: 2, nodesDeferred: 0, lastSeq: 75 });
  });

  it("a node written without its header yet stays invisible until the header arrives", async () => {
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(world(3), T);
    const cache = watchWorld(kv);
    try {
      await cache.ready();
      await kv.put(worldNodeKey("n1"), JSON.stringify({ ...node("n1"), status: "stale" }));
      const h = await kv.get(WORLD_HEADER_KEY);
      // The watch delivers in write order: once it has taken in a later put, it has staged the node put before it.
      const later = await kv.put(worldNodeKey("n2"), JSON.stringify(node("n2")));
      await waitFor("the watch to take in the later put", () => cache.seen() >= later, 15_000, 5);
      const before = cache.read();
      expect(before.ok && before.value.world.nodes["n1"]?.status).toBe("up");
      await kv.put(WORLD_HEADER_KEY, h?.string() ?? "");
      await waitFor("header applied", () => {
        const r = cache.read();
        return r.ok && r.value.world.nodes["n1"]?.status === "stale";
      });
    } finally {
      await cache.stop();
    }
  });

  it("a write left unfinished (nodes without their header) reads as incomplete for readers, and whole as stored", async () => {
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(world(3, 7), T);
    // The writer died after this node and before the header: the node's older record is gone from the watch's view.
    await kv.put(worldNodeKey("n1"), JSON.stringify({ ...node("n1"), status: "stale" }));
    expect(await readWorld(kv)).toMatchObject({ ok: false, reason: "snapshot_incomplete", detail: expect.stringContaining("incomplete") });
    const stored = await readWorldAsStored(kv);
    expect(stored.ok && stored.value.world.last_seq).toBe(7);
    expect(stored.ok && Object.keys(stored.value.world.nodes).sort()).toEqual(["n0", "n1", "n2"]);
    expect(stored.ok && stored.value.world.nodes["n1"]?.status).toBe("stale");
  });

  it("a one-shot read that lands inside a writer's batch waits for the header that completes it, and no longer", async () => {
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(world(3, 8), T);
    // A busy writer has rewritten n1 and not yet its header: a reader loading now has no older n1 to show.
    await kv.put(worldNodeKey("n1"), JSON.stringify({ ...node("n1"), status: "stale" }));
    const h = await kv.get(WORLD_HEADER_KEY);
    const cache = watchWorld(kv);
    try {
      await cache.ready();
      expect(cache.read()).toMatchObject({ ok: false, detail: expect.stringContaining("incomplete") });
      // No header comes: after the settle time the failure is the answer.
      expect(await readSettled(cache, () => cache.read(), 200)).toMatchObject({ ok: false, detail: expect.stringContaining("incomplete") });
      const settled = readSettled(cache, () => cache.read(), 30_000);
      await kv.put(WORLD_HEADER_KEY, h?.string() ?? "");
      const r = await settled;
      expect(r.ok && r.value.world.nodes["n1"]?.status).toBe("stale");
    } finally {
      await cache.stop();
    }
  });

  it("inBatchWait: wait while the load arrives or a writer wrote within the quiet time, answer at once after", () => {
    const now = 100_000;
    const cases: { name: string; a: Parameters<typeof inBatchWait>[0]; deadline: number; want: number }[] = [
      { name: "first load still arriving", a: { staged: 0, caughtUp: false, lastWriteAt: now }, deadline: now + 5_000, want: 5_000 },
      { name: "past the deadline", a: { staged: 3, caughtUp: false, lastWriteAt: now }, deadline: now, want: 0 },
      { name: "incomplete with nothing after the header (records purged): the answer", a: { staged: 0, caughtUp: true, lastWriteAt: now }, deadline: now + 5_000, want: 0 },
      { name: "a writer wrote 300 ms ago: until it has been quiet 2 s", a: { staged: 4, caughtUp: true, lastWriteAt: now - 300 }, deadline: now + 5_000, want: 1_700 },
      { name: "a writer wrote just now, deadline sooner", a: { staged: 4, caughtUp: true, lastWriteAt: now }, deadline: now + 500, want: 500 },
      { name: "quiet for 2 s: it died between its records and its header", a: { staged: 4, caughtUp: true, lastWriteAt: now - 2_000 }, deadline: now + 5_000, want: 0 },
      { name: "quiet for an hour", a: { staged: 1, caughtUp: true, lastWriteAt: now - 3_600_000 }, deadline: now + 5_000, want: 0 },
    ];
    for (const c of cases) expect({ name: c.name, wait: inBatchWait(c.a, now, c.deadline, 2_000) }).toEqual({ name: c.name, wait: c.want });
  });

  it("node records newer than the header: every read is typed incomplete (no mixed view), and ok after the next write", async () => {
    const w = world(3, 7);
    await createWorldWriter({ kv, observerId: "obs-1" }).write(w, T);
    // A write that stops after its node records: n1 rewritten and n3 added, no header.
    await kv.put(worldNodeKey("n1"), JSON.stringify({ ...node("n1"), status: "stale" }));
    await kv.put(worldNodeKey("n3"), JSON.stringify(node("n3")));
    expect(await readWorldNodes(kv, ["n1"], 0)).toMatchObject({ ok: false, reason: "snapshot_incomplete", detail: expect.stringContaining("n1") });
    expect(await readWorldNodes(kv, ["n3"], 0)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    // A node whose record is as of the header reads: it is that header's node.
    expect(await readWorldNodes(kv, ["n2"], 0)).toMatchObject({ ok: true, value: { world: { last_seq: 7, nodes: { n2: { status: "up" } } } } });
    // A node the store never had is simply absent (unknown to the reader), not a reason to call the view incomplete.
    const absent = await readWorldNodes(kv, ["n2", "never-reported"], 0);
    expect(absent.ok && Object.keys(absent.value.world.nodes)).toEqual(["n2"]);
    expect(await readWorld(kv, 30_000, 0)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    const cache = watchWorld(kv);
    try {
      await cache.ready();
      await waitFor("the watch's first load", () => cache.activity().caughtUp, 15_000, 5);
      expect(cache.read()).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
      expect(cache.nodes(["n1"])).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
      expect(cache.nodes(["n0"])).toMatchObject({ ok: true, value: { world: { nodes: { n0: { name: "n0" } } } } });
      // The observer writes again, restarted (a fresh writer: every node, then the header): whole.
      w.nodes["n1"] = { ...(w.nodes["n1"] as NodeState), status: "stale" };
      w.last_seq = 9;
      await createWorldWriter({ kv, observerId: "obs-1" }).write(w, T);
      await waitFor("the watcher to read the world whole", () => cache.read().ok, 15_000, 5);
    } finally {
      await cache.stop();
    }
    const whole = await readWorld(kv, 30_000, 0);
    expect(whole.ok && whole.value.world.last_seq).toBe(9);
    expect(whole.ok && whole.value.world.nodes["n1"]?.status).toBe("stale");
    expect(await readWorldNodes(kv, ["n1"], 0)).toMatchObject({ ok: true, value: { world: { nodes: { n1: { status: "stale" } } } } });
    const none = await readWorldNodes(kv, ["n1", "never-reported"], 0);
    expect(none.ok && Object.keys(none.value.world.nodes)).toEqual(["n1"]);
  });

  it("a one-shot read of a store left torn answers as soon as the writer has been quiet, not after a settling wait", async () => {
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(world(3, 7), T);
    await kv.put(worldNodeKey("n1"), JSON.stringify({ ...node("n1"), status: "stale" }));
    // Allowed to wait a minute for a header: it waits only while the record is younger than the writer's quiet time.
    const t0 = Date.now();
    expect(await readWorld(kv, 30_000, 60_000)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    expect(await readWorldNodes(kv, ["n1"], 60_000)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it("missing, torn and incomplete stores are typed failures, never an empty world", async () => {
    expect(await readWorld(kv)).toMatchObject({ ok: false, reason: "snapshot_missing" });
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    await writer.write(world(3), T);
    await kv.put(worldNodeKey("n1"), '{"name":"n1","stat');
    await kv.put(WORLD_HEADER_KEY, (await kv.get(WORLD_HEADER_KEY))?.string() ?? "");
    const torn = await readWorld(kv);
    expect(torn).toMatchObject({ ok: false, reason: "snapshot_invalid" });
    expect(!torn.ok && torn.detail).toContain("world.node.n1");
    await kv.purge(worldNodeKey("n1"));
    await kv.put(WORLD_HEADER_KEY, (await kv.get(WORLD_HEADER_KEY))?.string() ?? "");
    expect(await readWorld(kv)).toMatchObject({ ok: false, reason: "snapshot_incomplete", detail: expect.stringContaining("incomplete") });
    expect(await readWorldNodes(kv, ["n2"])).toMatchObject({ ok: true, value: { world: { nodes: { n2: { name: "n2" } } } } });
  });

  it("a fresh writer removes node records the world no longer has, and the legacy single-value key", async () => {
    await createWorldWriter({ kv, observerId: "a" }).write(world(5), T);
    await kv.put(LEGACY_WORLD_KEY, "{}");
    const second = createWorldWriter({ kv, observerId: "b" });
    const r = await second.write(world(2, 9), T);
    expect(r).toMatchObject({ nodesWritten: 2, nodesDeleted: 3, revision: 2 });
    const back = await readWorld(kv);
    expect(back.ok && Object.keys(back.value.world.nodes).sort()).toEqual(["n0", "n1"]);
    expect((await kv.get(LEGACY_WORLD_KEY))?.operation).not.toBe("PUT");
  });
});

describe("drift store", () => {
  const drift = (node: string, i: number): Drift => ({
    key: `unknown:${node}/svc-${i}`,
    kind: "unknown",
    node,
    service: `svc-${i}`,
    severity: "alert",
    message: `node ${node} is stale (last heartbeat ${T}): state of svc-${i} is unknown`,
    since: T,
    proposes: null,
  });
  const report = (nodes: number, perNode = 20): DriftReport => ({
    computed_at: T,
    snapshot_written_at: T,
    world_seq: 7,
    supervisor_id: "sup",
    skipped: null,
    drifts: Array.from({ length: nodes }, (_, n) => Array.from({ length: perNode }, (_, i) => drift(`n${n}`, i))).flat().sort((a, b) => (a.key < b.key ? -1 : 1)),
  });

  it("an outage of every node (thousands of findings, well over 1 MiB) is published and read back", async () => {
    const big = report(400);
    expect(JSON.stringify(big).length).toBeGreaterThan(1024 * 1024);
    const writer = createDriftWriter(kv);
    expect(await writer.write(big)).toEqual({ nodesWritten: 400, nodesDeleted: 0 });
    const back = await readDrift(kv);
    expect(back).toEqual({ ok: true, value: big });
    // Unchanged nodes are not written again; a node whose findings cleared is removed.
    const smaller = { ...big, drifts: big.drifts.filter((d) => d.node !== "n3") };
    expect(await writer.write(smaller)).toEqual({ nodesWritten: 0, nodesDeleted: 1 });
    expect(await readDrift(kv)).toEqual({ ok: true, value: smaller });
  });

  it("writeNodes writes only the named nodes (none: removed), then the header; a fresh writer writes whole first", async () => {
    await createDriftWriter(kv).write(report(5, 2));
    const writer = createDriftWriter(kv);
    const r = report(3, 2);
    const byNode = (rep: DriftReport) => {
      const m = new Map<string, Drift[]>();
      for (const d of rep.drifts) m.set(d.node, [...(m.get(d.node) ?? []), d]);
      return m;
    };
    // Not yet primed: whole (removes n3 and n4 a previous leader left).
    expect(await writer.writeNodes(r, byNode(r), [])).toEqual({ nodesWritten: 3, nodesDeleted: 2 });
    expect(await readDrift(kv)).toEqual({ ok: true, value: r });
    const revision = async (n: string) => {
      const e = await kv.get(driftNodeKey(n));
      return e?.operation === "PUT" ? e.revision : undefined;
    };
    const revs = async () => Promise.all(["n0", "n1", "n2"].map(revision));
    const [r0, r1] = await revs();
    const changed: DriftReport = { ...r, computed_at: "2026-12-01T00:00:09.000Z", drifts: [...r.drifts.filter((d) => d.node !== "n2"), { ...drift("n0", 5) }].sort((a, b) => (a.key < b.key ? -1 : 1)) };
    // n0 gained a finding, n2 lost its findings; n1 is named but unchanged: not written again.
    expect(await writer.writeNodes(changed, byNode(changed), ["n0", "n1", "n2"])).toEqual({ nodesWritten: 1, nodesDeleted: 1 });
    const [a0, a1, a2] = await revs();
    expect(a0).not.toBe(r0);
    expect(a1).toBe(r1);
    expect(a2).toBeUndefined();
    expect(await readDrift(kv)).toEqual({ ok: true, value: changed });
    // Nothing named: the header alone.
    const skipped = { ...changed, skipped: { at: T, reason: "snapshot_missing: x" } };
    expect(await writer.writeNodes(skipped, new Map(), [])).toEqual({ nodesWritten: 0, nodesDeleted: 0 });
    expect(await readDrift(kv)).toEqual({ ok: true, value: skipped });
  });

  it("a watcher sees each report once its header is written; no report is drift_missing", async () => {
    expect(await readDrift(kv)).toMatchObject({ ok: false, reason: "drift_missing" });
    const cache = watchDrift(kv);
    try {
      await cache.ready();
      await createDriftWriter(kv).write(report(3, 2));
      await waitFor("report", () => cache.read().ok);
      const r = cache.read();
      expect(r.ok && r.value.drifts).toHaveLength(6);
      expect((await kv.get(DRIFT_HEADER_KEY))?.json()).toMatchObject({ drift_count: 6 });
    } finally {
      await cache.stop();
    }
  });
});
