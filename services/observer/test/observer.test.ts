import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { DLQ_STREAM, EVENTS_STREAM, OBSERVER_DURABLE, eventSubject } from "@steward/contracts/subjects";
import { DeadLetter, NodeEvent } from "@steward/contracts/events";
import { connectNats, ensureStreams, jetstream, jetstreamManager, openWorldBucket, traceHeaders, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { emptyWorld, type WorldState } from "@steward/contracts/world-state";
import { initTracing, withSpan } from "@steward/platform/tracing";
import { silentLogger } from "@steward/platform/logger";
import { pino } from "pino";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createObserver, type Observer, type ObserverSettings } from "../src/observer.js";
import { reduceWorld } from "../src/reduce.js";
import { loadSnapshotFromFile as readSnapshotFile } from "@steward/world/read";
import { clearWorldStore } from "@steward/world/testing";
import { readWorld } from "@steward/world/world-store";
import { makeEvents, publishEvents, withoutSeq } from "./helpers.js";

const exporter = new InMemorySpanExporter();
const tracing = initTracing({ component: "observer-test", exporter });

let nats: NatsServerHandle;
let nc: NatsConnection;
let dir: string;
const running: Observer[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "observer-test-"));
});
afterAll(async () => {
  await tracing.shutdown();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "observer-test");
  await ensureStreams(nc);
});
afterEach(async () => {
  for (const o of running.splice(0)) await o.stop().catch(() => undefined);
  await nc.close();
  await nats.stop();
});

function settings(name: string, over: Partial<ObserverSettings> = {}): ObserverSettings {
  return {
    snapshotPath: join(dir, name, "world.json"),
    observerId: name,
    snapshotDebounceMs: 10,
    staleCheckMs: 50,
    missedHeartbeats: 3,
    snapshotMaxIntervalMs: 5000,
    streamReplicas: 1,
    ...over,
  };
}

async function startObserver(cfg: ObserverSettings, registry: Registry = createRegistry("observer", false)): Promise<Observer> {
  const o = createObserver({ config: cfg, nc, logger: silentLogger(), registry });
  await o.start();
  running.push(o);
  return o;
}

async function stopObserver(o: Observer): Promise<void> {
  await o.stop();
  running.splice(running.indexOf(o), 1);
}

async function streamLastSeq(): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
}

async function caughtUp(o: Observer, seq?: number): Promise<WorldState> {
  const target = seq ?? (await streamLastSeq());
  return waitFor(`observer at seq ${target}`, () => o.world().last_seq >= target && o.world(), 15_000, 10);
}

function pureFold(events: NodeEvent[]): WorldState {
  return events.reduce((w, e, i) => reduceWorld(w, e, { seq: i + 1 }), emptyWorld());
}

describe("replay", () => {
  it("incremental processing with restarts equals a full replay and the pure fold; duplicates change nothing", async () => {
    const events = makeEvents(300, { seed: 7, nodes: ["n1", "n2", "n3"] });
    const expected = pureFold(events);
    const cfgA = settings("replay-a");

    await publishEvents(nc, events.slice(0, 100));
    let a = await startObserver(cfgA);
    await caughtUp(a);
    await stopObserver(a);

    await publishEvents(nc, events.slice(100, 200));
    // Same Nats-Msg-Id again: JetStream drops them, the stream does not grow.
    const before = await streamLastSeq();
    await publishEvents(nc, events.slice(150, 160));
    expect(await streamLastSeq()).toBe(before);
    a = await startObserver(cfgA);
    // Published while the observer runs: new events, and re-sent ones with a new Nats-Msg-Id (the same event id).
    await publishEvents(nc, events.slice(200, 250));
    await publishEvents(nc, events.slice(230, 240), (e) => `${e.id}-resent`);
    await caughtUp(a);
    await stopObserver(a);

    await publishEvents(nc, events.slice(250, 300));
    a = await startObserver(cfgA);
    await stopObserver(a); // stopped right away, most likely part-way through
    a = await startObserver(cfgA);
    const incremental = await caughtUp(a);
    await stopObserver(a);
    expect(incremental.last_seq).toBe(310);
    expect(incremental.events_applied).toBe(300);
    expect(withoutSeq(incremental)).toStrictEqual(withoutSeq(expected));

    const onDisk = await readSnapshotFile(cfgA.snapshotPath);
    expect(onDisk.ok && onDisk.value.world).toStrictEqual(incremental);

    // A full replay: fresh file and no KV snapshot.
    const kv = await openWorldBucket(nc);
    await clearWorldStore(kv);
    const b = await startObserver(settings("replay-b"));
    const replayed = await caughtUp(b, incremental.last_seq);
    expect(replayed).toStrictEqual(incremental);
    await stopObserver(b);
  });

  it("an observer cut off while nodes' restatements wait for their write (its header trails the records) is resumed exactly from the world store", async () => {
    // Few events per node (fewer than a node lists ids of), so a lost or doubled fold shows in the comparison.
    const nodes = Array.from({ length: 200 }, (_, i) => `l${String(i).padStart(3, "0")}`);
    const events = makeEvents(2000, { seed: 21, nodes });
    const expected = pureFold(events);
    // On its own connection, cut below as a kill -9 would; a liveness budget small enough that many nodes wait.
    const ncA = await connectNats(nats.url, "observer-cut-off");
    const a = createObserver({ config: settings("liveness-a", { livenessWritesPerS: 2, livenessMaxAgeMs: 600_000 }), nc: ncA, logger: silentLogger(), registry: createRegistry("observer", false) });
    await a.start();
    try {
      await publishEvents(nc, events);
      await caughtUp(a, events.length);
      const kv = await openWorldBucket(nc);
      const stored = await readWorld(kv);
      // Folded to the end, written only up to where the first waiting node's unwritten part starts.
      expect(stored.ok && stored.value.world.last_seq).toBeLessThan(events.length);
      expect(stored.ok && stored.value.world.last_seq).toBeGreaterThan(0);
      await ncA.close();

      const b = await startObserver(settings("liveness-b"));
      const resumed = await caughtUp(b, events.length);
      expect(resumed).toStrictEqual(expected);
    } finally {
      await a.stop().catch(() => undefined);
    }
  });

  it.each(["gone", "truncated"])("resumes from the KV snapshot when the file is %s", async (what) => {
    const events = makeEvents(40, { seed: 3, nodes: ["k1"] });
    await publishEvents(nc, events.slice(0, 20));
    const cfg = settings(`kv-${what}`);
    const first = await startObserver(cfg);
    await caughtUp(first);
    await stopObserver(first);
    await publishEvents(nc, events.slice(20));
    if (what === "gone") await rm(cfg.snapshotPath);
    else await writeFile(cfg.snapshotPath, (await readFile(cfg.snapshotPath, "utf8")).slice(0, 50));
    const registry = createRegistry("observer", false);
    const second = await startObserver(cfg, registry);
    // The second observer starts from the KV snapshot (seq 20), so it folds only the 20 newer events.
    const w = await caughtUp(second);
    expect(withoutSeq(w)).toStrictEqual(withoutSeq(pureFold(events)));
    const folded = (await registry.getSingleMetric("steward_observer_events_folded_total")?.get())?.values.reduce((s, v) => s + v.value, 0);
    expect(folded).toBe(20);
  });

  it("a snapshot ahead of the stream (stream recreated) keeps the world and folds the new stream on top", async () => {
    // No stale checks during this test: the old node has no heartbeat and would otherwise go stale at the first tick.
    const cfg = settings("ahead", { staleCheckMs: 60_000, snapshotMaxIntervalMs: 60_000 });
    const old = pureFold(makeEvents(10, { seed: 21, nodes: ["a1"], startMs: Date.now() - 60_000 }));
    await mkdir(dirname(cfg.snapshotPath), { recursive: true });
    await writeFile(cfg.snapshotPath, JSON.stringify({ world: { ...old, last_seq: 1000 }, written_at: new Date().toISOString(), observer_id: "old" }));
    const fresh = makeEvents(5, { seed: 22, nodes: ["a2"] });
    await publishEvents(nc, fresh);
    const o = await startObserver(cfg);
    const w = await caughtUp(o, 5);
    expect(w.last_seq).toBe(5);
    expect(w.nodes["a1"]).toStrictEqual(old.nodes["a1"]);
    expect(w.nodes["a2"]).toStrictEqual(pureFold(fresh).nodes["a2"]);
  });
});

describe("stale nodes", () => {
  it("a node whose heartbeats stop becomes stale with its services unknown; a new heartbeat brings it back", async () => {
    const cfg = settings("stale");
    const o = await startObserver(cfg);
    const js = jetstream(nc);
    const beat = (i: number, state: "running" | "exited") =>
      NodeEvent.parse({
        type: "heartbeat",
        id: `hb-stale-${i}`,
        node: "s1",
        ts: new Date().toISOString(),
        interval_ms: 100,
        started_at: new Date(0).toISOString(),
        services: [{ service: "web", state, health: state === "running" ? "healthy" : "none" }],
      });
    let lastBeat = 0;
    for (let i = 0; i < 3; i++) {
      const e = beat(i, "running");
      lastBeat = Date.parse(e.ts);
      const ack = await js.publish(eventSubject("s1", "heartbeat"), JSON.stringify(e), { msgID: e.id });
      await waitFor(`heartbeat ${i} folded`, () => o.world().last_seq >= ack.seq, 5000, 10);
    }
    await waitFor("node up", () => o.world().nodes["s1"]?.status === "up");
    const stale = await waitFor("node stale", () => o.world().nodes["s1"]?.status === "stale" && o.world(), 5000, 10);
    expect(Date.now() - lastBeat).toBeGreaterThanOrEqual(300);
    expect(stale.nodes["s1"]?.services["web"]).toMatchObject({ state: "unknown", health: "unknown" });
    expect(stale.nodes["s1"]?.services["web"]?.detail).toMatch(/last known: running\/healthy/);
    const file = await waitFor("stale snapshot on disk", async () => {
      const r = await readSnapshotFile(cfg.snapshotPath);
      return r.ok && r.value.world.nodes["s1"]?.status === "stale" && r.value;
    });
    expect(file.world.nodes["s1"]?.services["web"]?.state).toBe("unknown");

    const back = beat(9, "exited");
    await js.publish(eventSubject("s1", "heartbeat"), JSON.stringify(back), { msgID: back.id });
    const up = await waitFor("node up again", () => o.world().nodes["s1"]?.status === "up" && o.world());
    expect(up.nodes["s1"]?.services["web"]).toMatchObject({ state: "exited", health: "none" });
  });

  it("an observer behind the stream does not call nodes stale for heartbeats it has not folded yet; caught up, silence counts", async () => {
    // 100 agents beat 25 times while no observer runs, and the observer starts a minute later (its clock says so): a
    // backlog of 2,500 heartbeats, several of the consumer's batches, so the stale check runs between them. Judged
    // against the observer's clock, every node the catch-up had not reached yet was a minute silent and marked stale
    // (and came back a moment later): a false fleet-wide outage after every observer restart.
    const INTERVAL = 500;
    const LATER_MS = 60_000;
    const nodes = Array.from({ length: 100 }, (_, i) => `behind-${i}`);
    const js = jetstream(nc);
    const beat = (node: string, round: number) =>
      NodeEvent.parse({ type: "heartbeat", id: `hb-${node}-${round}`, node, ts: new Date().toISOString(), interval_ms: INTERVAL, started_at: new Date(0).toISOString(), services: [{ service: "web", state: "running", health: "healthy" }] });
    let lastSeq = 0;
    for (let round = 0; round < 25; round++) {
      const acks = await Promise.all(nodes.map((node) => js.publish(eventSubject(node, "heartbeat"), JSON.stringify(beat(node, round)), { msgID: `hb-${node}-${round}` })));
      lastSeq = Math.max(lastSeq, ...acks.map((a) => a.seq));
    }

    // Each "nodes stale" line, with where the observer was in the stream when it said so.
    const staleLines: { count: number; seq: number }[] = [];
    const ref: { observer?: Observer } = {};
    const logger = pino({ level: "warn" }, {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; count?: number };
        if (entry.msg?.startsWith("nodes stale")) staleLines.push({ count: entry.count ?? 0, seq: ref.observer?.world().last_seq ?? -1 });
      },
    });
    const o = createObserver({ config: settings("behind", { staleCheckMs: 5, missedHeartbeats: 10 }), nc, logger, registry: createRegistry("observer", false), clock: () => new Date(Date.now() + LATER_MS) });
    ref.observer = o;
    await o.start();
    running.push(o);
    await caughtUp(o, lastSeq);
    expect(Object.keys(o.world().nodes)).toHaveLength(100);
    // Caught up, the agents' minute of silence counts: every node goes stale (the check does run), and only now.
    await waitFor("every node stale once caught up", () => nodes.every((n) => o.world().nodes[n]?.status === "stale"), 30_000, 10);
    expect(staleLines.length).toBeGreaterThan(0);
    for (const line of staleLines) expect(line.seq, `a stale line at seq ${line.seq} of ${lastSeq}`).toBe(lastSeq);
    expect(staleLines.reduce((a, l) => a + l.count, 0)).toBe(100);
  });

  it("writes a snapshot even when idle, so written_at shows the observer is alive", async () => {
    const cfg = settings("idle", { snapshotMaxIntervalMs: 100 });
    const startedAt = Date.now();
    await startObserver(cfg);
    const kv = await openWorldBucket(nc);
    // This observer's own first write: a read before it can still hold an earlier test's world (another last_seq),
    // which a busy machine made this test wait on for ever.
    const first = await waitFor("this observer's first write to the world store", async () => {
      const r = await readWorld(kv);
      return r.ok && Date.parse(r.value.written_at) >= startedAt && r;
    }, 30_000);
    // Readers judge liveness by the store's written_at: it moves every snapshotMaxIntervalMs with nothing folded.
    await waitFor("a newer idle write to the world store", async () => {
      const r = await readWorld(kv);
      return r.ok && r.value.world.last_seq === first.value.world.last_seq && Date.parse(r.value.written_at) >= Date.parse(first.value.written_at) + 150;
    }, 15_000);
    // The file follows once due: its interval adapts to what a file costs (up to 30 s on a busy machine).
    const file = await readSnapshotFile(cfg.snapshotPath);
    if (!file.ok) throw new Error(`snapshot file: ${file.detail}`);
    await waitFor("a newer idle snapshot file", async () => {
      const r = await readSnapshotFile(cfg.snapshotPath);
      return r.ok && Date.parse(r.value.written_at) > Date.parse(file.value.written_at);
    }, 45_000);
  }, 90_000);
});

describe("malformed events", () => {
  it("dead-letters invalid JSON, schema-invalid and misaddressed events with their reason, changes nothing, keeps going", async () => {
    const registry = createRegistry("observer", false);
    const o = await startObserver(settings("malformed"), registry);
    const js = jetstream(nc);
    const good = makeEvents(2, { seed: 11, nodes: ["m1"] });
    const [g1, g2] = good as [NodeEvent, NodeEvent];
    await publishEvents(nc, [g1]);
    const w0 = await caughtUp(o);

    const bad: { subject: string; payload: string; reason: DeadLetter["reason"]; detail: RegExp }[] = [
      { subject: eventSubject("m1", "service"), payload: "{not json", reason: "invalid_json", detail: /JSON/ },
      { subject: eventSubject("m1", "service"), payload: JSON.stringify({ ...g1, id: "bad-state-1", type: "service", service: "web", state: "exploded", health: "none" }), reason: "schema", detail: /state/ },
      { subject: eventSubject("m1", "host"), payload: JSON.stringify({ type: "host", id: "no-load-01", node: "m1", ts: g1.ts, mem_used_pct: 5 }), reason: "schema", detail: /load1/ },
      { subject: eventSubject("m1", "service"), payload: JSON.stringify({ type: "service", id: "other-node-1", node: "m2", ts: g1.ts, service: "web", state: "running", health: "healthy" }), reason: "subject_mismatch", detail: /m1.*m2/ },
    ];
    const seqs: number[] = [];
    for (const [i, b] of bad.entries()) seqs.push((await js.publish(b.subject, b.payload, { msgID: `bad-${i}` })).seq);
    const after = await caughtUp(o, seqs.at(-1));
    // Only the stream position moved.
    expect(after).toStrictEqual({ ...w0, last_seq: seqs.at(-1) });

    const jsm = await jetstreamManager(nc);
    for (const [i, b] of bad.entries()) {
      const m = await waitFor(`dead letter ${i + 1}`, async () => (await jsm.streams.getMessage(DLQ_STREAM, { seq: i + 1 })) ?? undefined);
      const letter = DeadLetter.parse(m.json());
      expect(m.subject).toBe("steward.dlq.observer");
      expect(letter.reason).toBe(b.reason);
      expect(letter.detail).toMatch(b.detail);
      expect(letter.subject).toBe(b.subject);
      expect(letter.stream_seq).toBe(seqs[i]);
      expect(Buffer.from(letter.payload_b64, "base64").toString()).toBe(b.payload);
    }
    const counts = Object.fromEntries(((await registry.getSingleMetric("steward_observer_events_dead_lettered_total")?.get())?.values ?? []).map((v) => [v.labels["reason"], v.value]));
    expect(counts).toEqual({ invalid_json: 1, schema: 2, subject_mismatch: 1 });

    // Still folding good events afterwards.
    const seq = await publishEvents(nc, [g2]);
    const w = await caughtUp(o, seq);
    expect(w).toStrictEqual(reduceWorld(after, g2, { seq }));
    expect(w.events_applied).toBe(2);

    // Once the snapshot holding it is written, everything up to the last message is acked (AckAll).
    await waitFor("ack floor at the last message", async () => {
      const info = await jsm.consumers.info(EVENTS_STREAM, OBSERVER_DURABLE);
      return info.ack_floor.stream_seq === seq && info.num_ack_pending === 0;
    });
  });
});

describe("trace context", () => {
  it("folds under an observer.fold span that is a child of the probe span, and the world keeps the probe's traceparent", async () => {
    const o = await startObserver(settings("trace"));
    const [e] = makeEvents(1, { seed: 5, nodes: ["t1"] }) as [NodeEvent];
    const ev = NodeEvent.parse({ type: "service", id: e.id, node: "t1", ts: e.ts, service: "web", state: "running", health: "healthy" });
    const js = jetstream(nc);
    const probe = await withSpan("probe", {}, async (span) => {
      await js.publish(eventSubject("t1", "service"), JSON.stringify(ev), { msgID: ev.id, headers: traceHeaders() });
      return span.spanContext();
    });
    const w = await caughtUp(o);
    expect(w.nodes["t1"]?.services["web"]?.traceparent).toBe(`00-${probe.traceId}-${probe.spanId}-01`);
    const fold = await waitFor("observer.fold span", () => exporter.getFinishedSpans().find((s) => s.name === "observer.fold" && s.spanContext().traceId === probe.traceId));
    expect(fold.spanContext().traceId).toBe(probe.traceId);
    expect(fold.parentSpanContext?.spanId).toBe(probe.spanId);
  });
});
