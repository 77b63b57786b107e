/**
 * A button pushed into an ntfy topic that is not access-controlled carries a confirm-only token: it opens the
 * console's confirmation page, and only a signed-in operator (approver or admin) decides there, once. Real executor
 * over HTTP, real PostgreSQL.
 */
import { auditOf, only, overwriteAction } from "@steward/actions/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveApprovalKey, signToken, verifyToken } from "../src/approval-tokens.js";
import { ALERTER_TOKEN, api, COMMAND_KEYS, insertAction, setupEnv, startExecutor, stateOf, type Env } from "./helpers.js";

interface Minted {
  approve: { token: string; path: string };
  reject: { token: string; path: string };
}

describe("console confirmation of a confirm-only button", () => {
  let env: Env;
  let url = "";
  beforeAll(async () => {
    env = await setupEnv();
    ({ url } = await startExecutor(env, { EXECUTOR_WORKER: "false" }));
  });
  afterAll(async () => {
    await env?.close();
  });

  const key = deriveApprovalKey(COMMAND_KEYS.signing);
  const post = (path: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(url + path, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin: url, ...headers }, body: new URLSearchParams(body).toString() });
  const mintConfirm = async (id: string): Promise<Minted> => {
    const r = await api(url, "/approvals/tokens", { method: "POST", token: ALERTER_TOKEN, body: { action_id: id, confirm: true } });
    expect(r.status).toBe(201);
    return r.body as Minted;
  };
  const tokens = new Map<string, string>();
  async function login(name: string, role: "approver" | "viewer" = "approver", next?: string): Promise<{ cookie: string; csrf: string; location: string }> {
    if (!tokens.has(name)) {
      const c = await env.executors[0]!.credentials.create(name, role, "test");
      if (!c.ok) throw new Error(c.message);
      tokens.set(name, c.token);
    }
    const r = await post("/console/login", { token: tokens.get(name)!, ...(next ? { next } : {}) });
    expect(r.status).toBe(303);
    const cookie = (r.headers.get("set-cookie") ?? "").split(";")[0]!;
    const page = await (await fetch(url + "/console", { headers: { cookie } })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
    return { cookie, csrf, location: r.headers.get("location") ?? "" };
  }
  const audit = async (id: string) => only(await auditOf(env.sql, id), "from_state", "to_state", "actor", "channel", "detail");

  it("opening the button approves nothing: signed out it goes to sign-in and back, signed in it shows what will run and a form", async () => {
    const id = await insertAction(env.sql);
    const m = await mintConfirm(id);
    const open = await fetch(url + m.approve.path, { redirect: "manual" });
    expect(open.status).toBe(303);
    const loginAt = open.headers.get("location") ?? "";
    expect(loginAt).toBe(`/console/login?next=${encodeURIComponent(m.approve.path)}`);
    const loginPage = await (await fetch(url + loginAt)).text();
    expect(loginPage).toContain(`name="next" value="${m.approve.path.replace(/&/g, "&amp;")}"`);
    const s = await login("ops-cora", "approver", m.approve.path);
    expect(s.location).toBe(m.approve.path);
    // A sign-in cannot be sent on to another site.
    expect((await login("ops-cora", "approver", "https://evil.example/x")).location).toBe("/console");
    const page = await fetch(url + m.approve.path, { headers: { cookie: s.cookie } });
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain(`data-action-id="${id}"`);
    expect(text).toContain('data-decision="approve"');
    expect(text).toMatch(/will run/);
    expect(text).toContain('action="/console/confirm"');
    expect(await stateOf(env.sql, id)).toBe("pending");
    expect(await auditOf(env.sql, id)).toHaveLength(0);
  });

  it("confirmed by a signed-in approver it decides once, audited as that operator; the replay is refused", async () => {
    const id = await insertAction(env.sql);
    const m = await mintConfirm(id);
    const s = await login("ops-dora");
    const form = { csrf: s.csrf, token: m.approve.token, action: id, decision: "approve" };
    const r = await post("/console/confirm", form, { cookie: s.cookie });
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toBe(`/console/actions/${id}`);
    expect(await stateOf(env.sql, id)).toBe("approved");
    expect((await audit(id)).at(-1)).toEqual({ from_state: "pending", to_state: "approved", actor: "ops-dora", channel: "web", detail: "confirmed in the console from a notification button" });
    const again = await post("/console/confirm", form, { cookie: s.cookie });
    expect(again.status).toBe(409);
    expect(await again.text()).toMatch(/already used/);
    // A reject confirmation needs a reason, and the reject token of a decided action decides nothing.
    const rej = await post("/console/confirm", { csrf: s.csrf, token: m.reject.token, action: id, decision: "reject", reason: "no" }, { cookie: s.cookie });
    expect(rej.status).toBe(409);
    expect(await stateOf(env.sql, id)).toBe("approved");
  });

  it("refuses, changing nothing: no CSRF, a viewer, another action's token, an altered token, the other decision, a changed action", async () => {
    const id = await insertAction(env.sql);
    const other = await insertAction(env.sql);
    const m = await mintConfirm(id);
    const s = await login("ops-edda");
    const v = await login("view-vic", "viewer");
    const claims = verifyToken(m.approve.token, key);
    if (!claims.ok) throw new Error("minted token does not verify");
    const [p, , mac] = m.approve.token.split(".");
    const altered = `${p}.${Buffer.from(JSON.stringify({ ...claims.claims, aid: other })).toString("base64url")}.${mac}`;
    const forgedKey = signToken({ ...claims.claims }, deriveApprovalKey((await import("@steward/contracts/command-keys")).newCommandKeyPair().signing));
    const base = { csrf: s.csrf, token: m.approve.token, action: id, decision: "approve" };
    const attempts: [string, Record<string, string>, Record<string, string>, number, RegExp][] = [
      ["no csrf", { ...base, csrf: "" }, { cookie: s.cookie }, 403, /CSRF/],
      ["viewer", { ...base, csrf: v.csrf }, { cookie: v.cookie }, 403, /viewer/],
      ["another action", { ...base, token: (await mintConfirm(other)).approve.token }, { cookie: s.cookie }, 403, /another action/],
      ["altered", { ...base, token: altered }, { cookie: s.cookie }, 403, /signature/],
      ["forged", { ...base, token: forgedKey }, { cookie: s.cookie }, 403, /signature/],
      ["other decision", { ...base, decision: "reject", reason: "x" }, { cookie: s.cookie }, 403, /for approve, not reject/],
    ];
    for (const [what, body, headers, status, text] of attempts) {
      const r = await post("/console/confirm", body, headers);
      expect(r.status, what).toBe(status);
      expect(await r.text(), what).toMatch(text);
      expect(await stateOf(env.sql, id), what).toBe("pending");
      expect(await stateOf(env.sql, other), what).toBe("pending");
    }
    const viewerPage = await (await fetch(url + m.approve.path, { headers: { cookie: v.cookie } })).text();
    expect(viewerPage).toMatch(/may not approve/);
    expect(viewerPage).not.toContain('action="/console/confirm"');
    await overwriteAction(env.sql, id, { params: { extra: "changed" } });
    expect((await fetch(url + m.approve.path, { headers: { cookie: s.cookie } })).status).toBe(409);
    const changed = await post("/console/confirm", base, { cookie: s.cookie });
    expect(changed.status).toBe(409);
    expect(await changed.text()).toMatch(/changed since the token was issued/);
    expect(await stateOf(env.sql, id)).toBe("pending");
    const refusals = (await audit(id)).filter((a) => a.to_state === "pending" && a.from_state === "pending");
    expect(refusals.map((a) => a.channel)).toEqual(refusals.map(() => "web"));
    expect(refusals.length).toBeGreaterThanOrEqual(3);
  });
});
