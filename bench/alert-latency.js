#!/usr/bin/env node
// Steward alert latency (issue 4): time from a drift report landing in the world store (as the supervisor
// writes it: per-node records, then the header) to the ntfy push being accepted by an ntfy-compatible server. Real nats-server and PostgreSQL, the real
// alerter (built), a local ntfy. Target: p99 < 2 s (Alertmanager's default group_wait alone is 30 s).
// Run: `npx tsc -b && node bench/alert-latency.js [--drifts 30]`
import { parseArgs } from "node:util";
import { connectDb, migrate } from "@steward/platform/db";
import { connectNats, openWorldBucket } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { putWorldSnapshot } from "@steward/world/testing";
import { createDriftWriter } from "@steward/world/drift-store";
import { silentLogger } from "@steward/platform/logger";
import { createAlerter, loadConfig } from "@steward/alerter";
import { createTestDatabase, startFakeNtfy, startNats } from "@steward/testkit";
import { machineLine } from "./lib/measure.js";

const { values } = parseArgs({ options: { drifts: { type: "string", default: "30" } } });
const N = Math.max(20, Number(values.drifts));
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };

const nats = await startNats();
const db = await createTestDatabase("steward_bench_alert");
const nc = await connectNats(nats.url, "bench-alert");
const sql = connectDb(db.url);
const ntfy = await startFakeNtfy();
let alerter;
try {
  await migrate(sql);
  const kv = await openWorldBucket(nc);
  const now = () => new Date().toISOString();
  const snapshot = () => ({ written_at: now(), observer_id: "bench", world: { version: 1, last_seq: 1, events_applied: 1, event_time: now(), nodes: {} } });
  const report = (drifts) => ({ computed_at: now(), snapshot_written_at: null, world_seq: 1, supervisor_id: "bench", skipped: null, drifts });
  const drift = createDriftWriter(kv);
  await putWorldSnapshot(kv, snapshot());
  await drift.write(report([]));
  const config = loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, API_TOKEN: "bench-api-token-0123456789", METRICS_PORT: "0", NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-bench", ALERT_EVAL_MS: "5000", ALERT_DEADMAN_S: "3600" });
  alerter = createAlerter({ config, nc, sql, logger: silentLogger(), registry: createRegistry("alerter", false) });
  await alerter.start();
  const lat = [];
  for (let i = 0; i < N; i++) {
    const key = `down:bench/svc-${i}`;
    const found = { key, kind: "down", node: "bench", service: `svc-${i}`, severity: "action", message: `svc-${i} exited`, since: now(), proposes: "restart" };
    const t0 = performance.now();
    await drift.write(report([found]));
    const m = await ntfy.waitFor((p) => p.title === `Drift down: bench/svc-${i}`, 30_000);
    lat.push(m.receivedAt - t0);
    await drift.write(report([]));
    await ntfy.waitFor((p) => p.title === `Resolved: Drift down: bench/svc-${i}`, 30_000);
  }
  const r = { drifts: N, p50_ms: +pct(lat, 50).toFixed(1), p99_ms: +pct(lat, 99).toFixed(1), max_ms: +Math.max(...lat).toFixed(1), target_p99_ms: 2000 };
  console.log(`# Steward alert latency bench, ${new Date().toISOString()}`);
  console.log(machineLine());
  console.log("drift → ntfy push:", JSON.stringify(r), r.p99_ms < 2000 ? "(within target)" : "(OVER TARGET)");
} finally {
  await alerter?.stop().catch(() => undefined);
  await ntfy.close();
  await sql.end();
  await nc.close();
  await db.drop();
  await nats.stop();
}
process.exit(0);
