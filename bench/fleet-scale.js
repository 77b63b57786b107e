#!/usr/bin/env node
// Steward at fleet scale (issue 11), not a test: `npx tsc -b && node bench/fleet-scale.js [--nodes 100,1000,5000]
// [--kills 20] [--window 30]`. For each N: a real nats-server and PostgreSQL, the observer and the supervisor as their
// own processes (built main.js), and N simulated node-agents in this process publishing real 20-service heartbeats
// every 5 s (with trace context) to JetStream. Measured per N:
// - kill → `down` in the world store (seen by a watching reader, @steward/world watchWorld), and kill → pending
//   action in Postgres; each kill is an agent's `exited` service event on a node/service not killed before.
// - observer CPU (share of one core) and RSS over a steady window with no kills, from /proc;
// - the supervisor's whole cycle (steward_supervisor_cycle_seconds: spec, world, queries, diff, proposals, report write).
// Fewer than 300 kills per N: the maximum is reported (not a p99). Ratios are against the smallest N of the run.
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, jetstream, natsHeaders, openWorldBucket } from "@steward/platform/bus";
import { connectDb, migrate } from "@steward/platform/db";
import { eventSubject } from "@steward/contracts/subjects";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";
import { watchWorld } from "@steward/world/world-store";
import { createTestDatabase, freePort, startNats, stopProcess, waitFor } from "@steward/testkit";
import { eachSize, machineLine, watchProcess } from "./lib/measure.js";
import { HEARTBEAT_MS, nodeNames, SERVICE_NAMES } from "./lib/sim-fleet.js";

const { values } = parseArgs({ options: { nodes: { type: "string", default: "100,1000,5000" }, kills: { type: "string", default: "20" }, window: { type: "string", default: "30" } } });
const SIZES = values.nodes.split(",").map(Number);
const KILLS = Number(values.kills);
const WINDOW_S = Number(values.window);
const SERVICES = SERVICE_NAMES;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const main = (pkg) => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));

async function scrape(port) {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}
const sample = (text, name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);

async function runSize(n) {
  const nodes = nodeNames(n);
  const nats = await startNats();
  const db = await createTestDatabase("steward_bench_scale");
  const dir = await mkdtemp(join(tmpdir(), "steward-bench-scale-"));
  const nc = await connectNats(nats.url, "bench-scale");
  const sql = connectDb(db.url);
  const procs = [];
  let publishing = true;
  let publisher;
  let cache;
  try {
    await ensureStreams(nc);
    await migrate(sql);
    const fleet = join(dir, "fleet.yaml");
    await writeFile(fleet, `version: 1\nnodes:\n${nodes.map((x) => `  ${x}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}`).join("")}`);
    const env = { PATH: process.env.PATH, NATS_URL: nats.url, LOG_LEVEL: "warn" };
    const obsPort = await freePort();
    const supPort = await freePort();
    const observer = spawn(process.execPath, [...OBSERVER_NODE_FLAGS, main("observer")], { env: { ...env, METRICS_PORT: String(obsPort), SNAPSHOT_PATH: join(dir, "world.json") }, stdio: "ignore" });
    procs.push(observer);
    const supervisor = spawn(process.execPath, [main("supervisor")], { env: { ...env, METRICS_PORT: String(supPort), DATABASE_URL: db.url, FLEET_SPEC: fleet, RECHECK_MS: "5000", SNAPSHOT_MAX_AGE_MS: "60000" }, stdio: "ignore" });
    procs.push(supervisor);

    // Simulated agents: each node heartbeats every 5 s (all 20 services), spread evenly over the interval.
    const js = jetstream(nc);
    const started = new Date().toISOString();
    const states = new Map();
    const obs = (node, s) => states.get(`${node}/${s}`) ?? { service: s, state: "running", health: "none", pid: 1000 + SERVICES.indexOf(s), starts: 1, declared: true };
    const publish = (e) => {
      const h = natsHeaders();
      h.set("traceparent", `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`);
      return js.publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id, headers: h });
    };
    let published = 0;
    publisher = (async () => {
      let i = 0;
      const perTick = Math.max(1, Math.ceil(n / (HEARTBEAT_MS / 50)));
      while (publishing) {
        const t = Date.now();
        const batch = [];
        for (let k = 0; k < perTick; k++, i++) {
          const node = nodes[i % n];
          batch.push(publish({ type: "heartbeat", id: randomUUID(), node, ts: new Date().toISOString(), interval_ms: HEARTBEAT_MS, agent_version: "bench", started_at: started, services: SERVICES.map((s) => obs(node, s)), dropped_events: 0 }));
        }
        await Promise.all(batch).catch(() => undefined);
        published += batch.length;
        await sleep(Math.max(0, 50 - (Date.now() - t)));
      }
    })();

    const kv = await openWorldBucket(nc);
    let downWaiter;
    cache = watchWorld(kv, {
      onChange: (c) => {
        if (downWaiter && c.changed.includes(downWaiter.node)) {
          const r = cache.nodes([downWaiter.node]);
          if (r.ok && r.value.world.nodes[downWaiter.node]?.services[downWaiter.service]?.state === "exited") downWaiter.resolve(performance.now());
        }
      },
    });
    await cache.ready();
    const t0 = Date.now();
    await waitFor("every node up in the store", () => {
      const w = cache.read();
      return w.ok && Object.keys(w.value.world.nodes).length === n;
    }, 600_000, 500);
    const warmup = Date.now() - t0;
    // Let the supervisor see the whole fleet clean once before measuring.
    await waitFor("a supervisor cycle over the full fleet", async () => sample(await scrape(supPort), "steward_supervisor_cycle_seconds_count") >= 2, 600_000, 500);

    // Steady window: heartbeats only.
    const load0 = loadavg()[0];
    const p0 = published;
    const { windowS, cpuShare: observerCpu, rssMaxMb: rssMax } = await watchProcess(observer.pid, WINDOW_S);
    const eventsPerS = (published - p0) / windowS;
    const sup = await scrape(supPort);
    const cycleMean = sample(sup, "steward_supervisor_cycle_seconds_sum") / sample(sup, "steward_supervisor_cycle_seconds_count");
    const diffMean = sample(sup, "steward_supervisor_diff_seconds_sum") / sample(sup, "steward_supervisor_diff_seconds_count");
    const obsText = await scrape(obsPort);

    // Kills: a node/service never killed before, so no open action is in the way.
    const toDown = [];
    const toPending = [];
    for (let k = 0; k < KILLS; k++) {
      const node = nodes[Math.floor(((k + 0.5) / KILLS) * n)];
      const service = SERVICES[k % SERVICES.length];
      const dead = { service, state: "exited", health: "none", exit_code: 137, signal: "SIGKILL", starts: 1, declared: true };
      states.set(`${node}/${service}`, dead);
      const seen = new Promise((resolve) => (downWaiter = { node, service, resolve }));
      const t = performance.now();
      await publish({ type: "service", id: randomUUID(), node, ts: new Date().toISOString(), ...dead });
      const [downAt, pendingAt] = await Promise.all([
        Promise.race([seen, sleep(60_000).then(() => NaN)]),
        waitFor("pending action", async () => ((await sql`SELECT 1 FROM actions WHERE node = ${node} AND service = ${service} AND state = 'pending'`).length > 0 ? performance.now() : undefined), 60_000, 10),
      ]);
      downWaiter = undefined;
      toDown.push(downAt - t);
      toPending.push(pendingAt - t);
    }
    return {
      nodes: n,
      services: n * SERVICES.length,
      // 1-minute load average when the window started and when the kills ended (the machine is shared).
      load1: [+load0.toFixed(1), +loadavg()[0].toFixed(1)],
      warmup_s: +(warmup / 1000).toFixed(1),
      heartbeats_per_s: +eventsPerS.toFixed(0),
      observer_cpu_pct_of_core: +(observerCpu * 100).toFixed(1),
      observer_rss_mb_max: +rssMax.toFixed(0),
      // A labelled counter has no series until its first increment: absent means none.
      observer_kv_write_errors: sample(obsText, "steward_observer_snapshot_write_errors_total") || 0,
      observer_file_interval_s: +sample(obsText, "steward_observer_snapshot_file_interval_seconds").toFixed(2),
      supervisor_cycle_ms_mean: +(cycleMean * 1000).toFixed(1),
      supervisor_diff_ms_mean: +(diffMean * 1000).toFixed(1),
      kills: KILLS,
      kill_to_down_ms: { p50: +median(toDown).toFixed(0), max: +Math.max(...toDown).toFixed(0) },
      kill_to_pending_ms: { p50: +median(toPending).toFixed(0), max: +Math.max(...toPending).toFixed(0) },
      ...(KILLS >= 300 ? { kill_to_down_p99_ms: +pct(toDown, 99).toFixed(0), kill_to_pending_p99_ms: +pct(toPending, 99).toFixed(0) } : {}),
    };
  } finally {
    publishing = false;
    await publisher;
    await cache?.stop().catch(() => undefined);
    for (const p of procs.reverse()) await stopProcess(p).catch(() => undefined);
    await sql.end({ timeout: 2 }).catch(() => undefined);
    await nc.close().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`# Steward fleet-scale bench, ${new Date().toISOString()}`);
console.log(machineLine());
console.log(`command: node bench/fleet-scale.js --nodes ${values.nodes} --kills ${KILLS} --window ${WINDOW_S}`);
const results = await eachSize(SIZES, runSize);
const base = results[0];
for (const r of results.slice(1)) {
  console.log(JSON.stringify({ nodes: r.nodes, vs_nodes: base.nodes, observer_cpu_ratio: +(r.observer_cpu_pct_of_core / base.observer_cpu_pct_of_core).toFixed(2), supervisor_cycle_ratio: +(r.supervisor_cycle_ms_mean / base.supervisor_cycle_ms_mean).toFixed(2), kill_to_pending_p50_ratio: +(r.kill_to_pending_ms.p50 / base.kill_to_pending_ms.p50).toFixed(2) }));
}
