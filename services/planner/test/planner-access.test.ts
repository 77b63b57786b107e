import { beforeAll, describe, expect, it } from "vitest";
import { CredentialRole } from "@steward/contracts/executor-api";
import { TaskSource } from "@steward/contracts/task";
import { createCredentialsRepository } from "@steward/platform/credentials";
import { CLAIMABLE_SOURCES, decidePlannerAccess, decideSubmit, ownsTask, PLANNER_GRANTS, PLANNER_ROUTES, plannerRouteOf, plannerRoutePermission, plannerPermits, type PlannerRole } from "../src/access.js";
import { loadConfig } from "../src/config.js";
import { envelope, live, start, TOKEN, usePlannerHarness } from "./harness.js";

/** Who may do what on the planner's API (issue 13): the pure role table, then each refusal through the real HTTP API and PostgreSQL. */

const ROLES: PlannerRole[] = ["viewer", "approver", "admin", "supervisor", "alerter", "console"];
type Route = (typeof PLANNER_ROUTES)[number][1];

/** The table as the issue states it: route -> roles allowed (alerter's `/tasks/:id` only for its own tasks). */
const EXPECTED: Record<Route, PlannerRole[]> = {
  "/inbox": ["approver", "admin", "supervisor", "alerter", "console"],
  "/tasks": ["viewer", "approver", "admin", "console"],
  "/tasks/:id": ["viewer", "approver", "admin", "alerter", "console"],
  "/cost": ["viewer", "approver", "admin", "alerter", "console"],
  "/incidents": ["viewer", "approver", "admin", "console"],
  "/incidents/recurrences": ["viewer", "approver", "admin", "alerter", "console"],
  "/incidents/:id": ["viewer", "approver", "admin", "console"],
  "/incidents/:id/postmortem": ["approver", "admin"],
};

describe("the planner's role table (pure)", () => {
  it("grants every role exactly what the issue says, route by route", () => {
    expect(Object.keys(PLANNER_GRANTS).sort()).toEqual([...ROLES].sort());
    // Every operator role of the shared credentials has a row here.
    for (const r of CredentialRole.options) expect(ROLES).toContain(r);
    expect(PLANNER_ROUTES.map(([, r]) => r).sort()).toEqual(Object.keys(EXPECTED).sort());
    for (const [, route] of PLANNER_ROUTES) {
      const need = plannerRoutePermission(route);
      expect(need, route).toBeDefined();
      const allowed = ROLES.filter((role) => plannerPermits(role, need!));
      expect(allowed, route).toEqual(EXPECTED[route]);
    }
  });

  it("maps paths to routes", () => {
    expect(plannerRouteOf("/tasks/abc")).toBe("/tasks/:id");
    expect(plannerRouteOf("/incidents/12/postmortem")).toBe("/incidents/:id/postmortem");
    expect(plannerRouteOf("/incidents/recurrences")).toBe("/incidents/recurrences");
    expect(plannerRouteOf("/incidents/12")).toBe("/incidents/:id");
    expect(plannerRouteOf("/tasks/a/b")).toBeUndefined();
    for (const [, route] of PLANNER_ROUTES) expect(plannerRouteOf(route.replace(":id", "7"))).toBe(route);
  });

  it("401 never says which part was wrong; 403 names the credential and role", () => {
    expect(decidePlannerAccess(undefined, "read")).toEqual({ ok: false, status: 401, code: "unauthorized", message: "missing, wrong or revoked bearer token" });
    const r = decidePlannerAccess({ name: "ann", role: "viewer" }, "submit");
    expect(r).toMatchObject({ ok: false, status: 403, code: "forbidden" });
    expect(!r.ok && r.message).toContain("'ann' (role viewer)");
  });

  it("the task's user comes from the credential; vouching roles name whom they vouch for, with themselves", () => {
    expect(decideSubmit({ name: "ann", role: "approver" }, { source: "cli", user: "root" })).toEqual({ ok: true, user: "ann" });
    expect(decideSubmit({ name: "supervisor", role: "supervisor" }, { source: "supervisor", user: "anyone" })).toEqual({ ok: true, user: "supervisor" });
    expect(decideSubmit({ name: "alerter", role: "alerter" }, { source: "telegram", user: "telegram:7(@op)" })).toEqual({ ok: true, user: "telegram:7(@op) via alerter" });
    expect(decideSubmit({ name: "console", role: "console" }, { source: "web", user: "ann" })).toEqual({ ok: true, user: "ann via console" });
    expect(decideSubmit({ name: "admin", role: "admin" }, { source: "cli", user: "admin" })).toEqual({ ok: true, user: "admin" });
    const long = decideSubmit({ name: "alerter", role: "alerter" }, { source: "telegram", user: "x".repeat(200) });
    expect(long.ok && long.user.length).toBe(200);
    expect(ownsTask({ name: "alerter", role: "alerter" }, { user: "telegram:7 via alerter" })).toBe(true);
    expect(ownsTask({ name: "alerter", role: "alerter" }, { user: "ann" })).toBe(false);
  });

  it("each role claims only its sources", () => {
    for (const role of ROLES) {
      for (const source of TaskSource.options) {
        const r = decideSubmit({ name: "x", role }, { source, user: "x" });
        expect(r.ok, `${role} ${source}`).toBe(CLAIMABLE_SOURCES[role].includes(source));
        if (!r.ok) expect(r).toMatchObject({ status: 403, field: "source" });
      }
    }
    expect(CLAIMABLE_SOURCES.supervisor).toEqual(["supervisor"]);
    expect(CLAIMABLE_SOURCES.alerter).toEqual(["telegram"]);
    expect(CLAIMABLE_SOURCES.console).toEqual(["web"]);
    expect(CLAIMABLE_SOURCES.viewer).toEqual([]);
  });

  it("component tokens must differ from API_TOKEN and from each other", () => {
    const base = { DATABASE_URL: "postgres://x/y", API_TOKEN: TOKEN, FLEET_SPEC: "/f.yaml" };
    expect(() => loadConfig({ ...base, SUPERVISOR_TOKEN: TOKEN })).toThrow(/SUPERVISOR_TOKEN: must differ from API_TOKEN/);
    expect(() => loadConfig({ ...base, SUPERVISOR_TOKEN: "sup-Kq83nd92jf02kd", CONSOLE_TOKEN: "sup-Kq83nd92jf02kd" })).toThrow(/CONSOLE_TOKEN: must differ from SUPERVISOR_TOKEN/);
    expect(() => loadConfig({ ...base, ALERTER_TOKEN: "changeme" })).toThrow(/ALERTER_TOKEN/);
    expect(loadConfig({ ...base, ALERTER_TOKEN: "alr-Pq83nd92jf02kd" }).settingCredentials.map((c) => `${c.name}:${c.role}`)).toEqual(["admin:admin", "alerter:alerter"]);
  });
});

usePlannerHarness();

describe("the planner's API refuses what a credential may not do (real PostgreSQL, real HTTP)", () => {
  const SUPERVISOR = "supervisor-token-0123456789abcdef";
  const ALERTER = "alerter-token-0123456789abcdef";
  const tokens: Record<string, string> = {};
  let url: string;

  beforeAll(async () => {
    // The executor's credentials repository: the same module, the same table.
    const repo = createCredentialsRepository(live.sql, []);
    for (const [name, role] of [["vera", "viewer"], ["ann", "approver"], ["gone", "approver"]] as const) {
      const made = await repo.create(name, role, "admin");
      if (!made.ok) throw new Error(made.message);
      tokens[name] = made.token;
    }
    expect(await repo.revoke("gone", "admin")).toEqual({ ok: true });
  });

  const call = async (path: string, token: string | undefined, init: { method?: string; body?: unknown } = {}) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
    const res = await fetch(`${url}${path}`, { method: init.method ?? "GET", headers, ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }) });
    const text = await res.text();
    return { status: res.status, text, json: (text ? JSON.parse(text) : {}) as { task?: { id: string; user: string; source: string }; tasks?: unknown[]; error?: { code: string; message: string; field?: string } } };
  };
  const taskCount = async () => Number((await live.sql<{ n: string }[]>`SELECT count(*) AS n FROM planner_tasks`)[0]?.n);

  it("viewer reads but cannot submit or write post-mortems; approver submits as itself whatever the body says", async () => {
    ({ url } = await start({ WORKERS: "0", SUPERVISOR_TOKEN: SUPERVISOR, ALERTER_TOKEN: ALERTER }));
    expect((await call("/tasks", tokens["vera"])).status).toBe(200);
    expect((await call("/cost", tokens["vera"])).status).toBe(200);
    const before = await taskCount();
    const refused = await call("/inbox", tokens["vera"], { method: "POST", body: envelope("v1") });
    expect(refused.status).toBe(403);
    expect(refused.json.error).toMatchObject({ code: "forbidden" });
    expect(refused.json.error?.message).toContain("'vera' (role viewer)");
    expect((await call("/incidents/1/postmortem", tokens["vera"], { method: "POST" })).status).toBe(403);
    expect(await taskCount()).toBe(before);

    const made = await call("/inbox", tokens["ann"], { method: "POST", body: envelope("a1", { user: "root" }) });
    expect(made.status).toBe(202);
    expect(made.json.task).toMatchObject({ user: "ann", source: "cli" });
    const [row] = await live.sql<{ user: string }[]>`SELECT "user" FROM planner_tasks WHERE id = 'a1'`;
    expect(row?.user).toBe("ann");
    // An approver cannot claim a component's source.
    const claim = await call("/inbox", tokens["ann"], { method: "POST", body: envelope("a2", { source: "supervisor" }) });
    expect(claim.status).toBe(403);
    expect(claim.json.error).toMatchObject({ code: "forbidden", field: "source" });
    // The approver may ask for a post-mortem (404: no such incident, past the role check).
    expect((await call("/incidents/999/postmortem", tokens["ann"], { method: "POST" })).status).toBe(404);
  });

  it("the supervisor's credential files escalations only: it cannot read tasks, cost or incidents, nor write post-mortems", async () => {
    ({ url } = await start({ WORKERS: "0", SUPERVISOR_TOKEN: SUPERVISOR, ALERTER_TOKEN: ALERTER }));
    const other = await call("/inbox", TOKEN, { method: "POST", body: envelope("other-1", { user: "admin" }) });
    expect(other.status).toBe(202);
    const esc = await call("/inbox", SUPERVISOR, { method: "POST", body: envelope("esc-1", { source: "supervisor", user: "ann" }) });
    expect(esc.status).toBe(202);
    expect(esc.json.task).toMatchObject({ user: "supervisor", source: "supervisor" });
    expect((await call("/inbox", SUPERVISOR, { method: "POST", body: envelope("esc-2", { source: "cli" }) })).status).toBe(403);
    for (const path of ["/tasks", "/tasks/other-1", "/tasks/esc-1", "/cost", "/incidents", "/incidents/recurrences", "/incidents/1"]) {
      const r = await call(path, SUPERVISOR);
      expect(r.status, path).toBe(403);
      expect(r.text, path).not.toContain("other-1");
    }
    expect((await call("/incidents/1/postmortem", SUPERVISOR, { method: "POST" })).status).toBe(403);
  });

  it("the alerter files Telegram tasks (recorded as vouched for by it), follows its own, and sees nobody else's", async () => {
    ({ url } = await start({ WORKERS: "0", SUPERVISOR_TOKEN: SUPERVISOR, ALERTER_TOKEN: ALERTER }));
    await call("/inbox", tokens["ann"], { method: "POST", body: envelope("ann-1") });
    const tg = await call("/inbox", ALERTER, { method: "POST", body: envelope("tg-1", { source: "telegram", user: "telegram:7001(@op)" }) });
    expect(tg.status).toBe(202);
    expect(tg.json.task).toMatchObject({ user: "telegram:7001(@op) via alerter", source: "telegram" });
    expect((await call("/tasks/tg-1", ALERTER)).status).toBe(200);
    expect((await call("/tasks/ann-1", ALERTER)).status).toBe(404);
    expect((await call("/tasks", ALERTER)).status).toBe(403);
    expect((await call("/cost", ALERTER)).status).toBe(200);
    expect((await call("/incidents/recurrences", ALERTER)).status).toBe(200);
    expect((await call("/incidents", ALERTER)).status).toBe(403);
    expect((await call("/inbox", ALERTER, { method: "POST", body: envelope("tg-2", { source: "web" }) })).status).toBe(403);
  });

  it("the console reads for its signed-in operator and files web tasks recorded as that operator via the console", async () => {
    const CONSOLE = "console-token-0123456789abcdef";
    ({ url } = await start({ WORKERS: "0", CONSOLE_TOKEN: CONSOLE }));
    await call("/inbox", tokens["ann"], { method: "POST", body: envelope("ann-2") });
    const list = await call("/tasks", CONSOLE);
    expect(list.status).toBe(200);
    expect(list.json.tasks).toHaveLength(1);
    expect((await call("/tasks/ann-2", CONSOLE)).status).toBe(200);
    const web = await call("/inbox", CONSOLE, { method: "POST", body: envelope("web-1", { source: "web", user: "vera" }) });
    expect(web.status).toBe(202);
    expect(web.json.task).toMatchObject({ user: "vera via console", source: "web" });
    // Only the console may claim `web`; the console may not claim `cli` or draft post-mortems.
    expect((await call("/inbox", tokens["ann"], { method: "POST", body: envelope("web-2", { source: "web" }) })).json.error).toMatchObject({ code: "forbidden", field: "source" });
    expect((await call("/inbox", CONSOLE, { method: "POST", body: envelope("web-3", { source: "cli" }) })).status).toBe(403);
    expect((await call("/incidents/1/postmortem", CONSOLE, { method: "POST" })).status).toBe(403);
  });

  it("a revoked, wrong, malformed or missing token is 401 with one message that says nothing about which", async () => {
    ({ url } = await start({ WORKERS: "0", SUPERVISOR_TOKEN: SUPERVISOR }));
    const before = await taskCount();
    const answers = await Promise.all(
      [tokens["gone"], "stw_wrong", `${tokens["ann"]}x`, SUPERVISOR.slice(0, -1), "", undefined].map((t) => call("/inbox", t, { method: "POST", body: envelope(`x-${String(t).length}`) })),
    );
    const bodies = new Set(answers.map((a) => a.text));
    expect(answers.map((a) => a.status)).toEqual([401, 401, 401, 401, 401, 401]);
    expect(bodies.size).toBe(1);
    expect([...bodies][0]).toBe(JSON.stringify({ error: { code: "unauthorized", message: "missing, wrong or revoked bearer token" } }));
    expect(await taskCount()).toBe(before);
    // The bootstrap API_TOKEN is still admin: everything works with it (steward up, docker-compose).
    for (const [, route] of PLANNER_ROUTES) {
      if (route === "/incidents/:id/postmortem") continue;
      expect((await call(route.replace(":id", "1"), TOKEN)).status, route).not.toBe(403);
    }
  });
});
