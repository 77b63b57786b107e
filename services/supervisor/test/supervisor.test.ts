import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clearActions, overwriteAction, seedAction, actionsOf, auditOf, only } from "@steward/actions/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { DriftReport } from "@steward/contracts/drift";
import { clearWorldStore, putWorldSnapshot } from "@steward/world/testing";
import { createWorldWriter } from "@steward/world/world-store";
import { driftNodeKey } from "@steward/contracts/subjects";
import { readDrift } from "@steward/world/drift-store";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { silentLogger } from "@steward/platform/logger";
import type { Snapshot } from "@steward/contracts/world-state";
import { createTestDatabase, startNats, waitFor, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { createSupervisor, type Supervisor } from "../src/supervisor.js";
import { holdFailedRevisions as hold, planProposals } from "../src/reconcile.js";
import { applyProposals, type ApplyOptions } from "../src/apply.js";
import { createActionsRepository } from "@steward/actions/repository";
import { FAILED_ACTION_STATES } from "@steward/contracts/action";
import type { Drift } from "@steward/contracts/drift";
import { SUPERVISOR_LOCK_KEY } from "../src/leader.js";
import { computeDrift } from "@steward/fleet/diff";
import { TP, node, snapshot, spec, specYaml, svc } from "./fixtures.js";

let nats: NatsServerHandle;
let db: TestDatabase;
let nc: NatsConnection;
let sql: Sql;
let kv: KV;
let dir: string;
const extraSql: Sql[] = [];
const running: Supervisor[] = [];
let tracing: { shutdown: () => Promise<void> };

beforeAll(async () => {
  tracing = initTracing({ component: "supervisor-test" });
  [nats, db] = await Promise.all([startNats(), createTestDatabase("steward_supervisor")]);
  nc = await connectNats(nats.url, "supervisor-test");
  sql = connectDb(db.url);
  await migrate(sql);
  kv = await openWorldBucket(nc);
  dir = await mkdtemp(join(tmpdir(), "supervisor-test-"));
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await Promise.all(extraSql.map((s) => s.end({ timeout: 1 })));
  await sql?.end({ timeout: 1 });
  await nc?.close();
  await Promise.all([nats?.stop(), db?.drop(), dir ? rm(dir, { recursive: true, force: true }) : undefined]);
  await tracing?.shutdown();
});

beforeEach(async () => {
  await clearActions(sql);
  await clearWorldStore(kv);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

/** One cycle's proposal step on its own: what is open now, then the pure plan, then the write. */
async function proposeActions(db: Sql, drifts: readonly Drift[], opts: ApplyOptions) {
  const repo = createActionsRepository(db);
  return (await applyProposals(repo, planProposals(drifts, await repo.listOpen()), opts)).proposed;
}

async function holdFailedRevisions(db: Sql, drifts: readonly Drift[], opts: { now: Date; holdMs: number }): Promise<Drift[]> {
  const failed = await createActionsRepository(db).listFinished({ since: new Date(opts.now.getTime() - opts.holdMs), kinds: ["deploy"], states: FAILED_ACTION_STATES });
  return hold(drifts, failed);
}

let seq = 0;
interface Made {
  sup: Supervisor;
  registry: Registry;
  specPath: string;
  id: string;
}

async function make(opts: { nodes?: Record<string, string[]>; specPath?: string; snapshotPath?: string; recheckMs?: number; fullRecheckMs?: number; leaderRetryMs?: number; maxAgeMs?: number; ownSql?: boolean; id?: string } = {}): Promise<Made> {
  seq += 1;
  const specPath = opts.specPath ?? join(dir, `fleet-${seq}.yaml`);
  if (opts.nodes) await writeFile(specPath, specYaml(opts.nodes));
  const id = opts.id ?? `supervisor-${seq}`;
  let s = sql;
  if (opts.ownSql) {
    s = connectDb(db.url);
    extraSql.push(s);
  }
  const registry = createRegistry("supervisor", false);
  const sup = createSupervisor({
    config: {
      fleetSpecPath: specPath,
      snapshotPath: opts.snapshotPath,
      supervisorId: id,
      recheckMs: opts.recheckMs ?? 60_000,
      fullRecheckMs: opts.fullRecheckMs ?? 600_000,
      snapshotMaxAgeMs: opts.maxAgeMs ?? 30_000,
      actionTtlMs: 3_600_000,
      leaderRetryMs: opts.leaderRetryMs ?? 200,
    },
    nc,
    sql: s,
    logger: silentLogger(),
    registry,
  });
  running.push(sup);
  return { sup, registry, specPath, id };
}

const fresh = (s: Snapshot): Snapshot => ({ ...s, written_at: new Date().toISOString() });
async function putSnapshot(s: Snapshot): Promise<void> {
  await putWorldSnapshot(kv, s);
}
async function readReport(): Promise<DriftReport | undefined> {
  const r = await readDrift(kv);
  return r.ok ? r.value : undefined;
}
async function actions(): Promise<{ id: string; node: string; service: string; kind: string; state: string; drift_key: string; traceparent: string | null; proposed_by: string }[]> {
  return only(await actionsOf(sql), "id", "node", "service", "kind", "state", "drift_key", "traceparent", "proposed_by") as Awaited<ReturnType<typeof actions>>;
}
async function metric(r: Registry, name: string, labels = ""): Promise<number | undefined> {
  const text = await r.metrics();
  const m = new RegExp(`^${name}\\{[^}]*${labels}[^}]*\\} (\\S+)$|^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1] ?? m[2]) : undefined;
}

describe("proposals", () => {
  it("a missing service gets exactly one pending action across many cycles, with audit and NOTIFY", async () => {
    const notified: string[] = [];
    const listener = await sql.listen("steward_actions", (id) => notified.push(id));
    try {
      await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
      const { sup, registry, id } = await make({ nodes: { n1: ["api", "db"] } });
      await sup.start();
      const results = [];
      for (let i = 0; i < 5; i++) results.push(await sup.runCycle());
      for (const r of results) expect(r.status).toBe("ok");
      const rows = await actions();
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ node: "n1", service: "db", kind: "start", state: "pending", drift_key: "missing:n1/db", proposed_by: id });
      const audit = only(await auditOf(sql, rows[0]!.id), "from_state", "to_state", "actor", "channel", "detail");
      expect(audit).toEqual([{ from_state: null, to_state: "pending", actor: id, channel: "supervisor", detail: expect.stringContaining("db") }]);
      const [exp] = (await actionsOf(sql)).map((a) => ({ ttl: Math.round((Date.parse(a.expires_at) - Date.parse(a.created_at)) / 1000) }));
      expect(exp?.ttl).toBe(3600);
      await waitFor("notification", () => notified.length > 0);
      expect(notified).toEqual([rows[0]!.id]);
      expect(await metric(registry, "steward_supervisor_actions_proposed_total", 'kind="start"')).toBe(1);
      expect(await metric(registry, "steward_supervisor_drift", 'kind="missing"')).toBe(1);
      expect(await metric(registry, "steward_supervisor_is_leader")).toBe(1);
      const report = await readReport();
      expect(report?.drifts.map((d) => d.key)).toEqual(["missing:n1/db"]);
      expect(report?.skipped).toBeNull();
    } finally {
      await listener.unlisten();
    }
  });

  it("the proposal span continues the trace carried in the snapshot", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1, traceparent: TP })])])));
    const { sup } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await sup.runCycle();
    const [row] = await actions();
    expect(row).toMatchObject({ kind: "restart", drift_key: "down:n1/api" });
    const [, traceId, spanId] = TP.split("-");
    const parts = row!.traceparent!.split("-");
    expect(parts[1]).toBe(traceId);
    expect(parts[2]).not.toBe(spanId);
  });

  it("two writers proposing the same drift at once insert one action", async () => {
    const other = connectDb(db.url);
    extraSql.push(other);
    const drifts = computeDrift(spec({ n1: ["api"] }), fresh(snapshot([node("n1", [])])), new Date(), { snapshotMaxAgeMs: 30_000 });
    const opts = { now: new Date(), ttlMs: 60_000 };
    const [a, b] = await Promise.all([proposeActions(sql, drifts, { ...opts, supervisorId: "a" }), proposeActions(other, drifts, { ...opts, supervisorId: "b" })]);
    expect(a.length + b.length).toBe(1);
    expect(await actions()).toHaveLength(1);
    expect(await auditOf(sql)).toHaveLength(1);
  });

  it("a stale node is unknown: alert drift, nothing proposed", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "unknown", health: "unknown" })], { status: "stale" })])));
    const { sup } = await make({ nodes: { n1: ["api", "db"] } });
    await sup.start();
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.drifts.map((d) => [d.kind, d.severity, d.proposes])).toEqual([
      ["unknown", "alert", null],
      ["unknown", "alert", null],
    ]);
    expect(r.status === "ok" && r.proposed).toEqual([]);
    expect(await actions()).toEqual([]);
  });

  it("a snapshot older than SNAPSHOT_MAX_AGE_MS makes everything unknown and proposes nothing", async () => {
    const old = snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])], new Date(Date.now() - 5_000).toISOString());
    await putSnapshot(old);
    const { sup } = await make({ nodes: { n1: ["api", "db"] }, maxAgeMs: 2_000 });
    await sup.start();
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.drifts.map((d) => d.key)).toEqual(["unknown:n1/api", "unknown:n1/db"]);
    expect(await actions()).toEqual([]);
  });

  it("a drift that clears expires its pending action with an audit entry; unknown does not clear it", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])])));
    const { sup, registry, id } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await sup.runCycle();
    const [row] = await actions();
    expect(row?.state).toBe("pending");

    // Each KV put also triggers a cycle through the watch, so assert on the database, not on one cycle's result.
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "unknown", health: "unknown" })], { status: "stale" })])));
    const r1 = await sup.runCycle();
    expect(r1.status === "ok" && r1.drifts.map((d) => d.kind)).toEqual(["unknown"]);
    expect((await actions())[0]?.state).toBe("pending");

    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const r2 = await sup.runCycle();
    expect(r2.status === "ok" && r2.drifts).toEqual([]);
    expect(await actions()).toEqual([expect.objectContaining({ id: row!.id, state: "expired" })]);
    const audit = only(await auditOf(sql, row!.id), "from_state", "to_state", "actor", "channel", "detail");
    expect(audit).toEqual([
      expect.objectContaining({ from_state: null, to_state: "pending" }),
      { from_state: "pending", to_state: "expired", actor: id, channel: "supervisor", detail: "drift cleared: down:n1/api" },
    ]);
    expect(await metric(registry, "steward_supervisor_actions_expired_total")).toBe(1);
    // Not pending any more: a later cycle leaves it alone.
    const r3 = await sup.runCycle();
    expect(r3.status === "ok" && r3.expired).toEqual([]);
  });

  it("a pending pull whose repo drift cleared is expired, but not while its node is stale", async () => {
    const { sup } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    const insertPull = () => seedAction(sql, { node: "n1", service: "@repo", kind: "pull", reason: "checkout behind", driftKey: "repo_drift:n1/@repo", proposedBy: "test" });

    // Node stale: unknown is never "cleared", so the node-wide pull stays pending.
    const keep = await insertPull();
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "unknown", health: "unknown" })], { status: "stale" })])));
    await sup.runCycle();
    expect((await actions()).find((a) => a.id === keep)?.state).toBe("pending");

    // Node up, no repo drift any more: the pull is no longer wanted.
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    await sup.runCycle();
    expect((await actions()).find((a) => a.id === keep)?.state).toBe("expired");
  });

  it("a pending rollout takes in nodes that drift later; an approved one does not", async () => {
    const drift = (node: string) => ({ key: `config_drift:${node}/shop`, kind: "config_drift" as const, node, service: "shop", severity: "action" as const, message: `shop differs on ${node}`, since: null, proposes: "deploy" as const });
    const opts = { supervisorId: "sup-x", now: new Date(), ttlMs: 60_000 };
    const [first] = await proposeActions(sql, [drift("n1"), drift("n2")], opts);
    expect(first?.params).toEqual({ nodes: ["n1", "n2"] });
    expect(await proposeActions(sql, [drift("n0"), drift("n1"), drift("n2"), drift("n3")], opts)).toEqual([]);
    const row = (await actionsOf(sql)).find((a) => a.id === first!.id) as { params: { nodes: string[] } } | undefined;
    expect(row?.params.nodes).toEqual(["n0", "n1", "n2", "n3"]);
    const audit = only(await auditOf(sql, first!.id), "from_state", "to_state", "detail");
    expect(audit.at(-1)).toMatchObject({ from_state: "pending", to_state: "pending", detail: expect.stringMatching(/^rollout extended to n0, n1, n2, n3/) });
    // Once approved, a node drifting later gets a rollout of its own.
    expect((await createActionsRepository(sql).approve(first!.id, "alice", "cli")).ok).toBe(true);
    const later = await proposeActions(sql, [drift("n1"), drift("n4")], opts);
    expect(later.map((a) => [a.node, a.params])).toEqual([["n4", {}]]);
  });

  it("a pending action the planner diagnosed is not expired when its drift clears for a moment", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])])));
    const { sup } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await sup.runCycle();
    for (const a of await actions()) await overwriteAction(sql, a.id, { taskId: "task-1", diagnosis: "crash loop: missing config" });
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.expired).toEqual([]);
    expect((await actions())[0]?.state).toBe("pending");
  });

  it("a revision whose rollout failed is held back: alert naming the action, no new deploy; another revision is proposed", async () => {
    const drift = (target: string) => ({ key: "config_drift:n1/shop", kind: "config_drift" as const, node: "n1", service: "shop", severity: "action" as const, message: "shop differs", since: null, proposes: "deploy" as const, target });
    const now = new Date();
    const failed = { id: await seedAction(sql, { node: "n1", service: "shop", kind: "deploy", state: "failed", reason: "roll out", proposedBy: "sup", params: { nodes: ["n1", "n2"], target_config_hash: "sha256:bad" } }) };
    const [held] = await holdFailedRevisions(sql, [drift("sha256:bad")], { now, holdMs: 3_600_000 });
    expect(held).toMatchObject({ kind: "config_drift", severity: "alert", proposes: null });
    expect(held?.message).toContain(`not proposed again: the rollout of this revision failed (action ${failed!.id.slice(0, 8)}`);
    expect(await proposeActions(sql, [held!], { supervisorId: "s", now, ttlMs: 60_000 })).toEqual([]);

    const [fresh] = await holdFailedRevisions(sql, [drift("sha256:good")], { now, holdMs: 3_600_000 });
    expect(fresh).toMatchObject({ severity: "action", proposes: "deploy" });
    // Past the hold window the same revision may be tried again.
    const [later] = await holdFailedRevisions(sql, [drift("sha256:bad")], { now: new Date(now.getTime() + 2 * 3_600_000), holdMs: 3_600_000 });
    expect(later).toMatchObject({ proposes: "deploy" });
  });

  it("an approved action is not expired when its drift clears", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])])));
    const { sup } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await sup.runCycle();
    for (const a of await actions()) expect((await createActionsRepository(sql).approve(a.id, "alice", "cli")).ok).toBe(true);
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.expired).toEqual([]);
    expect((await actions())[0]?.state).toBe("approved");
  });
});

describe("unreadable input skips the cycle", () => {
  it("a truncated snapshot file skips the cycle, proposes nothing and keeps the last good report", async () => {
    const snapPath = join(dir, "world-trunc.json");
    const good = fresh(snapshot([node("n1", [svc("api"), svc("extra", { declared: false })])]));
    await writeFile(snapPath, JSON.stringify(good));
    const { sup, registry } = await make({ nodes: { n1: ["api"] }, snapshotPath: snapPath });
    await sup.start();
    const ok = await sup.runCycle();
    expect(ok.status === "ok" && ok.drifts.map((d) => d.key)).toEqual(["unmanaged:n1/extra"]);
    const goodReport = await readReport();

    const text = JSON.stringify(good);
    for (const broken of [text.slice(0, Math.floor(text.length / 2)), "", "{}"]) {
      await writeFile(snapPath, broken);
      const r = await sup.runCycle();
      expect(r).toMatchObject({ status: "skipped", reason: "snapshot_invalid" });
    }
    expect(await actions()).toEqual([]);
    const report = await readReport();
    expect(report?.drifts).toEqual(goodReport?.drifts);
    expect(report?.computed_at).toBe(goodReport?.computed_at);
    expect(report?.skipped?.reason).toMatch(/^snapshot_invalid/);
    expect(await metric(registry, "steward_supervisor_cycles_skipped_total", 'reason="snapshot_invalid"')).toBe(3);
    expect(await metric(registry, "steward_supervisor_drift", 'kind="unmanaged"')).toBe(1);

    await writeFile(snapPath, JSON.stringify(fresh(snapshot([node("n1", [])]))));
    const back = await sup.runCycle();
    expect(back.status === "ok" && back.proposed.map((a) => a.drift_key)).toEqual(["missing:n1/api"]);
    expect((await readReport())?.skipped).toBeNull();
  });

  it("an invalid spec skips the cycle; fixing it resumes", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [])])));
    const specPath = join(dir, "fleet-invalid.yaml");
    await writeFile(specPath, "version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n");
    const { sup, registry } = await make({ specPath });
    await sup.start();
    expect(await sup.runCycle()).toMatchObject({ status: "skipped", reason: "spec_invalid" });
    await writeFile(specPath, "version: 1\nnodes: [unterminated\n");
    expect(await sup.runCycle()).toMatchObject({ status: "skipped", reason: "spec_invalid" });
    expect(await actions()).toEqual([]);
    expect(await metric(registry, "steward_supervisor_cycles_skipped_total", 'reason="spec_invalid"')).toBeGreaterThanOrEqual(2);
    expect((await readReport())?.skipped?.reason).toMatch(/^spec_invalid/);

    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const r = await sup.runCycle();
    expect(r.status === "ok" && r.proposed).toHaveLength(1);
  });
});

describe("triggers", () => {
  it("adding a service to the spec while it runs gets it proposed without a restart", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup, specPath } = await make({ nodes: { n1: ["api"] }, recheckMs: 150 });
    await sup.start();
    await waitFor("first report", () => readReport());
    expect(await actions()).toEqual([]);
    await writeFile(specPath, specYaml({ n1: ["api", "web"] }));
    const rows = await waitFor("proposal for web", async () => {
      const r = await actions();
      return r.length > 0 ? r : undefined;
    }, 20_000);
    expect(rows.map((r) => r.drift_key)).toEqual(["missing:n1/web"]);
  });

  it("a new snapshot in KV triggers a cycle promptly, well before RECHECK_MS", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup } = await make({ nodes: { n1: ["api"] }, recheckMs: 30_000 });
    await sup.start();
    await waitFor("first report", () => readReport());
    const t0 = Date.now();
    await putSnapshot(fresh(snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])])));
    await waitFor("restart proposal", async () => (await actions()).length > 0, 20_000, 10);
    // Promptly: a third of RECHECK_MS at most, generous for a busy machine and still far from waiting for the timer.
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(10_000);
    expect((await actions())[0]?.kind).toBe("restart");
  });

  it("a change on one node diffs and writes only that node; the full re-check diffs every node and rewrites none", async () => {
    const names = Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(2, "0")}`);
    const world = snapshot(names.map((n, i) => node(n, [svc("api", i % 10 === 0 ? { state: "exited", starts: 1 } : {})])), new Date().toISOString());
    // One writer, as the observer: a later write sends only the node records that changed.
    const writer = createWorldWriter({ kv, observerId: "observer-test" });
    await writer.write(world.world, world.written_at);
    const { sup, registry } = await make({ nodes: Object.fromEntries(names.map((n) => [n, ["api"]])), fullRecheckMs: 600_000 });
    await sup.start();
    await waitFor("first report", async () => (await readReport())?.drifts.length === 4);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')).toBe(40);
    const revisions = async () => Object.fromEntries(await Promise.all(names.map(async (n) => [n, (await kv.get(driftNodeKey(n)))?.revision ?? 0] as const)));
    const before = await revisions();

    world.world.nodes["n07"] = node("n07", [svc("api", { state: "failed", starts: 1 })]);
    world.world.last_seq += 1;
    await writer.write(world.world, new Date().toISOString());
    const report = await waitFor("n07 down in the report", async () => {
      const r = await readReport();
      return r?.drifts.some((d) => d.key === "down:n07/api") ? r : undefined;
    });
    expect(report.drifts.map((d) => d.key)).toEqual(["down:n00/api", "down:n07/api", "down:n10/api", "down:n20/api", "down:n30/api"]);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="changes"')).toBe(1);
    const after = await revisions();
    expect(names.filter((n) => after[n] !== before[n])).toEqual(["n07"]);
    expect(await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')).toBe(40);
  });

  it("the slow full re-check diffs every node without a change, and an unchanged report rewrites no node record", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `n${i}`);
    await putSnapshot(fresh(snapshot(names.map((n) => node(n, [svc("api", { state: "exited", starts: 1 })])))));
    const { sup, registry } = await make({ nodes: Object.fromEntries(names.map((n) => [n, ["api"]])), fullRecheckMs: 300, maxAgeMs: 600_000 });
    await sup.start();
    await waitFor("first report", async () => (await readReport())?.drifts.length === 20);
    const revs = async () => Promise.all(names.map(async (n) => (await kv.get(driftNodeKey(n)))?.revision));
    const before = await revs();
    await waitFor("three more full re-checks", async () => ((await metric(registry, "steward_supervisor_nodes_diffed_total", 'cycle="full"')) ?? 0) >= 80, 20_000);
    expect(await revs()).toEqual(before);
  });

  it("cycles triggered while one runs are coalesced", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const { sup, registry } = await make({ nodes: { n1: ["api"] } });
    await sup.start();
    await waitFor("first report", () => readReport());
    const before = (await metric(registry, "steward_supervisor_cycles_total", 'result="ok"')) ?? 0;
    const results = await Promise.all(Array.from({ length: 10 }, () => sup.runCycle()));
    expect(results.every((r) => r.status === "ok")).toBe(true);
    const after = (await metric(registry, "steward_supervisor_cycles_total", 'result="ok"')) ?? 0;
    expect(after - before).toBeLessThanOrEqual(2);
  });
});

describe("leader lock", () => {
  const lockHolder = async (): Promise<number | undefined> => {
    const [row] = await sql<{ pid: number }[]>`
      SELECT pid FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid::text::bigint = ${SUPERVISOR_LOCK_KEY}::bigint
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
    return row?.pid;
  };

  it("of two supervisors only one proposes; stopping it hands over within seconds, without duplicates", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [])])));
    const specPath = join(dir, "fleet-leader.yaml");
    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const a = await make({ specPath, ownSql: true, id: "sup-a" });
    const b = await make({ specPath, ownSql: true, id: "sup-b" });
    await a.sup.start();
    await b.sup.start();
    expect(a.sup.isLeader()).toBe(true);
    expect(b.sup.isLeader()).toBe(false);
    expect(await b.sup.runCycle()).toEqual({ status: "standby" });
    expect((await a.sup.runCycle()).status).toBe("ok");
    expect(await metric(b.registry, "steward_supervisor_is_leader")).toBe(0);
    const rows = await actions();
    expect(rows.map((r) => r.proposed_by)).toEqual(["sup-a"]);

    const t0 = Date.now();
    await a.sup.stop();
    // Within seconds (b retries the lock every 200 ms), not after a lease or session timeout.
    await waitFor("b to take over", () => b.sup.isLeader(), 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const r = await b.sup.runCycle();
    expect(r.status === "ok" && r.proposed).toEqual([]);
    await writeFile(specPath, specYaml({ n1: ["api", "web"] }));
    await b.sup.runCycle();
    await b.sup.runCycle();
    const after = await actions();
    expect(after.map((x) => `${x.drift_key}@${x.proposed_by}`)).toEqual(["missing:n1/api@sup-a", "missing:n1/web@sup-b"]);
  });

  it("when the leader's connection dies the lock is released and exactly one supervisor leads again", async () => {
    await putSnapshot(fresh(snapshot([node("n1", [svc("api")])])));
    const specPath = join(dir, "fleet-leader2.yaml");
    await writeFile(specPath, specYaml({ n1: ["api"] }));
    const a = await make({ specPath, ownSql: true, id: "sup-c" });
    const b = await make({ specPath, ownSql: true, id: "sup-d" });
    await a.sup.start();
    await b.sup.start();
    const first = await lockHolder();
    expect(first).toBeDefined();
    await sql`SELECT pg_terminate_backend(${first!})`;
    await waitFor("a new lock holder", async () => {
      const pid = await lockHolder();
      return pid !== undefined && pid !== first;
    }, 20_000);
    await waitFor("exactly one leader", () => a.sup.isLeader() !== b.sup.isLeader(), 20_000);
    const leaders = [a, b].filter((x) => x.sup.isLeader());
    expect(leaders).toHaveLength(1);
    expect((await leaders[0]!.sup.runCycle()).status).toBe("ok");
  });
});
