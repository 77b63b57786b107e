import { randomUUID } from "node:crypto";
import { auditOf, only } from "@steward/actions/testing";
import { beforeAll, describe, expect, it } from "vitest";
import { putDriftReport } from "@steward/world/testing";
import type { Action, AuditEntry } from "@steward/contracts/action";
import type { DriftReport } from "@steward/contracts/drift";
import { API_TOKEN, api, insertAction, putWorld, service, snapshot, stateOf, type Env, useApiOnlyExecutor } from "./helpers.js";

const executor = useApiOnlyExecutor();
let env: Env;
let url: string;
beforeAll(() => ({ env, url } = executor));

const err = (b: unknown) => (b as { error: { code: string; message: string; field?: string; state?: string } }).error;

describe("auth", () => {
  it("refuses /api/* without a token or with a wrong one, changing nothing", async () => {
    const id = await insertAction(env.sql);
    for (const token of [null, "wrong-token-wrong-token", ""]) {
      const r = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: {}, token });
      expect(r.status).toBe(401);
      expect(err(r.body).code).toBe("unauthorized");
      expect((await api(url, "/api/actions", { token })).status).toBe(401);
      expect((await api(url, "/api/world", { token })).status).toBe(401);
    }
    expect(await stateOf(env.sql, id)).toBe("pending");
    const audit = await auditOf(env.sql, id);
    expect(audit.length).toBe(0);
  });

  it("serves /healthz without a token, and no /metrics on the API port (they have a listener of their own)", async () => {
    expect((await api(url, "/healthz", { token: null })).status).toBe(200);
    for (const token of [null, API_TOKEN]) expect((await api(url, "/metrics", { token })).status).toBe(404);
  });
});

describe("transitions through the API", () => {
  it("approve of an unknown or malformed id is 404", async () => {
    for (const id of [randomUUID(), "not-a-uuid", "1' OR '1'='1"]) {
      const r = await api(url, `/api/actions/${encodeURIComponent(id)}/approve`, { method: "POST", body: {} });
      expect(r.status).toBe(404);
      expect(err(r.body).code).toBe("not_found");
    }
    expect((await api(url, `/api/actions/${randomUUID()}`)).status).toBe(404);
    expect((await api(url, `/api/actions/nope`)).status).toBe(404);
  });

  it("approve records the credential's name (not the body's actor) and the channel; approving twice is 409 and changes nothing", async () => {
    const id = await insertAction(env.sql);
    const first = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: { actor: "alice", channel: "cli" } });
    expect(first.status).toBe(200);
    expect((first.body as { action: Action }).action.state).toBe("approved");
    const second = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: { actor: "bob", channel: "cli" } });
    expect(second.status).toBe(409);
    expect(err(second.body)).toMatchObject({ code: "invalid_transition", state: "approved", message: "action is approved, not pending" });
    expect(await stateOf(env.sql, id)).toBe("approved");
    const shown = await api(url, `/api/actions/${id}`);
    const { audit } = shown.body as { action: Action; audit: AuditEntry[] };
    expect(audit.map((a) => [a.from_state, a.to_state, a.actor, a.channel])).toEqual([["pending", "approved", "admin", "cli"]]);
  });

  it("approve with no body records the credential (the bootstrap 'admin') and channel 'api'", async () => {
    const id = await insertAction(env.sql);
    const r = await api(url, `/api/actions/${id}/approve`, { method: "POST" });
    expect(r.status).toBe(200);
    const [a] = only(await auditOf(env.sql, id), "actor", "channel");
    expect(a).toMatchObject({ actor: "admin", channel: "api" });
  });

  it("reject needs a non-blank reason (422 naming the field)", async () => {
    const id = await insertAction(env.sql);
    for (const body of [{}, { reason: "" }, { reason: "   " }, { reason: 42 }]) {
      const r = await api(url, `/api/actions/${id}/reject`, { method: "POST", body });
      expect(r.status).toBe(422);
      expect(err(r.body)).toMatchObject({ code: "invalid", field: "reason" });
    }
    expect(await stateOf(env.sql, id)).toBe("pending");
  });

  it("reject then approve is 409 and the action stays rejected", async () => {
    const id = await insertAction(env.sql);
    const rej = await api(url, `/api/actions/${id}/reject`, { method: "POST", body: { reason: "not now, maintenance window", actor: "carol", channel: "cli" } });
    expect(rej.status).toBe(200);
    const app = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: {} });
    expect(app.status).toBe(409);
    expect(err(app.body)).toMatchObject({ code: "invalid_transition", state: "rejected", message: "action is rejected, not pending" });
    expect(await stateOf(env.sql, id)).toBe("rejected");
    const audit = only(await auditOf(env.sql, id), "from_state", "to_state", "actor", "channel", "detail");
    expect(audit.map((r) => ({ ...r }))).toEqual([{ from_state: "pending", to_state: "rejected", actor: "admin", channel: "cli", detail: "not now, maintenance window" }]);
  });

  it("approving a pending action past its expiry expires it instead (409)", async () => {
    const id = await insertAction(env.sql, { expiresInMs: -1000 });
    const r = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: {} });
    expect(r.status).toBe(409);
    expect(err(r.body).state).toBe("expired");
    expect(await stateOf(env.sql, id)).toBe("expired");
  });

  it("bad bodies: invalid JSON 400, too large 413, bad channel 422; state unchanged", async () => {
    const id = await insertAction(env.sql);
    const bad = await api(url, `/api/actions/${id}/approve`, { method: "POST", rawBody: "{not json" });
    expect(bad.status).toBe(400);
    expect(err(bad.body).code).toBe("invalid_json");
    const big = await api(url, `/api/actions/${id}/approve`, { method: "POST", rawBody: JSON.stringify({ actor: "x".repeat(70 * 1024) }) });
    expect(big.status).toBe(413);
    const ch = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: { channel: "telepathy" } });
    expect(ch.status).toBe(422);
    expect(err(ch.body).field).toBe("channel");
    expect(await stateOf(env.sql, id)).toBe("pending");
  });
});

describe("reads", () => {
  it("lists by state and limit; a bad state or limit is 400 naming the field", async () => {
    const ids = [await insertAction(env.sql), await insertAction(env.sql)];
    const r = await api(url, "/api/actions?state=pending&limit=500");
    expect(r.status).toBe(200);
    const listed = (r.body as { actions: Action[] }).actions;
    expect(listed.every((a) => a.state === "pending")).toBe(true);
    expect(listed.map((a) => a.id)).toEqual(expect.arrayContaining(ids));
    expect(((await api(url, "/api/actions?limit=1")).body as { actions: Action[] }).actions).toHaveLength(1);
    const badState = await api(url, "/api/actions?state=sleeping");
    expect(badState.status).toBe(400);
    expect(err(badState.body).field).toBe("state");
    for (const limit of ["0", "-1", "abc", "501", "1.5"]) {
      const bl = await api(url, `/api/actions?limit=${limit}`);
      expect(bl.status).toBe(400);
      expect(err(bl.body).field).toBe("limit");
    }
  });

  it("world and drift: 503 without a document, the document once written", async () => {
    const none = await api(url, "/api/world");
    expect(none.status).toBe(503);
    expect(err(none.body).code).toBe("no_snapshot");
    expect((await api(url, "/api/drift")).status).toBe(503);
    const snap = snapshot({ "node-1": [service("web")] });
    await putWorld(env.kv, snap);
    const w = await api(url, "/api/world");
    expect(w.status).toBe(200);
    expect(w.body).toEqual(snap);
    const drift: DriftReport = { computed_at: new Date().toISOString(), snapshot_written_at: snap.written_at, world_seq: 1, supervisor_id: "s", skipped: null, drifts: [] };
    await putDriftReport(env.kv, drift);
    expect((await api(url, "/api/drift")).body).toEqual(drift);
  });

  it("unknown routes are 404", async () => {
    expect((await api(url, "/api/nothing")).status).toBe(404);
    expect((await api(url, "/elsewhere", { token: null })).status).toBe(404);
  });
});
