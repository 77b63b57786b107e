#!/usr/bin/env node
// Steward benchmarks (not tests): `npm run bench` (builds first). Options: --events N --replay N --kills N --rounds N
// --only fold|replay|kill --quick (a 100,000-event replay)
// 1. Observer fold rate vs the raw JetStream consume rate of the same messages (the real event mix), same run; then the
//    same for a replay of a million events (a fresh observer catching up on a long stream).
// 2. kill -9 of a supervised process → `exited` in the snapshot, and → a pending action in Postgres; in the same run,
//    rounds interleaved, the same for a compose stack's container killed through a real dockerd's API (when root and
//    dockerd are there: the agent deploys it with the real Compose and sees the death on the engine's /events).
import { spawn } from "node:child_process";
import { request } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes, randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager, ensureStreams, connectNats, openWorldBucket } from "@steward/platform/bus";
import { EVENTS_STREAM, commandSubject } from "@steward/contracts/subjects";
import { clearWorldStore } from "@steward/world/testing";
import { readWorldNodes } from "@steward/world/world-store";
import { silentLogger } from "@steward/platform/logger";
import { createRegistry } from "@steward/platform/metrics";
import { connectDb, migrate } from "@steward/platform/db";
import { signNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { createObserver } from "@steward/observer";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";
import { mixPublisher } from "./lib/sim-fleet.js";
import { startNats, createTestDatabase, waitFor, freePort, stopProcess, dockerdUnavailable, startDockerd, importBusyboxImage } from "@steward/testkit";
import { machineLine } from "./lib/measure.js";

const { values } = parseArgs({ options: { events: { type: "string", default: "20000" }, replay: { type: "string", default: "1000000" }, kills: { type: "string", default: "20" }, rounds: { type: "string", default: "3" }, only: { type: "string" }, quick: { type: "boolean", default: false } } });
const N = Number(values.events);
const KILLS = Number(values.kills);
const ROUNDS = Number(values.rounds);
const REPLAY = Number(values.quick ? Math.min(100_000, Number(values.replay)) : values.replay);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const log = (...a) => console.log(...a);

/**
 * Fold rate vs the raw JetStream consume rate of the same `n` messages, `rounds` times (medians). Rates are timed from
 * the 10% mark to the last message, so start-up (consumer creation, loading) does not count against either; the
 * whole run from the first message is given as well (for the replay: what a fresh observer's catch-up takes).
 */
async function foldBench(n, rounds) {
  const nats = await startNats();
  const nc = await connectNats(nats.url, "bench");
  const dir = await mkdtemp(join(tmpdir(), "steward-bench-"));
  try {
    await ensureStreams(nc);
    const js = jetstream(nc);
    const p0 = performance.now();
    await mixPublisher(js).publish(n);
    const publishS = (performance.now() - p0) / 1000;
    const streamBytes = (await (await jetstreamManager(nc)).streams.info(EVENTS_STREAM)).state.bytes;
    const raw = [], fold = [], rawWhole = [], foldWhole = [];
    const mark = Math.floor(n / 10);
    for (let r = 0; r < rounds; r++) {
      // Raw: an ordered consumer reading every message, doing nothing with it.
      let t = 0;
      const s0 = performance.now();
      const oc = await js.consumers.get(EVENTS_STREAM);
      const msgs = await oc.consume();
      let got = 0;
      for await (const m of msgs) { void m; if (++got === mark) t = performance.now(); if (got >= n) break; }
      raw.push((n - mark) / ((performance.now() - t) / 1000));
      rawWhole.push(n / ((performance.now() - s0) / 1000));
      // Observer: from an empty world (fresh snapshot path), until the last sequence is folded.
      const obs = createObserver({ config: { snapshotPath: join(dir, `world-${r}.json`), observerId: "bench", snapshotDebounceMs: 50, staleCheckMs: 1e9, missedHeartbeats: 3, snapshotMaxIntervalMs: 1e9, streamReplicas: 1 }, nc, logger: silentLogger(), registry: createRegistry("observer", false) });
      // Force a full replay: the observer resumes from its snapshot, and a fresh path has none; KV holds the previous round's, so clear it.
      const kv = await openWorldBucket(nc);
      await clearWorldStore(kv).catch(() => undefined);
      const f0 = performance.now();
      await obs.start();
      await waitFor("observer to reach the 10% mark", () => obs.world().last_seq >= mark, 3_600_000, 1);
      t = performance.now();
      const seqAtMark = obs.world().last_seq;
      await waitFor("observer to fold every event", () => obs.world().last_seq >= n, 3_600_000, 1);
      fold.push((n - seqAtMark) / ((performance.now() - t) / 1000));
      foldWhole.push(n / ((performance.now() - f0) / 1000));
      await obs.stop();
    }
    const rawM = median(raw), foldM = median(fold);
    return {
      events: n,
      mix: "1,000 nodes: heartbeats (20 services + 20 checks) : host : state changes = 3 : 1 : 3",
      stream_mb: +(streamBytes / 2 ** 20).toFixed(0),
      published_per_s: Math.round(n / publishS),
      rounds,
      raw_per_s: Math.round(rawM),
      fold_per_s: Math.round(foldM),
      ratio: +(foldM / rawM).toFixed(3),
      whole_run: { raw_per_s: Math.round(median(rawWhole)), fold_per_s: Math.round(median(foldWhole)), ratio: +(median(foldWhole) / median(rawWhole)).toFixed(3) },
      raw_all: raw.map(Math.round),
      fold_all: fold.map(Math.round),
    };
  } finally {
    await nc.close();
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const main = (pkg) => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));

/** One call to the engine's API on its unix socket (the bench kills containers here, not through the docker CLI). */
function engine(socketPath, method, path) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { host: "docker" } }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

async function killBench() {
  const noDocker = dockerdUnavailable();
  const [nats, db, dockerd] = await Promise.all([startNats(), createTestDatabase("steward_bench"), noDocker ? undefined : startDockerd()]);
  const dir = await mkdtemp(join(tmpdir(), "steward-bench-kill-"));
  const fleetKey = randomBytes(32).toString("base64url");
  const commandKeys = newCommandKeyPair();
  const procs = [];
  const nc = await connectNats(nats.url, "bench");
  const sql = connectDb(db.url);
  try {
    await ensureStreams(nc);
    await migrate(sql);
    const fleet = join(dir, "fleet.yaml");
    const composeService = dockerd ? `      boxed:\n        kind: compose\n        files: [compose.yaml]\n` : "";
    await writeFile(fleet, `version: 1\nnodes:\n  bench:\n    repo_path: .\n    services:\n      sleeper:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000)"]\n${composeService}`);
    if (dockerd) {
      await importBusyboxImage(dockerd.host, "steward-bench/busybox:1");
      await writeFile(join(dir, "compose.yaml"), `services:\n  app:\n    image: steward-bench/busybox:1\n    network_mode: host\n    command: ["sleep", "100000"]\n    stop_grace_period: 1s\n`);
    }
    const env = { PATH: process.env.PATH, NATS_URL: nats.url, LOG_LEVEL: "warn" };
    const launch = async (pkg, extra) => {
      const p = spawn(process.execPath, [...(pkg === "observer" ? OBSERVER_NODE_FLAGS : []), main(pkg)], { env: { ...env, METRICS_PORT: String(await freePort()), ...extra }, stdio: "ignore" });
      procs.push(p);
      return p;
    };
    await launch("observer", { SNAPSHOT_PATH: join(dir, "world.json") });
    await launch("supervisor", { DATABASE_URL: db.url, FLEET_SPEC: fleet, RECHECK_MS: "5000" });
    // The engine's poll at a minute: a container death seen sooner came from its /events.
    const docker = dockerd ? { DOCKER_HOST: dockerd.host, DOCKER_PROBE_MS: "60000" } : {};
    await launch("node-agent", { NODE_NAME: "bench", FLEET_SPEC: fleet, FLEET_KEY: fleetKey, NODE_COMMAND_PUBLIC_KEY: commandKeys.publicKey, HEARTBEAT_MS: "1000", LOG_DIR: join(dir, "logs"), STATE_DIR: join(dir, "state"), ...docker });
    const kv = await openWorldBucket(nc);
    const svc = async (name) => {
      const r = await readWorldNodes(kv, ["bench"]);
      return r.ok ? r.value.world.nodes.bench?.services[name] : undefined;
    };
    const command = async (op, service, params) => {
      const now = Date.now();
      const cmd = signNodeCommand({ id: randomUUID(), node: "bench", op, service, action_id: null, issued_at: new Date(now).toISOString(), expires_at: new Date(now + 120_000).toISOString(), ...(params ? { params } : {}) }, commandKeys.signing);
      const reply = JSON.parse(new TextDecoder().decode((await nc.request(commandSubject("bench"), JSON.stringify(cmd), { timeout: 120_000 })).data));
      if (!reply.ok) throw new Error(`${op} ${service}: ${reply.message}`);
    };
    if (dockerd) {
      await waitFor("the agent reports the stack", async () => (await svc("boxed")) !== undefined, 60_000, 50);
      await command("deploy", "boxed", { health_timeout_ms: 60_000 });
    }
    const noOpenAction = () => waitFor("no open action", async () => (await sql`SELECT count(*)::int AS n FROM actions WHERE state IN ('pending','approved','running')`)[0].n === 0, 60_000, 50);
    await sql.listen("steward_actions", () => undefined); // warm the listener connection

    /** One round: kill, time `exited` in the snapshot and the first action notification, then put it back. */
    const round = async (name, kill, restore, out) => {
      await waitFor(`${name} running`, async () => (await svc(name))?.state === "running", 60_000, 20);
      // No open action may remain from the previous round.
      await noOpenAction();
      let actionAt;
      const listener = await sql.listen("steward_actions", () => { actionAt ??= performance.now(); });
      const t0 = performance.now();
      await kill();
      await waitFor(`${name} exited in snapshot`, async () => { const x = await svc(name); return x && x.state !== "running"; }, 20_000, 2);
      out.toSnapshot.push(performance.now() - t0);
      await waitFor(`${name} pending action`, async () => actionAt !== undefined, 20_000, 2);
      out.toAction.push(actionAt - t0);
      await listener.unlisten();
      // Put it back with a signed command, then the supervisor expires the now-pointless action.
      await restore();
    };
    const proc = { toSnapshot: [], toAction: [] };
    const box = { toSnapshot: [], toAction: [] };
    for (let i = 0; i < KILLS; i++) {
      await round("sleeper", async () => process.kill((await svc("sleeper")).pid, "SIGKILL"), () => command("start", "sleeper"), proc);
      if (!dockerd) continue;
      await round("boxed", async () => {
        const [c] = JSON.parse((await engine(dockerd.socketPath, "GET", `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: ["com.docker.compose.project=boxed"] }))}`)).body);
        const r = await engine(dockerd.socketPath, "POST", `/containers/${c.Id}/kill`);
        if (r.status !== 204) throw new Error(`kill: ${r.status} ${r.body}`);
      }, () => command("start", "boxed"), box);
    }
    // A p99 from fewer than 300 samples is the max in disguise: report it only with enough kills.
    const f = (xs) => ({ median_ms: +median(xs).toFixed(1), ...(xs.length >= 300 ? { p99_ms: +pct(xs, 99).toFixed(1) } : {}), max_ms: +Math.max(...xs).toFixed(1) });
    const process_ = { kills: KILLS, kill_to_snapshot: f(proc.toSnapshot), kill_to_pending_action: f(proc.toAction) };
    if (!dockerd) return { ...process_, compose: `skipped: ${noDocker}` };
    const compose = { kills: KILLS, kill_to_snapshot: f(box.toSnapshot), kill_to_pending_action: f(box.toAction) };
    const ratio = +(compose.kill_to_pending_action.median_ms / process_.kill_to_pending_action.median_ms).toFixed(2);
    return { ...process_, compose, compose_vs_process_median_pending_action: ratio };
  } finally {
    for (const p of procs.reverse()) await stopProcess(p);
    await sql.end();
    await nc.close();
    await db.drop();
    await nats.stop();
    await dockerd?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

log(`# Steward bench, ${new Date().toISOString()}`);
log(machineLine());
log(`command: npm run bench -- ${process.argv.slice(2).join(" ")}`.trimEnd());
const results = {};
if (!values.only || values.only === "fold") {
  results.fold = await foldBench(N, ROUNDS);
  log("fold:", JSON.stringify(results.fold));
}
if (!values.only || values.only === "replay") {
  results.replay = await foldBench(REPLAY, 1);
  log("replay:", JSON.stringify(results.replay));
}
if (!values.only || values.only === "kill") {
  results.kill = await killBench();
  log("kill:", JSON.stringify(results.kill));
}
process.exit(0);
