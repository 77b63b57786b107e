import { overwriteAction, auditOf, only } from "@steward/actions/testing";
import { beforeAll, describe, expect, it } from "vitest";
import { checkClaims, deriveApprovalKey, executionHash, signToken, verifyToken, type TokenClaims } from "../src/approval-tokens.js";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { api, COMMAND_KEYS, insertAction, stateOf, type Env, useApiOnlyExecutor, ALERTER_TOKEN, API_TOKEN } from "./helpers.js";

const executor = useApiOnlyExecutor();
let env: Env;
let url = "";
beforeAll(() => ({ env, url } = executor));
const key = deriveApprovalKey(COMMAND_KEYS.signing);

interface Minted {
  approve: { token: string; path: string };
  reject: { token: string; path: string };
  expires_at: string;
}
const mint = async (id: string): Promise<Minted> => {
  const r = await api(url, "/approvals/tokens", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id } });
  expect(r.status).toBe(201);
  return r.body as Minted;
};
const press = (id: string, decision: string, token: string) => api(url, `/approvals/${id}/${decision}`, { method: "POST", body: { token }, token: null });
const audit = async (id: string) => only(await auditOf(env.sql, id), "from_state", "to_state", "actor", "channel", "detail");
const errorCode = (b: unknown) => (b as { error?: { code?: string; message?: string } }).error;

describe("approval tokens (pure)", () => {
  const claims: TokenClaims = { tid: "t1", aid: "a1", dec: "approve", h: "h1", exp: 2_000 };
  it.each([
    ["valid", { actionId: "a1", decision: "approve" as const, now: 1_000, execHash: "h1" }, undefined],
    ["other action", { actionId: "a2", decision: "approve" as const, now: 1_000, execHash: "h1" }, "wrong_action"],
    ["other decision", { actionId: "a1", decision: "reject" as const, now: 1_000, execHash: "h1" }, "wrong_decision"],
    ["expired", { actionId: "a1", decision: "approve" as const, now: 2_000, execHash: "h1" }, "expired"],
    ["changed", { actionId: "a1", decision: "approve" as const, now: 1_000, execHash: "h2" }, "changed"],
  ])("%s", (_n, want, code) => {
    expect(checkClaims(claims, want)).toBe(code);
  });

  it("verifies its own signature only", () => {
    const t = signToken(claims, key);
    expect(verifyToken(t, key)).toEqual({ ok: true, claims });
    expect(verifyToken(t, deriveApprovalKey(newCommandKeyPair().signing)).ok).toBe(false);
    const [p, body, mac] = t.split(".");
    const tampered = Buffer.from(JSON.stringify({ ...claims, aid: "a2" })).toString("base64url");
    expect(verifyToken(`${p}.${tampered}.${mac}`, key)).toEqual({ ok: false, code: "bad_signature" });
    expect(verifyToken(`${p}.${body}`, key)).toEqual({ ok: false, code: "malformed" });
  });

  it("uses a key derived from the executor's private key, never the key itself", () => {
    expect(key.length).toBe(32);
    expect(key.equals(COMMAND_KEYS.signing.privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32))).toBe(false);
    expect(deriveApprovalKey(COMMAND_KEYS.signing).equals(key)).toBe(true);
  });

  it("hashes exactly what will execute, independent of key order", () => {
    const a = executionHash({ kind: "deploy", node: "n", service: "s", params: { nodes: ["a", "b"], max_parallel: 1 } });
    expect(executionHash({ kind: "deploy", node: "n", service: "s", params: { max_parallel: 1, nodes: ["a", "b"] } })).toBe(a);
    expect(executionHash({ kind: "deploy", node: "n", service: "s", params: { max_parallel: 2, nodes: ["a", "b"] } })).not.toBe(a);
    expect(executionHash({ kind: "restart", node: "n", service: "s", params: {} })).not.toBe(executionHash({ kind: "start", node: "n", service: "s", params: {} }));
  });
});

describe("POST /approvals/:id/:decision (ntfy buttons)", () => {
  it("approves once with a valid token, audited with channel ntfy; the replay is refused and audited", async () => {
    const id = await insertAction(env.sql);
    const t = await mint(id);
    expect(t.approve.path).toBe(`/approvals/${id}/approve`);
    const ok = await press(id, "approve", t.approve.token);
    expect(ok.status).toBe(200);
    expect(await stateOf(env.sql, id)).toBe("approved");
    const again = await press(id, "approve", t.approve.token);
    expect(again.status).toBe(409);
    expect(errorCode(again.body)?.code).toBe("token_used");
    const rows = await audit(id);
    expect(rows.find((r) => r.to_state === "approved")).toMatchObject({ from_state: "pending", channel: "ntfy", actor: "ntfy-button" });
    expect(rows.at(-1)).toMatchObject({ from_state: "approved", to_state: "approved", channel: "ntfy" });
    expect(rows.at(-1)?.detail).toMatch(/token_used/);
  });

  it("rejects with the reject token", async () => {
    const id = await insertAction(env.sql);
    const t = await mint(id);
    const r = await press(id, "reject", t.reject.token);
    expect(r.status).toBe(200);
    expect(await stateOf(env.sql, id)).toBe("rejected");
  });

  it.each([
    ["forged (signed with another key)", 403, "forged_token"],
    ["expired", 410, "expired_token"],
    ["wrong decision (reject token on approve)", 403, "wrong_decision"],
    ["for another action", 403, "wrong_action"],
    ["not a token at all", 400, "invalid_token"],
    ["validly signed but never issued", 403, "unknown_token"],
    ["issued before what it runs changed", 409, "action_changed"],
  ])("%s: refused with a clear answer, audited, state unchanged", async (name, status, code) => {
    const id = await insertAction(env.sql);
    const t = await mint(id);
    const claims = verifyToken(t.approve.token, key);
    if (!claims.ok) throw new Error("minted token does not verify");
    let token: string;
    switch (code) {
      case "forged_token":
        token = signToken(claims.claims, deriveApprovalKey(newCommandKeyPair().signing));
        break;
      case "expired_token":
        token = signToken({ ...claims.claims, exp: Date.now() - 1000 }, key);
        break;
      case "wrong_decision":
        token = t.reject.token;
        break;
      case "wrong_action": {
        const other = await insertAction(env.sql);
        token = (await mint(other)).approve.token;
        break;
      }
      case "invalid_token":
        token = "hello";
        break;
      case "unknown_token":
        token = signToken({ ...claims.claims, tid: "never-issued" }, key);
        break;
      default:
        await overwriteAction(env.sql, id, { params: { extra: "changed" } });
        token = t.approve.token;
    }
    const r = await press(id, "approve", token);
    expect(r.status, name).toBe(status);
    expect(errorCode(r.body)?.code).toBe(code);
    expect(errorCode(r.body)?.message).toBeTruthy();
    expect(await stateOf(env.sql, id)).toBe("pending");
    const last = (await audit(id)).at(-1);
    expect(last).toMatchObject({ from_state: "pending", to_state: "pending", channel: "ntfy" });
    expect(last?.detail).toContain(code);
    // The real token still works afterwards, unless the action changed under it.
    if (code !== "action_changed") expect((await press(id, "approve", t.approve.token)).status).toBe(200);
  });

  it("a token for an approved action is refused even if unused", async () => {
    const id = await insertAction(env.sql);
    const t = await mint(id);
    expect((await press(id, "approve", t.approve.token)).status).toBe(200);
    const r = await press(id, "reject", t.reject.token);
    expect(r.status).toBe(409);
    expect(errorCode(r.body)?.code).toBe("invalid_transition");
    expect(await stateOf(env.sql, id)).toBe("approved");
  });

  it("missing token and non-POST answer clearly", async () => {
    const id = await insertAction(env.sql);
    const r = await api(url, `/approvals/${id}/approve`, { method: "POST", body: {}, token: null });
    expect(r.status).toBe(422);
    expect(errorCode(r.body)?.message).toMatch(/token/);
    expect((await api(url, `/approvals/${id}/approve`, { token: null })).status).toBe(405);
  });
});

describe("bearer routes", () => {
  it("minting and relaying need a credential, and only the alerter's role may (the admin's and an approver's are 403)", async () => {
    const id = await insertAction(env.sql);
    for (const path of ["/approvals/tokens", "/approvals/channel"]) {
      const r = await api(url, path, { method: "POST", body: { action_id: id, decision: "approve", channel: "telegram", actor: "x" }, token: "wrong-token-wrong-token" });
      expect(r.status).toBe(401);
      expect((await api(url, path, { method: "POST", body: { action_id: id }, token: null })).status).toBe(401);
      const admin = await api(url, path, { method: "POST", body: { action_id: id, decision: "approve", channel: "telegram", actor: "x" }, token: API_TOKEN });
      expect(admin.status).toBe(403);
      expect(errorCode(admin.body)?.code).toBe("forbidden");
    }
    expect(await stateOf(env.sql, id)).toBe("pending");
  });

  it("relays a telegram approval with the button's token: the actor is the relaying credential, the person it names is in the detail; a refusal is audited without changing state", async () => {
    const id = await insertAction(env.sql);
    const refused = await api(url, "/approvals/channel", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, decision: "refuse", channel: "telegram", actor: "telegram:666", detail: "not allow-listed" } });
    expect(refused.status).toBe(202);
    expect(await stateOf(env.sql, id)).toBe("pending");
    const t = await mint(id);
    const ok = await api(url, "/approvals/channel", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, decision: "approve", channel: "telegram", actor: "telegram:42(@op)", token: t.approve.token } });
    expect(ok.status).toBe(200);
    const rows = await audit(id);
    expect(rows[0]).toMatchObject({ from_state: "pending", to_state: "pending", channel: "telegram", actor: "alerter" });
    expect(rows[0]?.detail).toContain("telegram:666, as alerter relays it");
    expect(rows[1]).toMatchObject({ from_state: "pending", to_state: "approved", channel: "telegram", actor: "alerter", detail: "approved via telegram by telegram:42(@op), as alerter relays it" });
  });

  it("the alerter's credential alone decides nothing: a relayed decision without a token, with a replayed, altered or another action's token, or a confirm-only one is refused and audited", async () => {
    const id = await insertAction(env.sql);
    const other = await insertAction(env.sql);
    const relay = (token: string | undefined, decision = "approve") =>
      api(url, "/approvals/channel", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, decision, channel: "telegram", actor: "telegram:42(@op)", ...(token !== undefined ? { token } : {}) } });
    const none = await relay(undefined);
    expect(none.status).toBe(422);
    expect((none.body as { error: { field?: string } }).error.field).toBe("token");
    const t = await mint(id);
    const claims = verifyToken(t.approve.token, key);
    if (!claims.ok) throw new Error("minted token does not verify");
    const [p, , mac] = t.approve.token.split(".");
    const altered = `${p}.${Buffer.from(JSON.stringify({ ...claims.claims, exp: claims.claims.exp + 86_400_000 })).toString("base64url")}.${mac}`;
    const confirmOnly = (await api(url, "/approvals/tokens", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, confirm: true } })).body as Minted;
    expect(confirmOnly.approve.path).toMatch(/^\/console\/confirm\?token=st1\./);
    for (const [token, status, code] of [
      [(await mint(other)).approve.token, 403, "wrong_action"],
      [altered, 403, "forged_token"],
      [t.reject.token, 403, "wrong_decision"],
      [confirmOnly.approve.token, 403, "confirmation_required"],
    ] as const) {
      const r = await relay(token);
      expect(r.status, code).toBe(status);
      expect(errorCode(r.body)?.code).toBe(code);
      expect(await stateOf(env.sql, id)).toBe("pending");
      expect((await audit(id)).at(-1)).toMatchObject({ to_state: "pending", channel: "telegram", actor: "alerter" });
    }
    expect((await relay(t.approve.token)).status).toBe(200);
    const replay = await relay(t.approve.token);
    expect(replay.status).toBe(409);
    expect(errorCode(replay.body)?.code).toBe("token_used");
    expect(await stateOf(env.sql, other)).toBe("pending");
  });

  it("a confirm-only token pressed as an ntfy http button decides nothing", async () => {
    const id = await insertAction(env.sql);
    const c = (await api(url, "/approvals/tokens", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, confirm: true } })).body as Minted;
    const r = await press(id, "approve", c.approve.token);
    expect(r.status).toBe(403);
    expect(errorCode(r.body)?.code).toBe("confirmation_required");
    expect(await stateOf(env.sql, id)).toBe("pending");
    expect((await audit(id)).at(-1)?.detail).toContain("confirmation_required");
  });

  it("does not mint for an action that is not pending", async () => {
    const id = await insertAction(env.sql, { state: "rejected" });
    const r = await api(url, "/approvals/tokens", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id } });
    expect(r.status).toBe(409);
  });
});
