import { beforeAll, describe, expect, it } from "vitest";
import { freePort, importGraph, listenOnLoopback } from "@steward/testkit";
import { ApiBadResponse, ApiError, ApiUnreachable, createExecutorClient } from "../src/client.js";
import { ALERTER_TOKEN, API_TOKEN, insertAction, putWorld, service, snapshot, stateOf, type Env, useApiOnlyExecutor } from "./helpers.js";

/** The typed client against the real executor API (real PostgreSQL and NATS), and against what can go wrong. */
describe("@steward/executor/client", () => {
  const executor = useApiOnlyExecutor();
  let env: Env;
  let url: string;
  beforeAll(() => ({ env, url } = executor));

  const client = () => createExecutorClient({ url, token: API_TOKEN });
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

  it("reads the world and drift: a 503 with the API's code before any snapshot, the typed snapshot after", async () => {
    const none = await failure(client().world());
    expect(none).toBeInstanceOf(ApiError);
    expect(none).toMatchObject({ status: 503, code: "no_snapshot" });
    await putWorld(env.kv, snapshot({ n1: [service("web")] }));
    const snap = await client().world();
    expect(snap.world.nodes["n1"]?.services["web"]).toMatchObject({ state: "running", health: "healthy" });
    expect(await failure(client().drift())).toMatchObject({ status: 503, code: "no_snapshot" });
  });

  it("lists, shows, approves and rejects actions; a second decision is a 409 carrying the state", async () => {
    const a = await insertAction(env.sql, { node: "n1", service: "web" });
    const b = await insertAction(env.sql, { node: "n1", service: "db" });
    const c = client();
    expect((await c.actions({ state: "pending", limit: 10 })).map((x) => x.id).sort()).toEqual([a, b].sort());
    const shown = await c.action(a);
    expect(shown.action).toMatchObject({ id: a, state: "pending" });
    expect(Array.isArray(shown.audit)).toBe(true);

    expect(await c.approve(a, { actor: "alice", channel: "cli" })).toMatchObject({ id: a, state: "approved" });
    const again = await failure(c.approve(a, { actor: "alice", channel: "cli" }));
    expect(again).toBeInstanceOf(ApiError);
    expect(again).toMatchObject({ status: 409, code: "invalid_transition", message: "action is approved, not pending", body: { error: { state: "approved" } } });

    const blank = await failure(c.reject(b, { actor: "bob", channel: "cli", reason: "   " }));
    expect(blank).toMatchObject({ status: 422, code: "invalid", message: "reason: is required and must not be blank" });
    expect(await stateOf(env.sql, b)).toBe("pending");
    expect(await c.reject(b, { actor: "bob", channel: "cli", reason: "not now" })).toMatchObject({ id: b, state: "rejected" });

    const missing = await failure(c.action("00000000-0000-0000-0000-000000000000"));
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    const badState = await failure(c.actions({ state: "bogus" as never }));
    expect(badState).toMatchObject({ status: 400, code: "invalid", message: expect.stringMatching(/^state must be one of pending, /) });
  });

  it("mints approval tokens and relays bot decisions", async () => {
    const a = await insertAction(env.sql, { node: "n1", service: "cache" });
    // What the alerter calls, with the alerter's credential (the admin's may not: see approvals.test.ts).
    const c = createExecutorClient({ url, token: ALERTER_TOKEN });
    const minted = await c.mintApprovalTokens(a);
    expect(minted).toMatchObject({ action_id: a, approve: { path: `/approvals/${a}/approve` }, reject: { path: `/approvals/${a}/reject` } });
    expect(await c.relayDecision({ action_id: a, decision: "refuse", channel: "telegram", actor: "telegram:666", detail: "not allow-listed" })).toEqual({ audited: true });
    expect(await stateOf(env.sql, a)).toBe("pending");
    expect(await c.relayDecision({ action_id: a, decision: "approve", channel: "telegram", actor: "telegram:42", token: minted.approve.token })).toMatchObject({ action: { id: a, state: "approved" } });
    const late = await failure(c.mintApprovalTokens(a));
    expect(late).toMatchObject({ status: 409, code: "invalid_transition" });
  });

  it("a wrong token is a 401 with the API's code", async () => {
    const err = await failure(createExecutorClient({ url, token: "wrong-token-0123456789" }).actions());
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 401, code: "unauthorized" });
  });

  it("nothing listening → ApiUnreachable naming the URL", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const err = await failure(createExecutorClient({ url: dead, token: API_TOKEN }).world());
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach the Steward API at ${dead}: `));
    expect((err as Error).message).not.toContain(API_TOKEN);
  });

  it("an answer that is not JSON, or JSON off the contract → ApiBadResponse", async () => {
    const standIn = await listenOnLoopback((req, res) => {
      if (req.url === "/api/world") return res.writeHead(200, { "content-type": "text/html" }).end("<html>a proxy login page</html>");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ actions: [{ id: 1 }] }));
    });
    try {
      const c = createExecutorClient({ url: standIn.url, token: API_TOKEN });
      const html = await failure(c.world());
      expect(html).toBeInstanceOf(ApiBadResponse);
      expect(html).toMatchObject({ status: 200, problem: "not_json", message: "the Steward API answered 200 with a body that is not JSON" });
      const off = await failure(c.actions());
      expect(off).toBeInstanceOf(ApiBadResponse);
      expect(off).toMatchObject({ problem: "off_contract", message: expect.stringMatching(/^unexpected answer from the Steward API's \/api\/actions: actions\.0\./) });
    } finally {
      await standIn.close();
    }
  });

  it("loads only contracts, zod and the HTTP helper (the CLI imports it on every command)", () => {
    const graph = importGraph("@steward/executor/client");
    expect(graph.filter((m) => !/^libs\/contracts\/dist\//.test(m))).toEqual(["libs/platform/dist/http-client.js", "services/executor/dist/client.js", "zod"]);
  });
});
