#!/usr/bin/env node
// A fresh observer replaying a long events stream (issue 11), not a test: `npx tsc -b && node bench/replay.js
// [--events 1000000] [--baseline 100000] [--sample 5] [--heapsnapshot DIR]`.
// One nats-server of its own. The real event mix of a 1,000-node fleet (bench/lib/sim-fleet.js: 20-service heartbeats
// with 20 check samples, host reports, service and health-check changes, 3 : 1 : 3) is published into the events
// stream in two steps: first --baseline events, replayed; then the rest up to --events, and the whole stream replayed.
// Each replay: the real observer as its own process (built main.js), from empty (no snapshot file, the world bucket
// deleted), until the world store's header says last_seq = the stream's last sequence. Measured: wall time from spawn
// to caught up, events/s (whole run, and from the 10 % mark), the observer's CPU and peak RSS (VmHWM), and the raw
// JetStream consume rate of the same messages (an ordered consumer doing nothing) as the ceiling. Then a spot check:
// --sample nodes' events read back from the stream and folded with the observer's own pure reducer must equal, field
// for field, those nodes' records in the world store; the header must count every event and node.
// Staleness is switched off in the observer (MISSED_HEARTBEATS very high): the events are minutes old by the time
// they are replayed, and a stale mark (with the clock's time in it) would make the store differ from the pure fold.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, jetstream, jetstreamManager, openWorldBucket } from "@steward/platform/bus";
import { EVENTS_STREAM, WORLD_HEADER_KEY, nodeEventsSubjects } from "@steward/contracts/subjects";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";
import { NodeState, emptyWorld } from "@steward/contracts/world-state";
import { readWorldNodes } from "@steward/world/world-store";
import { clearWorldStore } from "@steward/world/testing";
import { decodeEventMessage, foldInto } from "@steward/observer";
import { freePort, startNats, stopProcess } from "@steward/testkit";
import { mixPublisher } from "./lib/sim-fleet.js";
import { heapSnapshot, loadAverage, machineLine, procStat } from "./lib/measure.js";

const { values } = parseArgs({ options: { events: { type: "string", default: "1000000" }, baseline: { type: "string", default: "100000" }, sample: { type: "string", default: "5" }, heapsnapshot: { type: "string" } } });
const TOTAL = Number(values.events);
const BASE = Math.min(Number(values.baseline), TOTAL);
const SAMPLE = Number(values.sample);
const observerMain = fileURLToPath(import.meta.resolve("@steward/observer/main"));
const log = (...a) => console.log(...a);

/** An ordered consumer reading every message of the stream, doing nothing with them: the ceiling. */
async function rawConsume(js, n) {
  const mark = Math.floor(n / 10);
  const oc = await js.consumers.get(EVENTS_STREAM);
  const msgs = await oc.consume();
  const s0 = performance.now();
  let got = 0, t = s0;
  for await (const m of msgs) {
    void m;
    if (++got === mark) t = performance.now();
    if (got >= n) break;
  }
  const end = performance.now();
  return { whole_per_s: Math.round(n / ((end - s0) / 1000)), from10_per_s: Math.round((n - mark) / ((end - t) / 1000)) };
}

/** A fresh observer from empty, until the world store's header reaches the stream's last sequence. */
async function replay(nc, url, dir, label) {
  const jsm = await jetstreamManager(nc);
  const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
  // From empty: no world in the store (every record purged, as bench/run.js does), a snapshot path with no file.
  const kv = await openWorldBucket(nc);
  await clearWorldStore(kv);
  const metricsPort = await freePort();
  const cwd = values.heapsnapshot ?? dir;
  // The flags the product runs the observer with (steward up, compose).
  const flags = [...OBSERVER_NODE_FLAGS, ...(values.heapsnapshot ? ["--heapsnapshot-signal=SIGUSR2"] : [])];
  const env = { PATH: process.env.PATH, NATS_URL: url, LOG_LEVEL: "warn", METRICS_PORT: String(metricsPort), SNAPSHOT_PATH: join(dir, `world-${label}.json`), MISSED_HEARTBEATS: "1000000" };
  let tail = "";
  const t0 = performance.now();
  const observer = spawn(process.execPath, [...flags, observerMain], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const keep = (d) => (tail = (tail + d.toString()).slice(-8_000));
  observer.stdout.on("data", keep);
  observer.stderr.on("data", keep);
  const header = async () => {
    const e = await kv.get(WORLD_HEADER_KEY).catch(() => null);
    return e && e.operation === "PUT" ? JSON.parse(e.string()) : undefined;
  };
  let hwm = 0, cpuS = 0, tMark, seqMark, lastProgress = performance.now() - 15_000, seqSeen = 0;
  try {
    // Not testkit's waitFor: it retries through errors, and an observer that died must end the run at once.
    for (;;) {
      if (observer.exitCode !== null || observer.signalCode !== null) throw new Error(`${label}: observer exited (${observer.exitCode ?? observer.signalCode}): ${tail}`);
      const s = await procStat(observer.pid);
      hwm = Math.max(hwm, s.hwmMb);
      cpuS = s.cpuS;
      const h = await header();
      const seq = h?.last_seq ?? seqSeen;
      seqSeen = seq;
      if (tMark === undefined && seq >= last / 10) {
        tMark = performance.now();
        seqMark = seq;
      }
      if (performance.now() - lastProgress > 20_000) {
        lastProgress = performance.now();
        log(`  ${label}: ${seq} / ${last} after ${((performance.now() - t0) / 1000).toFixed(0)} s, RSS ${s.rssMb.toFixed(0)} MB, load ${loadAverage()}${seq === 0 ? `; observer output: ${tail.slice(-600)}` : ""}`);
      }
      if (seq >= last) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const wallS = (performance.now() - t0) / 1000;
    const fromMarkS = (performance.now() - tMark) / 1000;
    let h;
    while (!h) h = await header();
    if (values.heapsnapshot) {
      const snap = await heapSnapshot(observer.pid, values.heapsnapshot);
      log(`  ${label}: heap snapshot ${snap.file} (${snap.sizeMb.toFixed(0)} MB)`);
    }
    return {
      events: last,
      wall_s_to_caught_up: +wallS.toFixed(1),
      events_per_s_whole: Math.round(last / wallS),
      events_per_s_from_10pct: Math.round((last - seqMark) / fromMarkS),
      observer_cpu_s: +cpuS.toFixed(1),
      observer_cpu_pct_of_core: +((cpuS / wallS) * 100).toFixed(0),
      peak_rss_mb: +hwm.toFixed(0),
      header: { last_seq: h.last_seq, events_applied: h.events_applied, node_count: h.node_count, revision: h.revision },
      spot: await spotCheck(url, h),
      load_after: loadAverage(),
    };
  } finally {
    await stopProcess(observer, 30_000);
  }
}

/** Sorted keys all the way down, so two records compare by content, not by key order. */
const canonical = (v) => JSON.stringify(v, (_k, x) => (x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

/** `SAMPLE` nodes spread over the fleet: each one's events from the stream, folded by the pure reducer, against its record. */
async function spotCheck(url, header) {
  const nc = await connectNats(url, "bench-replay-check");
  try {
  const kv = await openWorldBucket(nc);
  const js = jetstream(nc);
  const names = Array.from({ length: SAMPLE }, (_, i) => `node-${String(Math.floor(((i + 0.5) * 1000) / SAMPLE)).padStart(4, "0")}`);
  const stored = await readWorldNodes(kv, names);
  if (!stored.ok) return { ok: false, detail: `${stored.reason}: ${stored.detail}` };
  const mismatched = [];
  let folded = 0;
  for (const name of names) {
    const world = emptyWorld();
    const oc = await js.consumers.get(EVENTS_STREAM, { filter_subjects: nodeEventsSubjects(name) });
    // A node with no events in a short stream: nothing to read (consume would wait for its first).
    const pending = (await oc.info()).num_pending;
    const msgs = pending > 0 ? await oc.consume() : [];
    for await (const m of msgs) {
      const d = decodeEventMessage(m.subject, m.data);
      if (d.ok) foldInto(world, d.event, { seq: m.seq, traceparent: m.headers?.get("traceparent") || undefined });
      folded++;
      if (m.info.pending === 0) break;
    }
    const want = world.nodes[name] ? canonical(NodeState.parse(JSON.parse(JSON.stringify(world.nodes[name])))) : undefined;
    const got = stored.value.world.nodes[name] ? canonical(stored.value.world.nodes[name]) : undefined;
    if (want !== got) mismatched.push(name);
  }
  const whole = header.last_seq === header.events_applied && header.node_count === Math.min(1000, header.last_seq);
  return { ok: mismatched.length === 0 && whole, nodes: names.length, events_folded: folded, mismatched, header_counts_every_event: whole };
  } finally {
    await nc.close();
  }
}

log(`# Steward replay bench, ${new Date().toISOString()}`);
log(machineLine({ load: true }));
log(`command: node bench/replay.js --events ${TOTAL} --baseline ${BASE} --sample ${SAMPLE}${values.heapsnapshot ? ` --heapsnapshot ${values.heapsnapshot}` : ""}`);
const nats = await startNats();
const nc = await connectNats(nats.url, "bench-replay");
const dir = await mkdtemp(join(tmpdir(), "steward-bench-replay-"));
try {
  await ensureStreams(nc);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const mix = mixPublisher(js);
  const results = [];
  for (const [label, upTo] of [["baseline", BASE], ["full", TOTAL]]) {
    const have = (await jsm.streams.info(EVENTS_STREAM)).state.messages;
    const p0 = performance.now();
    await mix.publish(upTo - have);
    const publishS = (performance.now() - p0) / 1000;
    const info = (await jsm.streams.info(EVENTS_STREAM)).state;
    log(`${label}: stream holds ${info.messages} events (${(info.bytes / 2 ** 20).toFixed(0)} MB), published ${upTo - have} at ${Math.round((upTo - have) / publishS)}/s; load ${loadAverage()}`);
    const raw = await rawConsume(js, info.messages);
    log(`${label}: raw consume ${JSON.stringify(raw)}`);
    const r = { label, stream_mb: +(info.bytes / 2 ** 20).toFixed(0), raw, ...(await replay(nc, nats.url, dir, label)) };
    r.fold_vs_raw_from_10pct = +(r.events_per_s_from_10pct / raw.from10_per_s).toFixed(3);
    results.push(r);
    log(`${label}: ${JSON.stringify(r)}`);
    if (TOTAL === BASE) break;
  }
  const [b, f] = results;
  if (f) {
    const x = (a, c) => (a / c).toFixed(2);
    log(`| events | stream | wall to caught up | events/s (whole / from 10 %) | raw consume/s (from 10 %) | fold ÷ raw | observer CPU | peak RSS | spot check |`);
    log(`| --- | --- | --- | --- | --- | --- | --- | --- | --- |`);
    for (const r of results) log(`| ${r.events} | ${r.stream_mb} MB | ${r.wall_s_to_caught_up} s | ${r.events_per_s_whole} / ${r.events_per_s_from_10pct} | ${r.raw.from10_per_s} | ${r.fold_vs_raw_from_10pct} | ${r.observer_cpu_s} s (${r.observer_cpu_pct_of_core} %) | ${r.peak_rss_mb} MB | ${r.spot.ok ? "equal" : "DIFFERENT"} (${r.spot.nodes} nodes) |`);
    log(`full ÷ baseline: events ×${x(f.events, b.events)}, wall ×${x(f.wall_s_to_caught_up, b.wall_s_to_caught_up)}, events/s ×${x(f.events_per_s_whole, b.events_per_s_whole)}, peak RSS ×${x(f.peak_rss_mb, b.peak_rss_mb)}`);
  }
} finally {
  await nc.close().catch(() => undefined);
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
