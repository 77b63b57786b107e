import { auditOf, seedAction } from "@steward/actions/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hold } from "@steward/contracts/drift";
import { createExecutorClient, ApiError } from "../src/client.js";
import { api, API_TOKEN, setupEnv, startExecutor, stateOf, type Env } from "./helpers.js";

let env: Env;
let url: string;


beforeAll(async () => {
  env = await setupEnv();
  ({ url } = await startExecutor(env, { EXECUTOR_WORKER: "false" }));

});
afterAll(async () => {
  await env?.close();
});

const err = (b: unknown) => (b as { error: { code: string; message: string; field?: string } }).error;

describe("holds through the API: a rejection holds its drift; --for bounds it; an operator can release it", () => {
  it("reject with hold_for sets the hold's end; GET /api/holds lists it with who and why", async () => {
    const id = await seedAction(env.sql, { node: "n1", service: "web", driftKey: "down:n1/web" });
    const t0 = Date.now();
    const r = await api(url, `/api/actions/${id}/reject`, { method: "POST", body: { reason: "investigating first", actor: "alice", channel: "cli", hold_for: "2h" } });
    expect(r.status).toBe(200);
    const holds = (await api(url, "/api/holds")).body as { holds: Hold[] };
    const h = holds.holds.find((x) => x.action_id === id);
    expect(h).toMatchObject({ node: "n1", service: "web", kind: "restart", cause: "down", held_by: "admin", channel: "cli", reason: "investigating first" });
    expect(Date.parse(h?.until ?? "") - t0).toBeGreaterThan(2 * 3_600_000 - 60_000);
    expect(Date.parse(h?.until ?? "") - t0).toBeLessThan(2 * 3_600_000 + 60_000);
  });

  it("a bad hold_for is 422 naming the field, and the action stays pending with no hold", async () => {
    for (const hold_for of ["2 hours", "0h", "-1h", "31d", "", 7200]) {
      const id = await seedAction(env.sql, { driftKey: "down:node-1/x" });
      const r = await api(url, `/api/actions/${id}/reject`, { method: "POST", body: { reason: "no", hold_for } });
      expect(r.status, JSON.stringify(hold_for)).toBe(422);
      expect(err(r.body).field).toBe("hold_for");
      expect(await stateOf(env.sql, id)).toBe("pending");
      expect(((await api(url, "/api/holds")).body as { holds: Hold[] }).holds.some((x) => x.action_id === id)).toBe(false);
    }
  });

  it("release ends a hold once, audited on the rejected action; an unknown one is 404, a second release 409", async () => {
    const client = createExecutorClient({ url, token: API_TOKEN });
    const id = await seedAction(env.sql, { node: "n2", service: "db", driftKey: "unhealthy:n2/db" });
    await client.reject(id, { actor: "alice", channel: "cli", reason: "disk check first" });
    expect((await client.holds()).some((h) => h.action_id === id)).toBe(true);
    const released = await client.releaseHold(id, { actor: "bob", channel: "cli", reason: "disk is fine" });
    expect(released).toMatchObject({ action_id: id, ended_at: expect.any(String), end_reason: "released by admin: disk is fine (admin, cli)" });
    expect((await client.holds()).some((h) => h.action_id === id)).toBe(false);
    await expect(client.releaseHold(id, { actor: "bob", channel: "cli" })).rejects.toMatchObject({ status: 409, code: "ended" });
    const missing = await client.releaseHold("00000000-0000-4000-8000-000000000000", { actor: "bob", channel: "cli" }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ApiError);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    expect((await auditOf(env.sql, id)).at(-1)).toMatchObject({ from_state: "rejected", to_state: "rejected", actor: "admin", channel: "cli", detail: "released by admin: disk is fine" });
  });
});
