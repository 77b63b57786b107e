import { describe, expect, it } from "vitest";
import type { NewAction } from "../src/repository.js";
import { proposal, proposeNew, useActionsDatabase } from "./fixture.js";

const fx = useActionsDatabase("steward_holds");
const pendingId = (over: Partial<NewAction> = {}): Promise<string> => proposeNew(fx.repo, proposal(over));

describe("holds: a rejection holds the drift its action was proposed for", () => {
  it("a rejection without a time holds the drift's cause until it changes or clears", async () => {
    const id = await pendingId();
    expect((await fx.repo.reject(id, "alice", "cli", " investigating first ")).ok).toBe(true);
    expect(await fx.repo.listHolds()).toEqual([
      expect.objectContaining({ action_id: id, node: "n1", service: "api", kind: "restart", nodes: ["n1"], cause: "down", target: null, held_by: "alice", channel: "cli", reason: "investigating first", until: null, ended_at: null }),
    ]);
  });

  it("--for sets when the hold ends, by the database's clock", async () => {
    const id = await pendingId();
    const before = Date.now();
    await fx.repo.reject(id, "alice", "cli", "not now", { holdForMs: 2 * 3_600_000 });
    const until = Date.parse((await fx.repo.getHold(id))?.until ?? "");
    expect(until).toBeGreaterThanOrEqual(before + 2 * 3_600_000 - 60_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 2 * 3_600_000 + 60_000);
  });

  it("a rollout holds its nodes and revision", async () => {
    const id = await pendingId({ kind: "deploy", service: "shop", driftKey: "config_drift:n1/shop", params: { nodes: ["n1", "n2"], target_config_hash: "sha256:aaa" } });
    await fx.repo.reject(id, "bob", "web", "bad release");
    expect(await fx.repo.getHold(id)).toMatchObject({ kind: "deploy", nodes: ["n1", "n2"], cause: "config_drift", target: "sha256:aaa" });
  });

  it("an action not proposed for a drift is held only when given a time (then by time alone)", async () => {
    const planned = await pendingId({ driftKey: null, proposedBy: "planner" });
    await fx.repo.reject(planned, "alice", "cli", "no");
    expect(await fx.repo.getHold(planned)).toBeUndefined();
    const timed = await pendingId({ service: "web", driftKey: null, proposedBy: "planner" });
    await fx.repo.reject(timed, "alice", "cli", "not for an hour", { holdForMs: 3_600_000 });
    expect(await fx.repo.getHold(timed)).toMatchObject({ cause: null, until: expect.any(String) });
  });

  it("a refused rejection (not pending) leaves no hold; a bad time is refused before anything changes", async () => {
    const id = await pendingId();
    await fx.repo.approve(id, "alice", "cli");
    expect(await fx.repo.reject(id, "bob", "cli", "no")).toMatchObject({ ok: false, code: "invalid_transition" });
    expect(await fx.repo.listHolds()).toEqual([]);
    const other = await pendingId({ service: "web", driftKey: "down:n1/web" });
    expect(() => fx.repo.reject(other, "bob", "cli", "no", { holdForMs: 0 })).toThrow(/positive/);
    expect((await fx.repo.get(other))?.action.state).toBe("pending");
  });

  it("ending a hold records why and who in the hold and in its action's audit log, once", async () => {
    const id = await pendingId();
    await fx.repo.reject(id, "alice", "cli", "investigating first");
    const ended = await fx.repo.endHold(id, { actor: "bob", channel: "cli", detail: "released: found it" });
    expect(ended).toMatchObject({ ok: true, hold: { ended_at: expect.any(String), end_reason: "released: found it (bob, cli)" } });
    expect(await fx.repo.listHolds()).toEqual([]);
    expect(await fx.repo.endHold(id, { actor: "sup", channel: "supervisor", detail: "hold ended: the drift cleared" })).toMatchObject({ ok: false, code: "ended" });
    expect(await fx.repo.endHold("00000000-0000-4000-8000-000000000000", { actor: "bob", channel: "cli" })).toEqual({ ok: false, code: "not_found" });
    expect(await fx.repo.endHold("nope", { actor: "bob", channel: "cli" })).toEqual({ ok: false, code: "not_found" });
    const audit = (await fx.repo.audit(id)).map((a) => [a.from_state, a.to_state, a.actor, a.channel, a.detail]);
    expect(audit.at(-1)).toEqual(["rejected", "rejected", "bob", "cli", "released: found it"]);
    expect(audit.filter((a) => a[0] === "rejected")).toHaveLength(1);
  });
});
