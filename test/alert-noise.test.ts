/**
 * Alerts an operator can trust, end to end against real NATS + Postgres and a local ntfy server: the alerter's world
 * and drift documents are written to the world store by the test (as the observer and the supervisor would), with
 * the default grouping (group_wait 5 s, group_interval 30 s) and grace (60 s).
 * - a service flapping 20 times within a minute: at most 3 notifications, one of them saying it flaps;
 * - 50 services of 5 nodes starting (never reported for 3 s, then fine): no alert at all;
 * - 200 nodes x 20 services going quiet at once: one notice that names the count, not 4,000.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openWorldBucket, type KV } from "@steward/platform/bus";
import { createWorldWriter } from "@steward/world/world-store";
import { createDriftWriter } from "@steward/world/drift-store";
import type { Drift, DriftReport } from "@steward/contracts/drift";
import type { NodeState, WorldState } from "@steward/contracts/world-state";
import { metricValue, startFakeNtfy, waitFor, waitForTicks, type FakeNtfy } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let kv: KV;
let ntfy: FakeNtfy;
let worldWriter: ReturnType<typeof createWorldWriter>;
let driftWriter: ReturnType<typeof createDriftWriter>;
let heart: NodeJS.Timeout | undefined;

const iso = () => new Date().toISOString();
/** What the test's "observer" and "supervisor" say now. */
let nodes: Record<string, NodeState> = {};
let drifts: Drift[] = [];
let seq = 1;

const node = (name: string, status: NodeState["status"] = "up"): NodeState => ({ name, status, last_heartbeat: iso(), heartbeat_interval_ms: 1000, agent_started_at: iso(), dropped_events: 0, host: null, services: {} });
const drift = (kind: Drift["kind"], n: string, service: string, message: string, since: string | null): Drift => ({ key: `${kind}:${n}/${service}`, kind, node: n, service, severity: kind === "down" ? "action" : "alert", message, since, proposes: kind === "down" ? "restart" : null });

/** One writer at a time, like the one observer and the one leading supervisor. */
let beating: Promise<void> = Promise.resolve();
function beat(): Promise<void> {
  const next = beating.then(async () => {
    const now = iso();
    seq += 1;
    const world: WorldState = { version: 1, last_seq: seq, events_applied: seq, event_time: now, nodes };
    await worldWriter.write(world, now);
    const report: DriftReport = { computed_at: now, snapshot_written_at: now, world_seq: seq, supervisor_id: "test", skipped: null, drifts };
    await driftWriter.write(report);
  });
  beating = next.catch(() => undefined);
  return next;
}

const evaluations = () => metricValue(`${stack.alerterUrl}/metrics`, "steward_alerter_evaluations_total", { result: "ok" });
const about = (needle: string) => ntfy.published.filter((m) => `${m.title ?? ""}\n${m.message}`.includes(needle));

beforeAll(async () => {
  ntfy = await startFakeNtfy();
  stack = await startStack({
    dbPrefix: "steward_alert_noise",
    sqlMax: 6,
    beforeServices: async ({ nc }) => {
      kv = await openWorldBucket(nc);
      worldWriter = createWorldWriter({ kv, observerId: "test" });
      driftWriter = createDriftWriter(kv);
      await beat();
      heart = setInterval(() => void beat().catch(() => undefined), 1000);
    },
    executor: { EXECUTOR_WORKER: "false" },
    // Default grouping and grace; a 20 s flap window so that "stable again" comes within the test.
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-noise", ALERT_EVAL_MS: "250", RETRY_BASE_MS: "100", ALERT_FLAP_WINDOW_MS: "20000" },
  });
}, 60_000);

afterAll(async () => {
  if (heart) clearInterval(heart);
  await beating;
  await stack?.stop();
  await ntfy?.close();
});

describe("alert noise", () => {
  it("a service flapping 20 times within a minute: at most 3 notifications, one says it flaps, and it resolves once stable", async () => {
    nodes = { f1: node("f1") };
    await beat();
    const flap = drift("down", "f1", "web", "web on f1 exited (exit code 1)", null);
    for (let i = 0; i < 20; i++) {
      drifts = [{ ...flap, since: iso() }];
      await beat();
      // The alerter saw it down (its alert row for this episode exists) before it comes back.
      await waitFor(`episode ${i + 1} seen`, async () => (await stack.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM alerts WHERE fingerprint = 'drift:down:f1/web'`)[0]!.n >= i + 1 || undefined, 10_000, 50);
      drifts = [];
      await beat();
      await waitFor(`episode ${i + 1} resolved`, async () => (await stack.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM alerts WHERE fingerprint = 'drift:down:f1/web' AND state = 'firing'`)[0]!.n === 0 || undefined, 10_000, 50);
    }
    const flapped = await ntfy.waitFor((m) => m.title === "Flapping: Drift down: f1/web", 60_000);
    expect(flapped.message).toMatch(/fired and resolved \d+ times within 20 s/);
    // Stable for the window: the flapping alert resolves and its group says so.
    await ntfy.waitFor((m) => (m.title ?? "").startsWith("Resolved: ") && (m.title ?? "").includes("f1/web"), 90_000);
    await waitForTicks("alert evaluations", evaluations, 3, 30_000);
    const told = about("f1/web");
    console.log(`flapping: 20 episodes, ${told.length} notifications: ${told.map((m) => m.title).join(" | ")}`);
    expect(told.length).toBeLessThanOrEqual(3);
  }, 240_000);

  it("50 services starting (their nodes never reported for 3 s): no alert at all", async () => {
    const names = ["s1", "s2", "s3", "s4", "s5"];
    const started = Date.now();
    drifts = names.flatMap((n) => Array.from({ length: 10 }, (_, i) => drift("unknown", n, `svc${i}`, `node ${n} never reported: is its agent deployed?`, null)));
    await beat();
    // The alerter judged them (evaluations ran after the report was written) and recorded no alert.
    await waitForTicks("alert evaluations", evaluations, 3, 30_000);
    await waitFor("3 s of start-up", () => Date.now() - started >= 3000 || undefined, 10_000, 100);
    await waitForTicks("alert evaluations", evaluations, 2, 30_000);
    const fired = async () => (await stack.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM alerts WHERE fingerprint LIKE 'drift:unknown:s_/%'`)[0]!.n;
    expect(await fired()).toBe(0);
    // The nodes report: every service is there and fine.
    nodes = { ...nodes, ...Object.fromEntries(names.map((n) => [n, node(n)])) };
    drifts = [];
    await beat();
    await waitForTicks("alert evaluations", evaluations, 3, 30_000);
    expect(await fired()).toBe(0);
    expect(names.flatMap((n) => about(`${n}/`))).toEqual([]);
  }, 60_000);

  it("200 nodes x 20 services going quiet at once: one notice that names the count", async () => {
    const quiet = Array.from({ length: 200 }, (_, i) => `q${String(i).padStart(3, "0")}`);
    nodes = { ...nodes, ...Object.fromEntries(quiet.map((n) => [n, node(n)])) };
    await beat();
    const before = ntfy.published.length;
    const lastHeartbeat = iso();
    nodes = { ...nodes, ...Object.fromEntries(quiet.map((n) => [n, { ...node(n, "stale"), last_heartbeat: lastHeartbeat }])) };
    drifts = quiet.flatMap((n) => Array.from({ length: 20 }, (_, i) => drift("unknown", n, `svc${i}`, `node ${n} is stale (last heartbeat ${lastHeartbeat}): state of svc${i} is unknown`, lastHeartbeat)));
    await beat();
    const notice = await ntfy.waitFor((m) => (m.title ?? "").startsWith("200 nodes stale: "), 60_000);
    expect(notice.title).toBe("200 nodes stale: q000, q001, q002, q003, q004, …");
    expect(notice.message).toContain("… and 185 more");
    // Every alert is recorded (4,000 unknown services and 200 stale nodes), but only the outage was told.
    const [rows] = await stack.sql<{ stale: number; unknown: number }[]>`SELECT count(*) FILTER (WHERE rule = 'node_stale')::int AS stale, count(*) FILTER (WHERE fingerprint LIKE 'drift:unknown:q%')::int AS unknown FROM alerts WHERE state = 'firing'`;
    expect(rows).toEqual({ stale: 200, unknown: 4000 });
    // More evaluations later, still one notice: no group was even opened for the hidden services (none can be told).
    await waitForTicks("alert evaluations", evaluations, 3, 30_000);
    expect(ntfy.published.slice(before).map((m) => m.title)).toEqual([notice.title]);
    const [groups] = await stack.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM alert_groups WHERE group_key LIKE 'node:q%'`;
    expect(groups?.n).toBe(0);
  }, 120_000);
});
