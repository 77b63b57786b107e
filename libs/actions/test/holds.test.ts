import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, type TestDatabase } from "@steward/testkit";
import { createActionsRepository, type ActionsRepository, type NewAction } from "../src/repository.js";
import { clearActions } from "../src/testing.js";

let db: TestDatabase;
let sql: Sql;
let repo: ActionsRepository;

beforeAll(async () => {
  db = await createTestDatabase("steward_holds");
  sql = connectDb(db.url);
  await migrate(sql);
  repo = createActionsRepository(sql);
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await db?.drop();
});

beforeEach(() => clearActions(sql));

async function pendingId(over: Partial<NewAction> = {}): Promise<string> {
  const r = await repo.propose({
    node: "n1",
    service: "api",
    kind: "restart",
    reason: "api is down",
    driftKey: "down:n1/api",
    proposedBy: "sup-1",
    channel: "supervisor",
    auditDetail: "api is down",
    now: new Date(),
    ttlMs: 3_600_000,
    traceparent: null,
    ...over,
  });
  if (!r.proposed) throw new Error("expected a new action");
  return r.action.id;
}

describe("holds: a rejection holds the drift its action was proposed for", () => {
  it("a rejection without a time holds the drift's cause until it changes or clears", async () => {
    const id = await pendingId();
    expect((await repo.reject(id, "alice", "cli", " investigating first ")).ok).toBe(true);
    expect(await repo.listHolds()).toEqual([
      expect.objectContaining({ action_id: id, node: "n1", service: "api", kind: "restart", nodes: ["n1"], cause: "down", target: null, held_by: "alice", channel: "cli", reason: "investigating first", until: null, ended_at: null }),
    ]);
  });

  it("--for sets when the hold ends, by the database's clock", async () => {
    const id = await pendingId();
    const before = Date.now();
    await repo.reject(id, "alice", "cli", "not now", { holdForMs: 2 * 3_600_000 });
    const until = Date.parse((await repo.getHold(id))?.until ?? "");
    expect(until).toBeGreaterThanOrEqual(before + 2 * 3_600_000 - 60_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000 + 60_000);
  });

  it("a rollout holds its nodes and revision", async () => {
    const id = await pendingId({ kind: "deploy", service: "shop", driftKey: "config_drift:n1/shop", params: { nodes: ["n1", "n2"], target_config_hash: "sha256:aaa" } });
    await repo.reject(id, "bob", "web", "bad release");
    expect(await repo.getHold(id)).toMatchObject({ kind: "deploy", nodes: ["n1", "n2"], cause: "config_drift", target: "sha256:aaa" });
  });

  it("an action not proposed for a drift is held only when given a time (then by time alone)", async () => {
    const planned = await pendingId({ driftKey: null, proposedBy: "planner" });
    await repo.reject(planned, "alice", "cli", "no");
    expect(await repo.getHold(planned)).toBeUndefined();
    const timed = await pendingId({ service: "web", driftKey: null, proposedBy: "planner" });
    await repo.reject(timed, "alice", "cli", "not for an hour", { holdForMs: 3_600_000 });
    expect(await repo.getHold(timed)).toMatchObject({ cause: null, until: expect.any(String) });
  });

  it("a refused rejection (not pending) leaves no hold; a bad time is refused before anything changes", async () => {
    const id = await pendingId();
    await repo.approve(id, "alice", "cli");
    expect(await repo.reject(id, "bob", "cli", "no")).toMatchObject({ ok: false, code: "invalid_transition" });
    expect(await repo.listHolds()).toEqual([]);
    const other = await pendingId({ service: "web", driftKey: "down:n1/web" });
    expect(() => repo.reject(other, "bob", "cli", "no", { holdForMs: 0 })).toThrow(/positive/);
    expect((await repo.get(other))?.action.state).toBe("pending");
  });

  it("ending a hold records why and who in the hold and in its action's audit log, once", async () => {
    const id = await pendingId();
    await repo.reject(id, "alice", "cli", "investigating first");
    const ended = await repo.endHold(id, { actor: "bob", channel: "cli", detail: "released: found it" });
    expect(ended).toMatchObject({ ok: true, hold: { ended_at: expect.any(String), end_reason: "released: found it (bob, cli)" } });
    expect(await repo.listHolds()).toEqual([]);
    expect(await repo.endHold(id, { actor: "sup", channel: "supervisor", detail: "hold ended: the drift cleared" })).toMatchObject({ ok: false, code: "ended" });
    expect(await repo.endHold("00000000-0000-4000-8000-000000000000", { actor: "bob", channel: "cli" })).toEqual({ ok: false, code: "not_found" });
    expect(await repo.endHold("nope", { actor: "bob", channel: "cli" })).toEqual({ ok: false, code: "not_found" });
    const audit = (await repo.audit(id)).map((a) => [a.from_state, a.to_state, a.actor, a.channel, a.detail]);
    expect(audit.at(-1)).toEqual(["rejected", "rejected", "bob", "cli", "released: found it"]);
    expect(audit.filter((a) => a[0] === "rejected")).toHaveLength(1);
  });
});
