#!/usr/bin/env node
// The supervisor's whole cycle at fleet scale (issue 11), not a test: `npx tsc -b && node bench/supervisor-cycle.js
// [--nodes 100,1000,5000] [--changes 300] [--full 50]` (--changes: cycles of each kind). For each N: a real nats-server and PostgreSQL, the world store
// written as the observer writes it (one record per node, then the header; N nodes x 20 services, one service in 97
// down), and the real supervisor (createSupervisor, in this process) watching it. Measured, per cycle, from
// steward_supervisor_cycle_seconds (the whole cycle: leader check, spec read and hash, header sync, world read,
// actions queries, diff, holds, proposals and expiries written to Postgres, drift records and header written to KV):
// (a) one node changed: the observer-style writer rewrites one node, the watch triggers the cycle, which diffs that
//     node only; three kinds: a heartbeat (no finding changes), a service down (a restart proposed), back up (expired);
// (b) the full re-check: every node diffed (what every cycle did before), run by runCycle({ full: true }).
// p99 only with >= 300 samples, else the maximum, called that. Ratios: (b)/(a) per N, and each against the smallest N.
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectNats, ensureStreams, openWorldBucket } from "@steward/platform/bus";
import { connectDb, migrate } from "@steward/platform/db";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createWorldWriter } from "@steward/world/world-store";
import { createSupervisor } from "@steward/supervisor";
import { createTestDatabase, startNats, waitFor } from "@steward/testkit";
import { eachSize, machineLine } from "./lib/measure.js";
import { nodeNames, SERVICE_NAMES } from "./lib/sim-fleet.js";

const { values } = parseArgs({ options: { nodes: { type: "string", default: "100,1000,5000" }, changes: { type: "string", default: "300" }, full: { type: "string", default: "50" } } });
const SIZES = values.nodes.split(",").map(Number);
const CHANGES = Number(values.changes);
const FULLS = Number(values.full);
const SERVICES = SERVICE_NAMES;
const sorted = (xs) => [...xs].sort((a, b) => a - b);
const pct = (xs, p) => { const s = sorted(xs); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const ms = (x) => +x.toFixed(2);
function summary(xs) {
  const out = { samples: xs.length, p50_ms: ms(pct(xs, 50)), mean_ms: ms(xs.reduce((a, b) => a + b, 0) / xs.length) };
  return xs.length >= 300 ? { ...out, p99_ms: ms(pct(xs, 99)) } : { ...out, max_ms: ms(Math.max(...xs)) };
}

function service(name, down, at) {
  return { name, state: down ? "exited" : "running", health: down ? "none" : "healthy", starts: 1, declared: true, since: at, updated_at: at, checks: {}, last_event_id: `ev-${name}`, ...(down ? { exit_code: 137, signal: "SIGKILL" } : { pid: 4242 }) };
}
function node(name, i, at, downService) {
  const services = {};
  SERVICES.forEach((s, j) => (services[s] = service(s, s === downService || (i * 20 + j) % 97 === 0, at)));
  return { name, status: "up", last_heartbeat: at, heartbeat_interval_ms: 5000, agent_started_at: at, dropped_events: 0, host: null, services };
}

async function runSize(n) {
  const names = nodeNames(n);
  const nats = await startNats();
  const db = await createTestDatabase("steward_bench_supcycle");
  const dir = await mkdtemp(join(tmpdir(), "steward-bench-supcycle-"));
  const nc = await connectNats(nats.url, "bench-supcycle");
  const sql = connectDb(db.url);
  let sup;
  try {
    await ensureStreams(nc);
    await migrate(sql);
    const kv = await openWorldBucket(nc);
    const fleet = join(dir, "fleet.yaml");
    await writeFile(fleet, `version: 1\nnodes:\n${names.map((x) => `  ${x}:\n    services:\n${SERVICES.map((s) => `      ${s}: { kind: process, command: [sleep, "3600"] }\n`).join("")}`).join("")}`);
    const at = new Date().toISOString();
    const world = { version: 1, last_seq: 1, events_applied: 1, event_time: at, nodes: Object.fromEntries(names.map((x, i) => [x, node(x, i, at)])) };
    const writer = createWorldWriter({ kv, observerId: "bench" });
    await writer.write(world, at);

    const registry = createRegistry("supervisor", false);
    sup = createSupervisor({
      config: { fleetSpecPath: fleet, snapshotPath: undefined, supervisorId: "bench", recheckMs: 3_600_000, fullRecheckMs: 3_600_000, snapshotMaxAgeMs: 3_600_000, actionTtlMs: 3_600_000, leaderRetryMs: 1000 },
      nc, sql, logger: silentLogger(), registry,
    });
    const cycleSum = async () => {
      const v = (await registry.getSingleMetric("steward_supervisor_cycle_seconds").get()).values;
      return { sum: v.find((x) => x.metricName.endsWith("_sum"))?.value ?? 0, count: v.find((x) => x.metricName.endsWith("_count"))?.value ?? 0 };
    };
    await sup.start();
    await waitFor("the first report", () => (sup.lastReport()?.world_seq ?? 0) >= 1, 600_000, 20);
    const initialDrifts = sup.lastReport().drifts.length;

    // (a) One node changed per cycle, through the observer-style writer, three kinds in turn on the same node: a
    // heartbeat (its record changes, its findings do not: nothing to write but the header), a service going down (a
    // restart proposed: one action row, its audit row and NOTIFY; the node's drift record written), and coming back
    // (the pending restart expired; the drift record removed).
    const kinds = { heartbeat: [], down: [], up: [] };
    const e2e = [];
    let seq = world.last_seq;
    for (let k = 0; k < CHANGES; k++) {
      const i = Math.floor((k * 7919) % n);
      const name = names[i];
      for (const kind of ["heartbeat", "down", "up"]) {
        const t = new Date().toISOString();
        world.nodes[name] = node(name, i, t, kind === "down" ? "svc-19" : undefined);
        world.last_seq = ++seq;
        const before = await cycleSum();
        const t0 = performance.now();
        await writer.write(world, t);
        await waitFor("the change cycle", async () => (sup.lastReport()?.world_seq ?? 0) >= seq && (await cycleSum()).count > before.count, 60_000, 1);
        if (kind === "heartbeat") e2e.push(performance.now() - t0);
        const after = await cycleSum();
        kinds[kind].push(((after.sum - before.sum) / (after.count - before.count)) * 1000);
      }
    }
    // (b) The full re-check: every node diffed again.
    const full = [];
    for (let k = 0; k < FULLS; k++) {
      const before = await cycleSum();
      const r = await sup.runCycle({ full: true });
      if (r.status !== "ok" || !r.full) throw new Error(`full cycle: ${JSON.stringify(r).slice(0, 200)}`);
      const after = await cycleSum();
      full.push((after.sum - before.sum) * 1000);
    }
    const actions = await sql`SELECT state, count(*)::int AS n FROM actions GROUP BY state ORDER BY state`;
    return {
      nodes: n,
      services: n * SERVICES.length,
      drifts_at_start: initialDrifts,
      change_cycle_heartbeat: summary(kinds.heartbeat),
      change_cycle_down_proposes: summary(kinds.down),
      change_cycle_up_expires: summary(kinds.up),
      heartbeat_write_to_report: summary(e2e),
      full_cycle: summary(full),
      full_over_heartbeat_cycle_p50: +(pct(full, 50) / pct(kinds.heartbeat, 50)).toFixed(1),
      actions: Object.fromEntries(actions.map((r) => [r.state, r.n])),
    };
  } finally {
    await sup?.stop().catch(() => undefined);
    await sql.end({ timeout: 2 }).catch(() => undefined);
    await nc.close().catch(() => undefined);
    await db.drop().catch(() => undefined);
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`# Steward supervisor-cycle bench, ${new Date().toISOString()}`);
console.log(machineLine());
console.log(`command: node bench/supervisor-cycle.js --nodes ${values.nodes} --changes ${CHANGES} --full ${FULLS}`);
const results = await eachSize(SIZES, runSize);
const base = results[0];
for (const r of results.slice(1)) {
  console.log(JSON.stringify({ nodes: r.nodes, vs_nodes: base.nodes, heartbeat_cycle_p50_ratio: +(r.change_cycle_heartbeat.p50_ms / base.change_cycle_heartbeat.p50_ms).toFixed(2), down_cycle_p50_ratio: +(r.change_cycle_down_proposes.p50_ms / base.change_cycle_down_proposes.p50_ms).toFixed(2), full_cycle_p50_ratio: +(r.full_cycle.p50_ms / base.full_cycle.p50_ms).toFixed(2) }));
}
