#!/usr/bin/env node
// Observer CPU and memory at fleet scale (issue 11), not a test: `npx tsc -b && node bench/observer-scale.js
// [--nodes 100,1000,5000] [--window 20] [--changes 200] [--quick]`. Part of `npm run bench` (with --quick there).
// For each N: a real nats-server, the real observer as its own process (built main.js, with the node flags the product
// runs it with unless --variant says otherwise), and N simulated agents in this
// process sending what real agents send (bench/lib/sim-fleet.js): a heartbeat restating 20 services and 20 checks
// every 5 s, host metrics every 15 s. Two windows per N, CPU (share of one core) and RSS of the observer from /proc:
//   A (baseline, same run): that idle fleet alone;
//   B: the same plus --changes state changes per second (service exits/restarts and check flips, which the following
//      heartbeats restate).
// After B the publishing stops and the observer must fold the stream to its end (it kept up, or the lag is reported).
// Target at 1,000 × 20 with the changes on: under 15 % of one core and 200 MB.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, jetstream, jetstreamManager } from "@steward/platform/bus";
import { EVENTS_STREAM } from "@steward/contracts/subjects";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";
import { freePort, startNats, stopProcess, waitFor } from "@steward/testkit";
import { HEARTBEAT_MS, HOST_PROBE_MS, nodeNames, publishEvent, simFleet } from "./lib/sim-fleet.js";
import { machineLine, heapSnapshot, watchProcess } from "./lib/measure.js";

const { values } = parseArgs({ options: { nodes: { type: "string" }, window: { type: "string" }, changes: { type: "string", default: "200" }, quick: { type: "boolean", default: false }, heapsnapshot: { type: "string" }, variant: { type: "string", multiple: true } } });
const SIZES = (values.nodes ?? (values.quick ? "100,1000" : "100,1000,5000")).split(",").map(Number);
const WINDOW_S = Number(values.window ?? (values.quick ? "8" : "20"));
const CHANGES_PER_S = Number(values.changes);
const TICK_MS = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const main = (pkg) => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));

const sample = (text, name, labels = "") => {
  let n = NaN;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(labels)) n = (Number.isNaN(n) ? 0 : n) + Number(m[2]);
  return n;
};

let observerTail = "";
// FLEET_METRICS_MAX_SERIES passed through to the observer (e.g. 0: node series only, to see what the fleet gauges cost).
const fleetMetricsEnv = process.env.FLEET_METRICS_MAX_SERIES ? { FLEET_METRICS_MAX_SERIES: process.env.FLEET_METRICS_MAX_SERIES } : {};

// --variant 'LABEL=FLAGS' (repeatable): run the observer under each set of node flags in turn at every N, in the same
// run (e.g. `--variant 'v8-defaults=' --variant 'semi4=--max-semi-space-size=4'`). A last word ending in .js is the
// observer's entry point to run instead of the built one (a copy of an older build, for a before/after in one run).
// `--variant product` (and no --variant at all): the flags the product runs the observer with (OBSERVER_NODE_FLAGS).
const VARIANTS = (values.variant ?? ["product"]).map((v) => {
  const i = v.indexOf("=");
  const words = i < 0 ? (v === "product" ? [...OBSERVER_NODE_FLAGS] : []) : v.slice(i + 1).split(/\s+/).filter(Boolean);
  const entry = words.at(-1)?.endsWith(".js") ? words.pop() : undefined;
  // NAME=VALUE words (upper case) are the observer's settings for this variant, e.g. LIVENESS_WRITES_PER_S=0.
  const env = Object.fromEntries(words.filter((w) => /^[A-Z][A-Z0-9_]*=/.test(w)).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
  return { label: i < 0 ? v : v.slice(0, i), flags: words.filter((w) => !/^[A-Z][A-Z0-9_]*=/.test(w)), entry, env };
});

/** Where the observer's memory is, from its own /metrics (prom-client's default process and V8 gauges), in MB. */
function memoryOf(text) {
  const mb = (name, labels) => +(sample(text, name, labels) / 2 ** 20).toFixed(1);
  return {
    rss: mb("process_resident_memory_bytes"),
    heap_total: mb("nodejs_heap_size_total_bytes"),
    heap_used: mb("nodejs_heap_size_used_bytes"),
    external: mb("nodejs_external_memory_bytes"),
    new_space: mb("nodejs_heap_space_size_total_bytes", 'space="new"'),
    old_space: mb("nodejs_heap_space_size_total_bytes", 'space="old"'),
    old_used: mb("nodejs_heap_space_size_used_bytes", 'space="old"'),
    large_object: mb("nodejs_heap_space_size_total_bytes", 'space="large_object"'),
    code: mb("nodejs_heap_space_size_total_bytes", 'space="code"'),
    gc_minor: sample(text, "nodejs_gc_duration_seconds_count", 'kind="minor"'),
    gc_major: sample(text, "nodejs_gc_duration_seconds_count", 'kind="major"'),
    gc_s: +sample(text, "nodejs_gc_duration_seconds_sum").toFixed(2),
  };
}

async function runSize(n, variant) {
  observerTail = "";
  const nats = await startNats();
  const dir = await mkdtemp(join(tmpdir(), "steward-bench-observer-"));
  const nc = await connectNats(nats.url, "bench-observer-scale");
  let observer;
  let publishing = true;
  let publisher;
  try {
    await ensureStreams(nc);
    const port = await freePort();
    // --heapsnapshot DIR: the observer runs with --heapsnapshot-signal and writes a V8 heap snapshot into DIR at the end
    // of the window with changes (its working directory), for `node bench/heap-top.js` to read.
    const nodeFlags = [...variant.flags, ...(values.heapsnapshot ? ["--heapsnapshot-signal=SIGUSR2"] : [])];
    observer = spawn(process.execPath, [...nodeFlags, variant.entry ?? main("observer")], { ...(values.heapsnapshot ? { cwd: values.heapsnapshot } : {}), env: { PATH: process.env.PATH, NATS_URL: nats.url, LOG_LEVEL: "warn", METRICS_PORT: String(port), SNAPSHOT_PATH: join(dir, "world.json"), ...fleetMetricsEnv, ...variant.env }, stdio: ["ignore", "pipe", "pipe"] });
    // Its last output, cut (a warning can name thousands of nodes), to say why if it stops answering.
    const keep = (d) => (observerTail = (observerTail + d.toString()).slice(-20_000));
    observer.stdout.on("data", keep);
    observer.stderr.on("data", keep);
    const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();

    // The agents: each node's heartbeat and host metrics at their real intervals, spread evenly over them; state
    // changes at `changesPerS` when switched on. Fractions carry over between ticks, so the rates are exact.
    const js = jetstream(nc);
    const fleet = simFleet(nodeNames(n));
    const sent = { heartbeat: 0, host: 0, change: 0, failed: 0 };
    let changesPerS = 0;
    publisher = (async () => {
      let hb = 0, host = 0, ch = 0, hbCarry = 0, hostCarry = 0, chCarry = 0;
      let prev = Date.now();
      while (publishing) {
        const t = Date.now();
        // By the time that really passed (a tick can overrun on a busy machine), so the rates hold.
        const dt = Math.min(1000, t - prev);
        prev = t;
        const batch = [];
        const send = (e, kind) => batch.push(publishEvent(js, e).then(() => sent[kind]++, () => sent.failed++));
        hbCarry += (n * dt) / HEARTBEAT_MS;
        for (; hbCarry >= 1; hbCarry--) send(fleet.heartbeat(fleet.nodes[hb++ % n]), "heartbeat");
        hostCarry += (n * dt) / HOST_PROBE_MS;
        for (; hostCarry >= 1; hostCarry--) send(fleet.host(fleet.nodes[host++ % n]), "host");
        chCarry += (changesPerS * dt) / 1000;
        for (; chCarry >= 1; chCarry--, ch++) send(fleet.change(), "change");
        await Promise.all(batch);
        await sleep(Math.max(0, TICK_MS - (Date.now() - t)));
      }
    })();

    const t0 = Date.now();
    // A scrape that times out (a loaded machine, a big fleet) is asked again, not the end of the run.
    await waitFor("every node up in the observer's world", async () => sample(await metrics().catch(() => ""), "steward_observer_nodes", 'status="up"') === n, 600_000, 500);
    const warmupS = (Date.now() - t0) / 1000;
    // One more full heartbeat round, so every node has been rewritten once after the first write of the world.
    await sleep(HEARTBEAT_MS);

    const written = async () => sample(await metrics().catch(() => ""), "steward_observer_world_nodes_written_total");
    const window = async () => {
      const w0 = await written();
      const c0 = { ...sent };
      const { windowS: secs, cpuShare, rssMaxMb: rssMax } = await watchProcess(observer.pid, WINDOW_S);
      const w1 = await written();
      const rate = (k) => +((sent[k] - c0[k]) / secs).toFixed(1);
      return {
        events_per_s: +((sent.heartbeat + sent.host + sent.change - c0.heartbeat - c0.host - c0.change) / secs).toFixed(0),
        heartbeats_per_s: rate("heartbeat"),
        host_per_s: rate("host"),
        changes_per_s: rate("change"),
        // Node records written to the world store (the liveness budget keeps restatements below the heartbeat rate).
        node_writes_per_s: +((w1 - w0) / secs).toFixed(1),
        cpu_pct_of_core: +(cpuShare * 100).toFixed(1),
        rss_mb_max: +rssMax.toFixed(0),
        load1: +loadavg()[0].toFixed(1),
      };
    };
    const idle = await window();
    changesPerS = CHANGES_PER_S;
    await sleep(2000);
    const busy = await window();
    // One scrape after the windows (a scrape allocates too, so none during them).
    const memory = memoryOf(await metrics().catch(() => ""));
    if (values.heapsnapshot) {
      const snap = await heapSnapshot(observer.pid, values.heapsnapshot);
      console.log(`heap snapshot at N = ${n}: ${snap.file} (${snap.sizeMb.toFixed(0)} MB)`);
    }
    publishing = false;
    await publisher;

    // Did it keep up? The stream's end must be folded soon after the publishing stops.
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const s0 = Date.now();
    await waitFor("the observer at the stream's end", async () => sample(await metrics().catch(() => ""), "steward_observer_last_seq") >= last, 600_000, 100);
    const text = await metrics();
    return {
      variant: variant.label,
      flags: [...variant.flags, ...Object.entries(variant.env).map(([k, v]) => `${k}=${v}`)].join(" "),
      ...(variant.entry ? { entry: variant.entry } : {}),
      nodes: n,
      services: n * fleet.services.length,
      warmup_s: +warmupS.toFixed(1),
      idle,
      with_changes: busy,
      caught_up_ms_after_stop: Date.now() - s0,
      kv_write_errors: sample(text, "steward_observer_snapshot_write_errors_total") || 0,
      file_interval_s: +sample(text, "steward_observer_snapshot_file_interval_seconds").toFixed(2),
      publish_failures: sent.failed,
      memory_after_windows_mb: memory,
    };
  } catch (err) {
    const exit = observer?.exitCode ?? observer?.signalCode;
    console.error(`N = ${n}: ${err.message}; observer ${exit === null || exit === undefined ? "still running" : `exited (${exit})`}, its last output:\n${observerTail.split("\n").map((l) => l.slice(0, 400)).join("\n")}`);
    throw err;
  } finally {
    publishing = false;
    await publisher?.catch(() => undefined);
    if (observer) await stopProcess(observer).catch(() => undefined);
    await nc.close().catch(() => undefined);
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`# Steward observer-scale bench, ${new Date().toISOString()}`);
console.log(machineLine({ load: true }));
console.log(`command: ${fleetMetricsEnv.FLEET_METRICS_MAX_SERIES ? `FLEET_METRICS_MAX_SERIES=${fleetMetricsEnv.FLEET_METRICS_MAX_SERIES} ` : ""}node bench/observer-scale.js --nodes ${SIZES.join(",")} --window ${WINDOW_S} --changes ${CHANGES_PER_S}${VARIANTS.map((v) => ` --variant '${v.label}=${[...Object.entries(v.env).map(([k, x]) => `${k}=${x}`), ...v.flags, ...(v.entry ? [v.entry] : [])].join(" ")}'`).join("")}`);
// Variants one after another at each N (so each pair runs under about the same load), each result printed as it comes.
const results = [];
for (const n of SIZES) {
  for (const variant of VARIANTS) {
    const r = await runSize(n, variant);
    results.push(r);
    console.log(JSON.stringify(r));
  }
}
const base = results[0];
const rssOf = (r) => Math.max(r.idle.rss_mb_max, r.with_changes.rss_mb_max);
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : "–");
console.log(`| variant | N × 20 | events/s idle (hb + host) | CPU idle | events/s with ${CHANGES_PER_S} changes/s | CPU with changes | × idle | × first row | RSS max | × first variant at N | heap total / used / external after | caught up after stop | load1 |`);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of results) {
  const first = results.find((x) => x.nodes === r.nodes);
  const m = r.memory_after_windows_mb;
  console.log(`| ${r.variant} | ${r.nodes} | ${r.idle.events_per_s} | ${r.idle.cpu_pct_of_core} % | ${r.with_changes.events_per_s} | ${r.with_changes.cpu_pct_of_core} % | ${ratio(r.with_changes.cpu_pct_of_core, r.idle.cpu_pct_of_core)} | ${ratio(r.with_changes.cpu_pct_of_core, base.with_changes.cpu_pct_of_core)} | ${rssOf(r)} MB | ${ratio(rssOf(r), rssOf(first))} | ${m.heap_total} / ${m.heap_used} / ${m.external} MB | ${r.caught_up_ms_after_stop} ms | ${r.idle.load1}–${r.with_changes.load1} |`);
}
for (const r of results.filter((x) => x.nodes === 1000)) {
  const cpu = r.with_changes.cpu_pct_of_core, rss = rssOf(r);
  console.log(`target at 1,000 × 20 with changes (${r.variant}): CPU ${cpu} % (< 15: ${cpu < 15 ? "met" : "NOT met"}), RSS ${rss} MB (< 200: ${rss < 200 ? "met" : "NOT met"})`);
}
process.exit(0);
