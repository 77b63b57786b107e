import type { Sql } from "@steward/platform/db";
import { beforeAll, describe, expect, it } from "vitest";
import { actionsOf, overwriteAction, seedAction, auditOf, only } from "@steward/actions/testing";
import { createActionsRepository } from "@steward/actions/repository";
import { computeDrift } from "@steward/fleet/diff";
import { waitFor } from "@steward/testkit";
import { TP, node, snapshot, spec, svc } from "./fixtures.js";
import { actions, fresh, holdFailedRevisions, make, metric, ownSql, proposeActions, putSnapshot, readReport, live, useSupervisorHarness } from "./harness.js";

/** A live supervisor proposes, expires and holds actions as the world and the actions table change. */
useSupervisorHarness();
let sql: Sql;
beforeAll(() => ({ sql } = live));

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
    const other = ownSql();
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
