#!/usr/bin/env node
// Observer CPU and memory at fleet scale (issue 11), not a test: `npx tsc -b && node bench/observer-scale.js
// [--nodes 100,1000,5000] [--window 20] [--changes 200] [--quick]`. Part of `npm run bench` (with --quick there).
// For each N: a real nats-server, the real observer as its own process (built main.js), and N simulated agents in this
// process sending what real agents send (bench/lib/sim-fleet.js): a heartbeat restating 20 services and 20 checks
// every 5 s, host metrics every 15 s. Two windows per N, CPU (share of one core) and RSS of the observer from /proc:
//   A (baseline, same run): that idle fleet alone;
//   B: the same plus --changes state changes per second (service exits/restarts and check flips, which the following
//      heartbeats restate).
// After B the publishing stops and the observer must fold the stream to its end (it kept up, or the lag is reported).
// Target at 1,000 × 20 with the changes on: under 15 % of one core and 200 MB.
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, jetstream, jetstreamManager } from "@steward/platform/bus";
import { EVENTS_STREAM } from "@steward/contracts/subjects";
import { freePort, startNats, stopProcess, waitFor } from "@steward/testkit";
import { HEARTBEAT_MS, HOST_PROBE_MS, nodeNames, publishEvent, simFleet } from "./lib/sim-fleet.js";

const { values } = parseArgs({ options: { nodes: { type: "string" }, window: { type: "string" }, changes: { type: "string", default: "200" }, quick: { type: "boolean", default: false }, heapsnapshot: { type: "string" } } });
const SIZES = (values.nodes ?? (values.quick ? "100,1000" : "100,1000,5000")).split(",").map(Number);
const WINDOW_S = Number(values.window ?? (values.quick ? "8" : "20"));
const CHANGES_PER_S = Number(values.changes);
const TICK_MS = 50;
const TICKS_PER_S = 100; // /proc clock ticks (USER_HZ, 100 on Linux)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const main = (pkg) => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));

async function procStat(pid) {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return { cpuTicks: Number(stat[11]) + Number(stat[12]), rssMb: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024 };
}
const sample = (text, name, labels = "") => {
  let n = NaN;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, "gm"))) if ((m[1] ?? "").includes(labels)) n = (Number.isNaN(n) ? 0 : n) + Number(m[2]);
  return n;
};

/** Signals the observer to write a heap snapshot and waits until the file is complete (its size stops growing). */
async function heapSnapshot(pid, dir, n) {
  const before = new Set(await readdir(dir));
  process.kill(pid, "SIGUSR2");
  let file, size = -1;
  await waitFor("the heap snapshot written", async () => {
    file ??= (await readdir(dir)).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (!file) return false;
    const s = (await stat(join(dir, file))).size;
    const done = s > 0 && s === size;
    size = s;
    return done;
  }, 600_000, 2000);
  console.log(`heap snapshot at N = ${n}: ${join(dir, file)} (${(size / 2 ** 20).toFixed(0)} MB)`);
}

let observerTail = "";
// FLEET_METRICS_MAX_SERIES passed through to the observer (e.g. 0: node series only, to see what the fleet gauges cost).
const fleetMetricsEnv = process.env.FLEET_METRICS_MAX_SERIES ? { FLEET_METRICS_MAX_SERIES: process.env.FLEET_METRICS_MAX_SERIES } : {};

async function runSize(n) {
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
    const nodeFlags = values.heapsnapshot ? ["--heapsnapshot-signal=SIGUSR2"] : [];
    observer = spawn(process.execPath, [...nodeFlags, main("observer")], { ...(values.heapsnapshot ? { cwd: values.heapsnapshot } : {}), env: { PATH: process.env.PATH, NATS_URL: nats.url, LOG_LEVEL: "warn", METRICS_PORT: String(port), SNAPSHOT_PATH: join(dir, "world.json"), ...fleetMetricsEnv }, stdio: ["ignore", "pipe", "pipe"] });
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
    await waitFor("every node up in the observer's world", async () => sample(await metrics(), "steward_observer_nodes", 'status="up"') === n, 600_000, 500);
    const warmupS = (Date.now() - t0) / 1000;
    // One more full heartbeat round, so every node has been rewritten once after the first write of the world.
    await sleep(HEARTBEAT_MS);

    const window = async () => {
      const s0 = await procStat(observer.pid);
      const c0 = { ...sent };
      const w0 = Date.now();
      let rssMax = s0.rssMb;
      while (Date.now() - w0 < WINDOW_S * 1000) {
        await sleep(1000);
        rssMax = Math.max(rssMax, (await procStat(observer.pid)).rssMb);
      }
      const s1 = await procStat(observer.pid);
      const secs = (Date.now() - w0) / 1000;
      const rate = (k) => +((sent[k] - c0[k]) / secs).toFixed(1);
      return {
        events_per_s: +((sent.heartbeat + sent.host + sent.change - c0.heartbeat - c0.host - c0.change) / secs).toFixed(0),
        heartbeats_per_s: rate("heartbeat"),
        host_per_s: rate("host"),
        changes_per_s: rate("change"),
        cpu_pct_of_core: +(((s1.cpuTicks - s0.cpuTicks) / TICKS_PER_S / secs) * 100).toFixed(1),
        rss_mb_max: +rssMax.toFixed(0),
        load1: +loadavg()[0].toFixed(1),
      };
    };
    const idle = await window();
    changesPerS = CHANGES_PER_S;
    await sleep(2000);
    const busy = await window();
    if (values.heapsnapshot) await heapSnapshot(observer.pid, values.heapsnapshot, n);
    publishing = false;
    await publisher;

    // Did it keep up? The stream's end must be folded soon after the publishing stops.
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const s0 = Date.now();
    await waitFor("the observer at the stream's end", async () => sample(await metrics(), "steward_observer_last_seq") >= last, 600_000, 100);
    const text = await metrics();
    return {
      nodes: n,
      services: n * fleet.services.length,
      warmup_s: +warmupS.toFixed(1),
      idle,
      with_changes: busy,
      caught_up_ms_after_stop: Date.now() - s0,
      kv_write_errors: sample(text, "steward_observer_snapshot_write_errors_total") || 0,
      file_interval_s: +sample(text, "steward_observer_snapshot_file_interval_seconds").toFixed(2),
      publish_failures: sent.failed,
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
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
console.log(`command: ${fleetMetricsEnv.FLEET_METRICS_MAX_SERIES ? `FLEET_METRICS_MAX_SERIES=${fleetMetricsEnv.FLEET_METRICS_MAX_SERIES} ` : ""}node bench/observer-scale.js --nodes ${SIZES.join(",")} --window ${WINDOW_S} --changes ${CHANGES_PER_S}`);
const results = [];
for (const n of SIZES) {
  const r = await runSize(n);
  results.push(r);
  console.log(JSON.stringify(r));
}
const base = results[0];
console.log(`| N × 20 | events/s idle (hb + host) | CPU idle | events/s with ${CHANGES_PER_S} changes/s | CPU with changes | × idle | × N=${base.nodes} | RSS max | caught up after stop |`);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const r of results) {
  const ratio = (a, b) => (b > 0 ? (a / b).toFixed(2) : "–");
  console.log(`| ${r.nodes} | ${r.idle.events_per_s} | ${r.idle.cpu_pct_of_core} % | ${r.with_changes.events_per_s} | ${r.with_changes.cpu_pct_of_core} % | ${ratio(r.with_changes.cpu_pct_of_core, r.idle.cpu_pct_of_core)} | ${ratio(r.with_changes.cpu_pct_of_core, base.with_changes.cpu_pct_of_core)} | ${Math.max(r.idle.rss_mb_max, r.with_changes.rss_mb_max)} MB | ${r.caught_up_ms_after_stop} ms |`);
}
const at1000 = results.find((r) => r.nodes === 1000);
if (at1000) {
  const cpu = at1000.with_changes.cpu_pct_of_core, rss = Math.max(at1000.idle.rss_mb_max, at1000.with_changes.rss_mb_max);
  console.log(`target at 1,000 × 20 with changes: CPU ${cpu} % (< 15: ${cpu < 15 ? "met" : "NOT met"}), RSS ${rss} MB (< 200: ${rss < 200 ? "met" : "NOT met"})`);
}
process.exit(0);
