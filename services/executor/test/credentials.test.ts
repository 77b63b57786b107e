import { request } from "node:http";
import { pino } from "pino";
import { beforeAll, describe, expect, it } from "vitest";
import { auditOf, only } from "@steward/actions/testing";
import type { ConfigError } from "@steward/platform/config";
import { CredentialRole } from "@steward/contracts/executor-api";
import { decideAccess, GRANTS, permits, routePermission, type Permission } from "../src/access.js";
import { loadConfig } from "../src/config.js";
import { createFailureLimiter } from "@steward/platform/rate-limit";
import { createExecutorClient } from "../src/client.js";
import { ALERTER_TOKEN, API_TOKEN, COMMAND_KEYS, api, insertAction, stateOf, type Env, useApiOnlyExecutor } from "./helpers.js";

describe("who may do what (pure)", () => {
  it.each([
    ["viewer", ["read"]],
    ["approver", ["read", "decide"]],
    ["admin", ["read", "decide", "manage_credentials"]],
    ["alerter", ["mint_button_tokens", "relay_decision"]],
  ] as const)("%s may exactly %j", (role, may) => {
    const all: Permission[] = ["read", "decide", "manage_credentials", "mint_button_tokens", "relay_decision"];
    expect(all.filter((p) => permits(role, p))).toEqual(may);
  });

  it("every role of the contracts has grants", () => {
    expect(Object.keys(GRANTS).sort()).toEqual([...CredentialRole.options].sort());
  });

  it.each([
    ["GET", "api", ["actions"], "read"],
    ["GET", "api", ["world"], "read"],
    ["POST", "api", ["actions", "x", "approve"], "decide"],
    ["POST", "api", ["actions", "x", "reject"], "decide"],
    ["POST", "api", ["holds", "x", "release"], "decide"],
    ["POST", "api", ["drills"], "decide"],
    ["GET", "api", ["credentials"], "manage_credentials"],
    ["POST", "api", ["credentials"], "manage_credentials"],
    ["POST", "approvals", ["tokens"], "mint_button_tokens"],
    ["POST", "approvals", ["channel"], "relay_decision"],
    ["POST", "approvals", ["x", "approve"], undefined],
  ] as const)("%s /%s/%j needs %s", (method, prefix, seg, want) => {
    expect(routePermission(method, prefix, seg)).toBe(want);
  });

  it("no credential is 401, a role without the permission 403 naming the credential, never a token", () => {
    expect(decideAccess(undefined, "read")).toMatchObject({ ok: false, status: 401, code: "unauthorized" });
    expect(decideAccess({ name: "ann", role: "viewer" }, "decide")).toMatchObject({ ok: false, status: 403, code: "forbidden", message: expect.stringContaining("'ann' (role viewer)") });
    expect(decideAccess({ name: "ann", role: "approver" }, "decide")).toEqual({ ok: true });
  });
});

describe("settings", () => {
  const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN, EXECUTOR_SIGNING_KEY: COMMAND_KEYS.privateKey };
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (e) {
      return [...new Set((e as ConfigError).problems.map((p) => p.setting))];
    }
  };
  it("refuses an empty or placeholder API_TOKEN, a placeholder ALERTER_TOKEN, and an alerter token equal to the admin's", () => {
    expect(problems({ ...base, API_TOKEN: "" })).toEqual(["API_TOKEN"]);
    expect(problems({ ...base, API_TOKEN: "changeme" })).toEqual(["API_TOKEN"]);
    expect(problems({ ...base, ALERTER_TOKEN: "changeme" })).toEqual(["ALERTER_TOKEN"]);
    expect(problems({ ...base, ALERTER_TOKEN: API_TOKEN })).toEqual(["ALERTER_TOKEN"]);
    expect(problems({ ...base, ALERTER_TOKEN: "" })).toEqual([]);
    expect(loadConfig({ ...base, ALERTER_TOKEN }).alerterToken).toBe(ALERTER_TOKEN);
  });
});

/** An attacker's suite through the real HTTP API, real PostgreSQL: every refusal changes nothing. */
describe("named credentials over HTTP", () => {
  const executor = useApiOnlyExecutor();
  let env: Env;
  let url: string;
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    ({ env, url } = executor);
    const creds = env.executors[0]!.credentials;
    for (const [name, role] of [["vera", "viewer"], ["ann", "approver"], ["rex", "approver"]] as const) {
      const c = await creds.create(name, role, "admin");
      if (!c.ok) throw new Error(c.message);
      tokens[name] = c.token;
    }
    expect(await creds.revoke("rex", "admin")).toEqual({ ok: true });
  });

  const approve = (id: string, token: string, body: unknown = { actor: "someone-else", channel: "cli" }) => api(url, `/api/actions/${id}/approve`, { method: "POST", body, token });

  it("a viewer reads but approving is 403 and changes nothing (no audit row)", async () => {
    const id = await insertAction(env.sql);
    expect((await api(url, "/api/actions", { token: tokens["vera"]! })).status).toBe(200);
    const r = await approve(id, tokens["vera"]!);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: { code: "forbidden" } });
    const rej = await api(url, `/api/actions/${id}/reject`, { method: "POST", body: { reason: "no" }, token: tokens["vera"]! });
    expect(rej.status).toBe(403);
    expect(await stateOf(env.sql, id)).toBe("pending");
    expect(await auditOf(env.sql, id)).toHaveLength(0);
  });

  it("the alerter's token on the approve route is 403 (it may only mint and relay) and it reads nothing", async () => {
    const id = await insertAction(env.sql);
    expect((await approve(id, ALERTER_TOKEN)).status).toBe(403);
    expect((await api(url, "/api/actions", { token: ALERTER_TOKEN })).status).toBe(403);
    expect((await api(url, "/api/world", { token: ALERTER_TOKEN })).status).toBe(403);
    expect(await stateOf(env.sql, id)).toBe("pending");
    expect(await auditOf(env.sql, id)).toHaveLength(0);
  });

  it("a revoked token is 401 everywhere, also at console sign-in", async () => {
    const id = await insertAction(env.sql);
    const r = await approve(id, tokens["rex"]!);
    expect(r.status).toBe(401);
    expect(r.body).toMatchObject({ error: { code: "unauthorized" } });
    expect((await api(url, "/api/actions", { token: tokens["rex"]! })).status).toBe(401);
    const login = await fetch(`${url}/console/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin: url }, body: new URLSearchParams({ token: tokens["rex"]! }).toString() });
    expect(login.status).toBe(401);
    expect(await stateOf(env.sql, id)).toBe("pending");
  });

  it("the audit actor is the credential's name whatever the body says (approve, reject, hold release)", async () => {
    const a = await insertAction(env.sql);
    expect((await approve(a, tokens["ann"]!, { actor: "admin", channel: "cli" })).status).toBe(200);
    const b = await insertAction(env.sql);
    expect((await api(url, `/api/actions/${b}/reject`, { method: "POST", body: { actor: "root", reason: "later", hold_for: "1h" }, token: tokens["ann"]! })).status).toBe(200);
    expect((await api(url, `/api/holds/${b}/release`, { method: "POST", body: { actor: "root" }, token: tokens["ann"]! })).status).toBe(200);
    expect(only(await auditOf(env.sql, a), "to_state", "actor", "channel")).toEqual([{ to_state: "approved", actor: "ann", channel: "cli" }]);
    expect(only(await auditOf(env.sql, b), "to_state", "actor")).toEqual([
      { to_state: "rejected", actor: "ann" },
      { to_state: "rejected", actor: "ann" },
    ]);
  });

  it("a body cannot claim the console's channel", async () => {
    const id = await insertAction(env.sql);
    const r = await approve(id, tokens["ann"]!, { channel: "web" });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ error: { field: "channel" } });
    expect(await stateOf(env.sql, id)).toBe("pending");
  });

  it("console: the alerter's token cannot sign in; a viewer signs in but its decisions are 403 and change nothing", async () => {
    const post = (path: string, body: Record<string, string>, cookie = "") =>
      fetch(url + path, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin: url, ...(cookie ? { cookie } : {}) }, body: new URLSearchParams(body).toString() });
    expect((await post("/console/login", { token: ALERTER_TOKEN })).status).toBe(403);
    const signedIn = await post("/console/login", { token: tokens["vera"]! });
    expect(signedIn.status).toBe(303);
    const cookie = (signedIn.headers.get("set-cookie") ?? "").split(";")[0]!;
    const page = await (await fetch(url + "/console", { headers: { cookie } })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
    const id = await insertAction(env.sql);
    const r = await post(`/console/actions/${id}/approve`, { csrf }, cookie);
    expect(r.status).toBe(403);
    expect(await r.text()).toContain("Nothing was changed");
    expect(await stateOf(env.sql, id)).toBe("pending");
    expect(await auditOf(env.sql, id)).toHaveLength(0);
  });

  it("tokens are stored hashed; names of setting credentials and live names cannot be taken", async () => {
    const creds = env.executors[0]!.credentials;
    const rows = await env.sql<{ token_hash: string }[]>`SELECT token_hash FROM api_credentials`;
    for (const t of Object.values(tokens)) expect(rows.some((r) => r.token_hash.includes(t))).toBe(false);
    expect(await creds.create("admin", "viewer", "x")).toMatchObject({ ok: false, code: "reserved" });
    expect(await creds.create("alerter", "admin", "x")).toMatchObject({ ok: false, code: "reserved" });
    expect(await creds.create("ann", "admin", "x")).toMatchObject({ ok: false, code: "exists" });
    expect(await creds.revoke("admin", "x")).toMatchObject({ ok: false, code: "reserved" });
    // A revoked name may be given again, with a new token; the old one stays dead.
    const again = await creds.create("rex", "viewer", "admin");
    if (!again.ok) throw new Error(again.message);
    expect(again.token).not.toBe(tokens["rex"]);
    expect((await api(url, "/api/actions", { token: again.token })).status).toBe(200);
    expect((await api(url, "/api/actions", { token: tokens["rex"]! })).status).toBe(401);
  });
});

/** The credential routes through the typed client and raw HTTP (real PostgreSQL): only an admin manages, refusals change nothing. */
describe("credential routes over HTTP", () => {
  const executor = useApiOnlyExecutor();
  const admin = () => createExecutorClient({ url: executor.url, token: API_TOKEN });
  const live = async () => (await admin().credentials()).filter((c) => c.revoked_at === null).map((c) => c.name);

  it("an admin creates a viewer: its token is answered once, it reads and gets 403 on approve; the list never shows a token", async () => {
    const made = await admin().createCredential({ name: "vic", role: "viewer" });
    expect(made.credential).toMatchObject({ name: "vic", role: "viewer", source: "database", created_by: "admin", revoked_at: null });
    expect(made.token).toMatch(/^stw_/);
    const id = await insertAction(executor.env.sql);
    expect((await api(executor.url, "/api/actions", { token: made.token })).status).toBe(200);
    const r = await api(executor.url, `/api/actions/${id}/approve`, { method: "POST", body: {}, token: made.token });
    expect(r.status).toBe(403);
    expect(await stateOf(executor.env.sql, id)).toBe("pending");
    const raw = await api(executor.url, "/api/credentials");
    expect(raw.status).toBe(200);
    expect(JSON.stringify(raw.body)).not.toContain(made.token);
    expect(JSON.stringify(raw.body)).not.toMatch(/token_hash|[0-9a-f]{64}/);
    expect((raw.body as { credentials: { name: string }[] }).credentials.map((c) => c.name)).toEqual(["admin", "alerter", "vic"]);
  });

  it("a viewer, an approver and the alerter get 403 on every credential route, and nothing changes", async () => {
    const v = await admin().createCredential({ name: "val", role: "viewer" });
    const a = await admin().createCredential({ name: "apo", role: "approver" });
    const before = await live();
    for (const token of [v.token, a.token, ALERTER_TOKEN]) {
      expect((await api(executor.url, "/api/credentials", { token })).status).toBe(403);
      expect((await api(executor.url, "/api/credentials", { method: "POST", body: { name: "sneak", role: "admin" }, token })).status).toBe(403);
      expect((await api(executor.url, "/api/credentials/val", { method: "DELETE", token })).status).toBe(403);
    }
    expect(await live()).toEqual(before);
  });

  it("revoke: the token is 401 at once; a second revoke is 404; admin and alerter cannot be revoked (409)", async () => {
    const made = await admin().createCredential({ name: "rita", role: "approver" });
    expect((await api(executor.url, "/api/actions", { token: made.token })).status).toBe(200);
    const r = await api(executor.url, "/api/credentials/rita", { method: "DELETE" });
    expect(r).toEqual({ status: 200, body: { revoked: "rita" } });
    expect((await api(executor.url, "/api/actions", { token: made.token })).status).toBe(401);
    expect((await api(executor.url, "/api/credentials/rita", { method: "DELETE" })).status).toBe(404);
    expect((await api(executor.url, "/api/credentials/nobody", { method: "DELETE" })).status).toBe(404);
    for (const name of ["admin", "alerter"]) {
      const x = await api(executor.url, `/api/credentials/${name}`, { method: "DELETE" });
      expect(x.status).toBe(409);
      expect(x.body).toMatchObject({ error: { code: "reserved", message: expect.stringContaining("setting") } });
    }
    expect((await admin().credentials()).find((c) => c.name === "rita")).toMatchObject({ revoked_at: expect.any(String) });
    expect((await api(executor.url, "/api/actions", { token: ALERTER_TOKEN })).status).toBe(403);
  });

  it.each([
    [{ name: "Bad Name", role: "viewer" }, "name"],
    [{ name: "", role: "viewer" }, "name"],
    [{ role: "viewer" }, "name"],
    [{ name: "ok-name", role: "root" }, "role"],
    [{ name: "ok-name" }, "role"],
  ])("%j is 422 naming %s and creates nothing", async (body, field) => {
    const before = await live();
    const r = await api(executor.url, "/api/credentials", { method: "POST", body });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ error: { code: "invalid", field } });
    expect(await live()).toEqual(before);
  });

  it("a live name is 409; the setting names admin and alerter and the components' names are 409 reserved; a revoked name may be given again", async () => {
    await admin().createCredential({ name: "dup", role: "viewer" });
    const d = await api(executor.url, "/api/credentials", { method: "POST", body: { name: "dup", role: "admin" } });
    expect(d.status).toBe(409);
    expect(d.body).toMatchObject({ error: { code: "exists", field: "name" } });
    expect((await admin().credentials()).find((c) => c.name === "dup")).toMatchObject({ role: "viewer" });
    for (const name of ["admin", "alerter"]) {
      const x = await api(executor.url, "/api/credentials", { method: "POST", body: { name, role: "viewer" } });
      expect(x.status).toBe(409);
      expect(x.body).toMatchObject({ error: { code: "reserved", field: "name" } });
    }
    // A component's name is never a person's: the audit log would show the component as the actor.
    for (const name of ["planner", "supervisor", "console", "executor", "system"]) {
      const x = await api(executor.url, "/api/credentials", { method: "POST", body: { name, role: "admin" } });
      expect(x.status, name).toBe(409);
      expect(x.body).toMatchObject({ error: { code: "reserved", field: "name" } });
      expect(JSON.stringify(x.body)).toContain(`'${name}' is reserved`);
      expect((await admin().credentials()).find((c) => c.name === name), name).toBeUndefined();
    }
    await admin().revokeCredential("dup");
    expect((await admin().createCredential({ name: "dup", role: "approver" })).credential.role).toBe("approver");
  });
});

describe("wrong tokens per source are rate-limited over HTTP", () => {
  const lines: string[] = [];
  // The default limits, but a first refusal of a minute (not 1 s): a busy machine must not see it run out mid-test.
  const executor = useApiOnlyExecutor({ limiter: createFailureLimiter({ baseBlockMs: 60_000 }), logger: pino({ level: "info" }, { write: (s: string) => void lines.push(s) }) });
  /** A form POST to sign-in from a given local address (127.0.0.x are all this machine's loopback). */
  const signIn = (from: string, token: string) =>
    new Promise<number>((resolve, reject) => {
      const u = new URL(`${executor.url}/console/login`);
      const body = new URLSearchParams({ token }).toString();
      const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", localAddress: from, headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body), origin: executor.url } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end(body);
    });

  it("100 wrong console sign-ins from one source: 429 past the limit (then even the right token); the right token from another source still signs in", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 100; i++) statuses.push(await signIn("127.0.0.1", `wrong-token-${i}-0123456789`));
    expect(statuses.slice(0, 10), statuses.join(",")).toEqual(Array(10).fill(401));
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    expect(await signIn("127.0.0.1", API_TOKEN)).toBe(429);
    expect(await signIn("127.0.0.2", API_TOKEN)).toBe(303);
    // The API's bearer check shares the count: this source is refused there too, before any lookup.
    const r = await api(executor.url, "/api/actions", { token: API_TOKEN });
    expect(r.status).toBe(429);
    // One line when the address was refused, naming it and never a token.
    const started = lines.filter((l) => l.includes("wrong tokens from one address: refusing it"));
    expect(started).toHaveLength(1);
    expect(JSON.parse(started[0]!)).toMatchObject({ source: "127.0.0.1", failures: 10, retry_after_s: 60 });
    expect(lines.join("")).not.toContain("wrong-token-");
  });
});
