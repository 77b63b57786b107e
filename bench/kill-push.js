#!/usr/bin/env node
// kill -9 → push notification, end to end in one run (issue 11), not a test:
// `npx tsc -b && node bench/kill-push.js [--nodes 8] [--services 20] [--kills 320] [--quick]`. Part of `npm run bench`.
// Every Steward part is its real process (built main.js): NODES node-agents, each supervising SERVICES real `sleep`
// processes, the observer, the supervisor, the executor (the alerter asks it for approval tokens) and the alerter,
// pushing to a local server that speaks ntfy's publish API; real nats-server and PostgreSQL. Each round kills -9 one
// supervised process (a different service each time, round robin over every node and service) and times, from the
// kill: `exited` in the world store (a watching reader, the baseline of the same run: what the observer alone
// costs), the pending restart (its Postgres NOTIFY) and the "Approve restart?" push received by ntfy (approval
// requests go out at once; the node's drift notice waits ALERT_GROUP_WAIT_MS, 5 s, by design, so it is not timed). Then the service is started again with a signed command (as the executor would send), and the next round
// kills another one at once: resolves of earlier rounds run while later ones are timed. A p99 needs >= 300 kills.
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { connectNats, ensureStreams, openWorldBucket } from "@steward/platform/bus";
import { connectDb, migrate } from "@steward/platform/db";
import { commandSubject } from "@steward/contracts/subjects";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";
import { signNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { watchWorld } from "@steward/world/world-store";
import { createTestDatabase, freePort, startFakeNtfy, startNats, stopProcess, waitFor } from "@steward/testkit";
import { machineLine } from "./lib/measure.js";

const { values } = parseArgs({ options: { nodes: { type: "string" }, services: { type: "string" }, kills: { type: "string" }, quick: { type: "boolean", default: false } } });
const NODES = Number(values.nodes ?? (values.quick ? "4" : "8"));
const SERVICES = Number(values.services ?? (values.quick ? "10" : "20"));
const KILLS = Number(values.kills ?? (values.quick ? "40" : "320"));
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const main = (pkg) => fileURLToPath(import.meta.resolve(`@steward/${pkg}/main`));
const log = (...a) => console.log(...a);

const nodes = Array.from({ length: NODES }, (_, i) => `n${String(i).padStart(2, "0")}`);
const services = Array.from({ length: SERVICES }, (_, i) => `svc-${String(i).padStart(2, "0")}`);

const [nats, db, ntfy] = await Promise.all([startNats(), createTestDatabase("steward_bench_push"), startFakeNtfy()]);
const dir = await mkdtemp(join(tmpdir(), "steward-bench-push-"));
const nc = await connectNats(nats.url, "bench-kill-push");
const sql = connectDb(db.url);
const procs = [];
let cache;
let listener;
try {
  await ensureStreams(nc);
  await migrate(sql);
  const fleetKey = randomBytes(32).toString("base64url");
  const commandKeys = newCommandKeyPair();
  const token = randomBytes(24).toString("hex");
  // The alerter's own, scoped executor credential (it may only mint button tokens and relay decisions).
  const alerterToken = randomBytes(24).toString("hex");
  const fleet = join(dir, "fleet.yaml");
  await writeFile(fleet, `version: 1\nnodes:\n${nodes.map((n) => `  ${n}:\n    services:\n${services.map((s) => `      ${s}: { kind: process, command: [sleep, "100000"] }\n`).join("")}`).join("")}`);
  const env = { PATH: process.env.PATH, NATS_URL: nats.url, LOG_LEVEL: "warn" };
  const launch = async (pkg, extra) => {
    const p = spawn(process.execPath, [...(pkg === "observer" ? OBSERVER_NODE_FLAGS : []), main(pkg)], { env: { ...env, METRICS_PORT: String(await freePort()), ...extra }, stdio: "ignore" });
    procs.push(p);
  };
  const executorPort = await freePort();
  const executorUrl = `http://127.0.0.1:${executorPort}`;
  await launch("observer", { SNAPSHOT_PATH: join(dir, "world.json") });
  // Its default re-check (5 s) and settings: the push path is driven by world-store changes, not by the timer.
  await launch("supervisor", { DATABASE_URL: db.url, FLEET_SPEC: fleet });
  // The executor's worker runs nothing here (nothing is approved); it answers the alerter's token requests.
  await launch("executor", { DATABASE_URL: db.url, API_TOKEN: token, ALERTER_TOKEN: alerterToken, EXECUTOR_SIGNING_KEY: commandKeys.privateKey, HTTP_PORT: String(executorPort) });
  await launch("alerter", { DATABASE_URL: db.url, API_TOKEN: alerterToken, EXECUTOR_URL: executorUrl, NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-bench" });
  for (const n of nodes) await launch("node-agent", { NODE_NAME: n, FLEET_SPEC: fleet, FLEET_KEY: fleetKey, NODE_COMMAND_PUBLIC_KEY: commandKeys.publicKey, LOG_DIR: join(dir, `logs-${n}`), STATE_DIR: join(dir, `state-${n}`) });

  const kv = await openWorldBucket(nc);
  const exitedWaiters = new Map();
  cache = watchWorld(kv, {
    onChange: (c) => {
      for (const node of c.changed) {
        const w = exitedWaiters.get(node);
        if (!w) continue;
        const r = cache.nodes([node]);
        if (r.ok && r.value.world.nodes[node]?.services[w.service]?.state === "exited") {
          exitedWaiters.delete(node);
          w.resolve(performance.now());
        }
      }
    },
  });
  await cache.ready();
  const svc = (node, service) => {
    const r = cache.nodes([node]);
    return r.ok ? r.value.world.nodes[node]?.services[service] : undefined;
  };
  const t0 = Date.now();
  await waitFor("every service running in the world", () => nodes.every((n) => services.every((s) => svc(n, s)?.state === "running")), 300_000, 200);
  // Before the agents first reported, their services were "missing" and starts may have been proposed: wait until
  // the supervisor expired them (their drift cleared), so each round's actions are its own.
  await waitFor("no open action", async () => (await sql`SELECT count(*)::int AS n FROM actions WHERE state IN ('pending','approved','running')`)[0].n === 0, 120_000, 200).catch((err) => {
    throw new Error(`${err.message}; pushes: ${JSON.stringify(ntfy.published.map((m) => m.title))}`);
  });
  log(`fleet up: ${NODES} agents × ${SERVICES} services in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Every new or changed action's id is announced on this channel: the first announcement of an id is its creation.
  const notifiedAt = new Map();
  listener = await sql.listen("steward_actions", (id) => {
    if (!notifiedAt.has(id)) notifiedAt.set(id, performance.now());
  });
  const command = async (node, op, service) => {
    const now = Date.now();
    const cmd = signNodeCommand({ id: randomUUID(), node, op, service, action_id: null, issued_at: new Date(now).toISOString(), expires_at: new Date(now + 120_000).toISOString() }, commandKeys.signing);
    const reply = JSON.parse(new TextDecoder().decode((await nc.request(commandSubject(node), JSON.stringify(cmd), { timeout: 60_000 })).data));
    if (!reply.ok) throw new Error(`${op} ${node}/${service}: ${reply.message}`);
  };

  const lat = { world: [], pending: [], approve: [] };
  const restarts = [];
  for (let k = 0; k < KILLS; k++) {
    const node = nodes[k % NODES];
    const service = services[Math.floor(k / NODES) % SERVICES];
    const pid = await waitFor(`${node}/${service} running again`, () => { const s = svc(node, service); return s?.state === "running" && s.pid; }, 60_000, 20);
    const from = ntfy.published.length;
    const exited = new Promise((resolve) => exitedWaiters.set(node, { service, resolve }));
    const t = performance.now();
    process.kill(pid, "SIGKILL");
    const pushed = (title) => ntfy.waitFor((m) => m.title === title && ntfy.published.indexOf(m) >= from, 60_000).then((m) => m.receivedAt);
    const [worldAt, approveAt] = await Promise.all([exited, pushed(`Approve restart ${node}/${service}?`)]);
    // The approval push names a pending action, so it exists by now: the newest restart of this service.
    const [action] = await sql`SELECT id FROM actions WHERE node = ${node} AND service = ${service} AND kind = 'restart' ORDER BY created_at DESC LIMIT 1`;
    const pendingSeen = notifiedAt.get(action.id) ?? NaN;
    lat.world.push(worldAt - t);
    lat.pending.push(pendingSeen - t);
    lat.approve.push(approveAt - t);
    // Put it back; the next round does not wait for the drift to clear (another node and service).
    restarts.push(command(node, "start", service));
    if (restarts.length > 16) await restarts.shift();
  }
  await Promise.all(restarts);
  const f = (xs) => ({ p50_ms: +pct(xs, 50).toFixed(1), ...(xs.length >= 300 ? { p99_ms: +pct(xs, 99).toFixed(1) } : {}), max_ms: +Math.max(...xs).toFixed(1) });
  const r = {
    nodes: NODES,
    services_per_node: SERVICES,
    kills: KILLS,
    kill_to_exited_in_world_baseline: f(lat.world),
    kill_to_pending_action: f(lat.pending),
    kill_to_approve_push: f(lat.approve),
    approve_push_p50_vs_world_p50: +(pct(lat.approve, 50) / pct(lat.world, 50)).toFixed(2),
    pushes_received: ntfy.published.length,
    load1_at_end: +loadavg()[0].toFixed(1),
  };
  log(`# Steward kill → push bench, ${new Date().toISOString()}`);
  log(machineLine());
  log(`command: node bench/kill-push.js --nodes ${NODES} --services ${SERVICES} --kills ${KILLS}`);
  log("kill → push:", JSON.stringify(r));
  const p99 = r.kill_to_approve_push.p99_ms ?? r.kill_to_approve_push.max_ms;
  log(`${KILLS >= 300 ? "p99" : "max (fewer than 300 kills: no p99)"} kill → approval push ${p99} ms (target 2 s: ${p99 < 2000 ? "met" : "NOT met"})`);
} finally {
  await listener?.unlisten().catch(() => undefined);
  await cache?.stop().catch(() => undefined);
  for (const p of procs.reverse()) await stopProcess(p).catch(() => undefined);
  await sql.end({ timeout: 2 }).catch(() => undefined);
  await nc.close().catch(() => undefined);
  await db.drop().catch(() => undefined);
  await nats.stop();
  await ntfy.close();
  await rm(dir, { recursive: true, force: true });
}
process.exit(0);
