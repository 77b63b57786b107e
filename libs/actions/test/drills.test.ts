import { beforeAll, describe, expect, it } from "vitest";
import { ActionKind } from "@steward/contracts/action";
import type { DrillResult } from "@steward/contracts/drill";
import type { NewAction } from "../src/repository.js";
import { createDrillsRepository, type DrillsRepository } from "../src/drills.js";
import { proposal, proposeNew, useActionsDatabase } from "./fixture.js";

const fx = useActionsDatabase("steward_drills");
let drills: DrillsRepository;
beforeAll(() => {
  drills = createDrillsRepository(fx.sql);
});

const t0 = new Date("2030-01-01T00:00:10.000Z");
const pendingId = (over: Partial<NewAction> = {}): Promise<string> =>
  proposeNew(fx.repo, proposal({ service: "web", reason: "web is down", driftKey: "down:n1/web", auditDetail: "web is down", now: new Date(t0.getTime() + 1000), ...over }));

const result = (drillId: string, over: Partial<DrillResult> = {}): DrillResult => ({
  drill_id: drillId,
  node: "n1",
  service: "web",
  verdict: "passed",
  reason: "healthy again after 1.2 s",
  objective_ms: 30_000,
  approve_restart: true,
  started_at: t0.toISOString(),
  detected_ms: 200,
  proposed_ms: 700,
  approved_ms: 800,
  recovered_ms: 1200,
  restart_action_id: null,
  approved_by: null,
  finished_at: new Date().toISOString(),
  ...over,
});

describe("the actions table's kinds", () => {
  it("are exactly the contract's ActionKind (the migration restates them; this keeps the two equal)", async () => {
    const [row] = await fx.sql<{ def: string }[]>`SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'actions_kind_check'`;
    const inDb = [...(row?.def ?? "").matchAll(/'([a-z_]+)'::text/g)].map((m) => m[1]).sort();
    expect(inDb).toEqual([...ActionKind.options].sort());
    for (const kind of ActionKind.options) await pendingId({ kind, service: `svc-${kind}` });
    expect((await fx.repo.list({ limit: 50 })).map((a) => a.kind).sort()).toEqual([...ActionKind.options].sort());
  });
});

describe("approveMatching: a policy approves only what it is bound to", () => {
  const match = { node: "n1", service: "web", kind: "restart" as const, createdFrom: t0, createdUntil: new Date(t0.getTime() + 60_000) };
  const audit = { actor: "drill:d1", channel: "policy" as const, detail: "approved by restart drill d1" };

  it("approves the matching pending action, audited with the drill as actor", async () => {
    const id = await pendingId();
    const r = await fx.repo.approveMatching(id, match, audit);
    expect(r).toMatchObject({ ok: true, action: { state: "approved" } });
    expect((await fx.repo.audit(id)).at(-1)).toMatchObject({ from_state: "pending", to_state: "approved", actor: "drill:d1", channel: "policy", detail: "approved by restart drill d1" });
  });

  it.each<[string, Partial<NewAction>]>([
    ["another node", { node: "n2" }],
    ["another service", { service: "db" }],
    ["another kind", { kind: "start" }],
    ["created before the window", { now: new Date(t0.getTime() - 1) }],
    ["created after the window", { now: new Date(t0.getTime() + 60_001) }],
  ])("refuses %s and changes nothing", async (_name, over) => {
    const id = await pendingId(over);
    expect(await fx.repo.approveMatching(id, match, audit)).toEqual({ ok: false, code: "not_found" });
    expect((await fx.repo.get(id))?.action.state).toBe("pending");
    expect(await fx.repo.audit(id)).toHaveLength(1);
  });
});

describe("drill results", () => {
  it("keeps one result per drill, lists drills with theirs, and gives each service's newest measured drill", async () => {
    const d1 = await pendingId({ kind: "drill", driftKey: null, params: { objective_ms: 30_000, window_ms: 90_000, approve_restart: true } });
    expect(await drills.record(result(d1, { verdict: "missed", finished_at: "2030-01-01T00:01:00.000Z" }))).toBe(true);
    expect(await drills.record(result(d1))).toBe(false);
    expect(await drills.result(d1)).toMatchObject({ drill_id: d1, verdict: "missed", started_at: t0.toISOString(), recovered_ms: 1200 });
    await fx.sql`UPDATE actions SET state = 'succeeded' WHERE id = ${d1}`;
    const d2 = await pendingId({ kind: "drill", driftKey: null, now: new Date(t0.getTime() + 5000) });
    const listed = await drills.listDrills(10);
    expect(listed.map((d) => [d.action.id, d.result?.verdict ?? null])).toEqual([[d2, null], [d1, "missed"]]);
    expect(listed[1]?.result).toEqual(await drills.result(d1));
    // A refused drill measured nothing: the newest measured one still speaks for the service.
    await fx.sql`UPDATE actions SET state = 'failed' WHERE id = ${d2}`;
    await drills.record(result(d2, { verdict: "refused", started_at: null, finished_at: "2030-01-01T00:02:00.000Z" }));
    expect((await drills.latestDrillResults(365 * 86_400_000)).map((r) => [r.drill_id, r.verdict])).toEqual([[d1, "missed"]]);
    expect(await drills.listDrills(1)).toHaveLength(1);
    expect(await drills.result("not-a-uuid")).toBeUndefined();
  });
});
