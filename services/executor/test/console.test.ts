import { auditOf, only } from "@steward/actions/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkOrigin, createPlannerClient, createSessionStore, esc, html, parseCookies, spendChart, capLevel } from "../src/console/index.js";
import { loadConfig } from "../src/config.js";
import { API_TOKEN, COMMAND_KEYS, insertAction, insertDrill, setupEnv, startExecutor, stateOf, type Env } from "./helpers.js";
import { costReport, startFakePlanner, task } from "./console-helpers.js";
import { actionBody, overviewBody, tasksBody } from "../src/console/views.js";
import { ActionState, UNSTARTED_ACTION_STATES, type Action } from "@steward/contracts/action";
import { DrillVerdict, type DrillResult } from "@steward/contracts/drill";
import { drillOutcome, drillsBody } from "../src/console/drills-view.js";

describe("console building blocks", () => {
  it("escapes every interpolated value unless it was built by html``", () => {
    const name = `<img src=x onerror="alert(1)">'&\``;
    expect(String(html`<td>${name}</td>`)).toBe("<td>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&amp;&#96;</td>");
    expect(String(html`<p>${html`<b>${name}</b>`}</p>`)).toBe(`<p><b>${esc(name)}</b></p>`);
    expect(String(html`${[name, 1, null, undefined, false]}`)).toBe(`${esc(name)}1`);
  });

  it.each([
    ["same host and port", "http://127.0.0.1:7070", "127.0.0.1:7070", true],
    ["another port", "http://127.0.0.1:9999", "127.0.0.1:7070", false],
    ["another site", "https://evil.example", "127.0.0.1:7070", false],
    ["no Origin", undefined, "127.0.0.1:7070", false],
    ["Origin null", "null", "127.0.0.1:7070", false],
    ["not a URL", "::::", "127.0.0.1:7070", false],
    ["no Host", "http://127.0.0.1:7070", undefined, false],
    ["case-insensitive host", "https://Console.Example", "console.example", true],
  ] as const)("origin check: %s", (_n, origin, host, ok) => {
    expect(checkOrigin(origin, host).ok).toBe(ok);
  });

  it("parses cookies and expires sessions", () => {
    expect(parseCookies("a=1; steward_console=abc=; b=2")).toEqual({ a: "1", steward_console: "abc=", b: "2" });
    let t = 1000;
    const s = createSessionStore({ ttlMs: 500, max: 2, now: () => t });
    const a = s.create("ann", "approver");
    expect(s.get(a.id)?.actor).toBe("ann");
    expect(a.csrf).not.toBe(a.id);
    t = 1500;
    expect(s.get(a.id)).toBeUndefined();
    const b = s.create("bob", "viewer");
    s.create("cy", "admin");
    s.create("dee", "approver");
    expect(s.get(b.id), "oldest evicted beyond max").toBeUndefined();
    expect(s.size).toBe(2);
  });

  it.each([
    [0, 5, "ok"],
    [3.99, 5, "ok"],
    [4, 5, "warn"],
    [5, 5, "over"],
    [7, 5, "over"],
    [0, 0, "ok"],
    [0.1, 0, "over"],
  ] as const)("cap level of %s against %s is %s", (spent, cap, level) => {
    expect(capLevel(spent, cap)).toBe(level);
  });

  it("draws spend against the caps as SVG with escaped agent names", () => {
    const svg = String(spendChart(costReport()));
    expect(svg).toContain("<svg");
    expect(svg).toContain('data-agent="all agents"');
    expect(svg).toMatch(/class="bar warn" data-agent="all agents"/); // 4.2 of 5
    expect(svg).toMatch(/class="bar warn" data-agent="diagnoser"/); // 1.7 of 2
    expect(svg).toMatch(/class="day over"/); // 6.3 > 5 on 03-01
    expect(svg).toContain("cap $5.00");
    expect(svg).toContain("&lt;b&gt;chat&lt;/b&gt;");
    expect(svg).not.toContain("<b>chat");
    expect(String(spendChart(costReport({ by_day: [] })))).toContain("No spend recorded yet");
  });

  it("reads the planner's tasks and cost, and reports an off-contract or absent planner as a message", async () => {
    const planner = await startFakePlanner({ tasks: [task()], cost: costReport() });
    try {
      const c = createPlannerClient({ baseUrl: planner.url + "/", token: API_TOKEN });
      const t = await c.tasks();
      expect(t.ok && t.value[0]?.model_groups).toEqual(["local", "claude"]);
      expect((await c.cost()).ok).toBe(true);
      expect(planner.requests).toEqual(["GET /tasks", "GET /cost"]);
      const wrongToken = await createPlannerClient({ baseUrl: planner.url, token: "another-token-0123456789" }).tasks();
      expect(wrongToken).toEqual({ ok: false, message: "planner answered 401 to GET /tasks" });
      const bad = await createPlannerClient({ baseUrl: planner.url, token: API_TOKEN, fetch: async () => Response.json({ tasks: [{ id: 1 }] }) }).tasks();
      expect(bad.ok).toBe(false);
      expect(!bad.ok && bad.message).toMatch(/does not match the contract \(tasks\.0\./);
    } finally {
      await planner.close();
    }
    const down = await createPlannerClient({ baseUrl: planner.url, token: API_TOKEN, timeoutMs: 500 }).cost();
    expect(!down.ok && down.message).toMatch(/unreachable/);
    expect(!down.ok && down.message).not.toContain(API_TOKEN);
  });

  it("PLANNER_URL is optional, blank means unset, and a bad one is refused naming the setting", () => {
    const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN, EXECUTOR_SIGNING_KEY: COMMAND_KEYS.privateKey };
    expect(loadConfig(base).plannerUrl).toBeUndefined();
    expect(loadConfig({ ...base, PLANNER_URL: "" }).plannerUrl).toBeUndefined();
    expect(() => loadConfig({ ...base, PLANNER_URL: "http://127.0.0.1:7080" })).toThrow(/PLANNER_TOKEN: is required when PLANNER_URL is set/);
    expect(loadConfig({ ...base, PLANNER_URL: "http://127.0.0.1:7080", PLANNER_TOKEN: "console-token-0123456789" }).plannerUrl).toBe("http://127.0.0.1:7080");
    expect(() => loadConfig({ ...base, PLANNER_URL: "ftp://x" })).toThrow(/PLANNER_URL/);
  });
});

describe("an action's page", () => {
  const session = { id: "s", csrf: "c", actor: "ann", role: "approver" as const, createdAt: 0, expiresAt: 1 };
  const now = new Date("2026-03-02T10:00:00.000Z");
  const action = (state: Action["state"]): Action => ({ id: "a-1", node: "n", service: "web", kind: "restart", state, reason: "down", drift_key: null, proposed_by: "sup", diagnosis: null, created_at: "2026-03-02T09:59:00.000Z", updated_at: "2026-03-02T09:59:30.000Z", expires_at: "2026-03-02T10:04:00.000Z", result: null, traceparent: null });

  // Every state from the contracts: an expiry is shown exactly for those not started yet (the ones that can expire).
  it.each(ActionState.options.map((s) => [s, (UNSTARTED_ACTION_STATES as readonly string[]).includes(s)] as const))("a %s action shows an expiry: %s (only while it can still expire)", (state, shown) => {
    expect(String(actionBody({ action: action(state), audit: [] }, session, now)).includes("expires")).toBe(shown);
  });

  it("labels the texts a model wrote as unverified, and only those", () => {
    const byModel = String(actionBody({ action: { ...action("pending"), reason: "db keeps dying", diagnosis: "oom", proposed_by: "planner", task_id: "t-1", model_written: ["reason", "diagnosis"] }, audit: [] }, session, now));
    expect(byModel.match(/written by a model, unverified/g)).toHaveLength(2);
    expect(byModel).toMatch(/<dd class="model-written">db keeps dying<\/dd>/);
    expect(byModel).toMatch(/<pre class="diagnosis model-written">oom<\/pre>/);
    expect(String(actionBody({ action: { ...action("pending"), diagnosis: "from a runbook" }, audit: [] }, session, now))).not.toContain("written by a model");
  });

  it("shows what a model (or a log it quotes) wrote as text, never markup: the action's reason and diagnosis, a task's request, error and model groups", () => {
    const xss = `</pre><img src=x onerror="alert(1)"><script>fetch('//evil')</script>`;
    const escaped = "&lt;/pre&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;fetch(&#39;//evil&#39;)&lt;/script&gt;";
    const page = String(actionBody({ action: { ...action("pending"), reason: `${xss}1`, diagnosis: `${xss}2`, result: `${xss}3`, proposed_by: "planner", task_id: "t-1", model_written: ["reason", "diagnosis"] }, audit: [{ id: 1, action_id: "a-1", at: "2026-03-02T09:59:00.000Z", from_state: null, to_state: "pending", actor: `${xss}9`, channel: "api", detail: `${xss}4` }] }, session, now));
    expect(page).not.toMatch(/<img|<script|<\/pre><img/);
    for (const n of ["1", "2", "3", "4", "9"]) expect(page).toContain(`${escaped}${n}`);
    const tasks = String(tasksBody({ plannerUrl: "http://planner", tasks: { ok: true, value: [task({ content: `${xss}5`, error: `${xss}6`, model_groups: [`${xss}7`] })] }, cost: { ok: true, value: costReport({ by_model_group: [{ model_group: `${xss}8`, usd: 0, calls: 1 }] }) } }, session, now));
    expect(tasks).not.toMatch(/<img|<script/);
    for (const n of ["6", "7", "8"]) expect(tasks).toContain(`${escaped}${n}`);
    expect(tasks).toContain("&lt;/pre&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"); // the request, cut to 160 characters
  });
});

describe("the drift table", () => {
  const session = { id: "s", csrf: "c", actor: "ann", role: "approver" as const, createdAt: 0, expiresAt: 1 };
  const now = new Date("2026-03-02T10:00:00.000Z");
  const drift = { key: "down:n/web", kind: "down" as const, node: "n", service: "web", severity: "action" as const, message: "web on n is exited", since: null, proposes: "restart" as const };
  const body = (d: typeof drift & { held?: unknown }) =>
    String(overviewBody({ snapshot: { ok: false, code: "none", message: "none" }, drift: { ok: true, value: { computed_at: now.toISOString(), snapshot_written_at: null, world_seq: 1, supervisor_id: "sup", skipped: null, drifts: [d as never] } }, pending: [], recent: [] }, session, now));

  it("shows a held drift as held: by whom, through which channel, why and until when", () => {
    const held = { action_id: "a-1", cause: "down", held_by: "alice", channel: "cli", reason: "investigating first", created_at: "2026-03-02T09:59:00.000Z", until: "2026-03-02T12:00:00.000Z" };
    const html = body({ ...drift, held });
    expect(html).toContain('data-held="a-1"');
    expect(html).toMatch(/restart held by alice \(cli\) until <time datetime="2026-03-02T12:00:00.000Z"[^>]*>[^<]*<\/time> or the drift changes: investigating first/);
    expect(body(drift)).not.toContain("held by");
  });
});

describe("the drills page", () => {
  const now = new Date("2026-03-02T10:00:00.000Z");
  const drillAction = (state: Action["state"], over: Partial<Action> = {}): Action => ({ id: "d-1", node: "n", service: "web", kind: "drill", state, reason: "restart drill", drift_key: null, proposed_by: "ann", diagnosis: null, created_at: "2026-03-02T09:58:00.000Z", updated_at: "2026-03-02T09:59:30.000Z", expires_at: "2026-03-02T10:58:00.000Z", result: null, traceparent: null, params: { objective_ms: 30_000, window_ms: 90_000, approve_restart: false }, ...over });
  const result = (verdict: DrillResult["verdict"], reason: string, over: Partial<DrillResult> = {}): DrillResult => ({ drill_id: "d-1", node: "n", service: "web", verdict, reason, objective_ms: 30_000, approve_restart: false, started_at: "2026-03-02T09:59:00.000Z", detected_ms: 300, proposed_ms: 900, approved_ms: 2_000, recovered_ms: 4_200, restart_action_id: "r-1", approved_by: "bob", finished_at: "2026-03-02T09:59:05.000Z", ...over });

  // Every verdict and every action state from the contracts: a result decides, else the action says where it is.
  it.each<[string, Action, DrillResult | null, { status: string; objective: string; reason: string | null }]>([
    ["passed", drillAction("succeeded"), result("passed", "healthy again after 4.2 s"), { status: "passed", objective: "met", reason: "healthy again after 4.2 s" }],
    ["missed", drillAction("succeeded"), result("missed", "healthy again after 41 s, over the objective 30.0 s"), { status: "missed", objective: "missed", reason: "healthy again after 41 s, over the objective 30.0 s" }],
    ["refused before the kill", drillAction("failed"), result("refused", "node n is stale", { started_at: null }), { status: "refused", objective: "refused", reason: "node n is stale" }],
    ["failed: the kill did not happen", drillAction("failed"), result("failed", "the kill did not happen: node n did not answer"), { status: "failed", objective: "not measured", reason: "the kill did not happen: node n did not answer" }],
    ["pending", drillAction("pending"), null, { status: "pending", objective: "waiting for approval", reason: null }],
    ["approved", drillAction("approved"), null, { status: "approved", objective: "in progress", reason: null }],
    ["running", drillAction("running"), null, { status: "running", objective: "in progress", reason: null }],
    ["rejected", drillAction("rejected", { result: "rejected by bob (cli): not during the backup" }), null, { status: "rejected", objective: "rejected", reason: "rejected by bob (cli): not during the backup" }],
    ["expired", drillAction("expired"), null, { status: "expired", objective: "expired", reason: null }],
    ["failed without a result (lease lost)", drillAction("failed", { result: "lease lost during the drill" }), null, { status: "failed", objective: "not measured", reason: "lease lost during the drill" }],
    ["failed_unknown", drillAction("failed_unknown"), null, { status: "failed_unknown", objective: "not measured", reason: null }],
    ["succeeded without a result", drillAction("succeeded"), null, { status: "succeeded", objective: "not measured", reason: null }],
  ])("%s", (_n, action, res, want) => {
    expect(drillOutcome({ action, result: res })).toEqual({ ...want, objectiveMs: 30_000 });
  });

  it("covers every verdict and every action state", () => {
    const verdicts = new Set(DrillVerdict.options.map((v) => drillOutcome({ action: drillAction("succeeded"), result: result(v, "x") }).status));
    expect(verdicts).toEqual(new Set(DrillVerdict.options));
    for (const s of ActionState.options) expect(drillOutcome({ action: drillAction(s), result: null }).status).toBe(s);
    expect(drillOutcome({ action: drillAction("pending", { params: {} }), result: null }).objectiveMs, "params that are not a drill's: no objective shown").toBeNull();
  });

  it("shows names, reasons and approvers as text, never markup", () => {
    const xss = `<img src=x onerror="alert(1)">`;
    const page = String(drillsBody({ ok: true, drills: [{ action: drillAction("succeeded", { node: xss, service: `${xss}2` }), result: result("missed", `${xss}3`, { approved_by: `${xss}4` }) }] }, now));
    expect(page).not.toContain("<img");
    for (const n of ["", "2", "3", "4"]) expect(page).toContain(`&lt;img src=x onerror=&quot;alert(1)&quot;&gt;${n}`);
    expect(String(drillsBody({ ok: false, message: xss }, now))).not.toContain("<img");
  });
});

describe("console over HTTP (no browser)", () => {
  let env: Env;
  let url = "";
  let origin = "";

  beforeAll(async () => {
    env = await setupEnv();
    // API only: approvals stay approved (nothing runs them), so each test sees exactly what the console changed.
    ({ url } = await startExecutor(env, { EXECUTOR_WORKER: "false" }));
    origin = url;
  });
  afterAll(async () => {
    await env?.close();
  });

  const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
  const post = (path: string, body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(url + path, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin, ...headers }, body: form(body) });

  const tokens = new Map<string, string>();
  /** Signs in with an approver's credential of that name (created on first use): the name is the audit actor. */
  async function login(name = "ops-ann"): Promise<{ cookie: string; csrf: string }> {
    if (!tokens.has(name)) {
      const c = await env.executors[0]!.credentials.create(name, "approver", "test");
      if (!c.ok) throw new Error(c.message);
      tokens.set(name, c.token);
    }
    const r = await post("/console/login", { token: tokens.get(name)! });
    expect(r.status).toBe(303);
    const setCookie = r.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/console/);
    const cookie = setCookie.split(";")[0]!;
    const page = await (await fetch(url + "/console", { headers: { cookie } })).text();
    const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
    expect(csrf).toBeTruthy();
    return { cookie, csrf: csrf! };
  }

  it("without a session every page redirects to sign-in, the event stream and partials are 401, and POSTs change nothing", async () => {
    const id = await insertAction(env.sql);
    const page = await fetch(url + "/console", { redirect: "manual" });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/console/login");
    expect((await fetch(url + `/console/actions/${id}`, { redirect: "manual" })).status).toBe(303);
    expect((await fetch(url + "/console/events")).status).toBe(401);
    expect((await fetch(url + "/console", { headers: { "x-console-partial": "1" } })).status).toBe(401);
    expect((await fetch(url + "/console", { headers: { cookie: "steward_console=forged" }, redirect: "manual" })).status).toBe(303);
    const r = await post(`/console/actions/${id}/approve`, { csrf: "x" }, { cookie: "steward_console=forged" });
    expect(r.status).toBe(401);
    expect(await stateOf(env.sql, id)).toBe("pending");
    const login = await fetch(url + "/console/login");
    expect(login.status).toBe(200);
    expect(login.headers.get("content-security-policy")).toContain("script-src 'self'");
    const body = await login.text();
    expect(body).not.toContain(API_TOKEN);
    expect(body).not.toMatch(/<script>|<style>|\son[a-z]+=/);
  });

  it("a wrong token is refused with an error, sets no cookie and opens no session", async () => {
    const r = await post("/console/login", { token: "wrong-token-0123456789", name: "mallory" });
    expect(r.status).toBe(401);
    expect(r.headers.get("set-cookie")).toBeNull();
    expect(await r.text()).toContain("Wrong token.");
    expect((await post("/console/login", { token: "", name: "x" })).status).toBe(401);
    // Login CSRF: the right token posted from another site does not sign anyone in.
    const foreign = await post("/console/login", { token: API_TOKEN }, { origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get("set-cookie")).toBeNull();
  });

  it("refuses a POST without the CSRF token, with a wrong one, or from a foreign or missing Origin, and changes nothing", async () => {
    const { cookie, csrf } = await login();
    const id = await insertAction(env.sql);
    const attempts: [string, Record<string, string>, Record<string, string>][] = [
      ["no csrf", {}, { cookie }],
      ["wrong csrf", { csrf: csrf.slice(0, -2) + "xx" }, { cookie }],
      ["foreign origin", { csrf }, { cookie, origin: "https://evil.example" }],
      ["no origin", { csrf }, { cookie, origin: "" }],
    ];
    for (const [what, body, headers] of attempts) {
      const r = await post(`/console/actions/${id}/approve`, body, headers);
      expect(r.status, what).toBe(403);
      expect(await r.text(), what).toContain("Nothing was changed");
      const rej = await post(`/console/actions/${id}/reject`, { ...body, reason: "no" }, headers);
      expect(rej.status, what).toBe(403);
    }
    expect(await stateOf(env.sql, id)).toBe("pending");
    const [audit] = [{ n: String((await auditOf(env.sql, id)).length) }];
    expect(audit?.n).toBe("0");
    // The same session with its token and our origin does change it: the refusals above were about CSRF.
    const ok = await post(`/console/actions/${id}/reject`, { csrf, reason: "not now", back: "https://evil.example/" }, { cookie });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location"), "no open redirect").toBe("/console");
    expect(await stateOf(env.sql, id)).toBe("rejected");
    const [row] = only(await auditOf(env.sql, id), "actor", "channel", "detail");
    expect(row).toEqual({ actor: "ops-ann", channel: "web", detail: "not now" });
    // The reason is in the actions table, on the rejected action's row.
    const list = await (await fetch(url + "/console/actions", { headers: { cookie } })).text();
    const tableRow = new RegExp(`<tr class="action" data-action-id="${id}" data-state="rejected">[\\s\\S]*?</tr>`).exec(list)?.[0];
    expect(tableRow).toContain("rejected by ops-ann (web): not now");
  });

  it("sign-out ends the session: the old cookie no longer works", async () => {
    const { cookie, csrf } = await login();
    expect((await post("/console/logout", { csrf }, { cookie })).status).toBe(303);
    expect((await fetch(url + "/console", { headers: { cookie }, redirect: "manual" })).status).toBe(303);
    expect((await fetch(url + "/console/events", { headers: { cookie } })).status).toBe(401);
  });

  it("the event stream tells a signed-in console when an action changes", async () => {
    const { cookie } = await login();
    const ac = new AbortController();
    const res = await fetch(url + "/console/events", { headers: { cookie }, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let seen = "";
    const until = async (want: string) => {
      const deadline = Date.now() + 8000;
      while (!seen.includes(want) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += dec.decode(value);
      }
      return seen.includes(want);
    };
    expect(await until("retry:")).toBe(true);
    await insertAction(env.sql);
    expect(await until("event: change")).toBe(true);
    ac.abort();
  });

  it("the Drills page, linked from every page's header, lists each drill: verdict, objective met or missed, refusals and rejections with the reason, timings", async () => {
    const { cookie, csrf } = await login();
    const passed = await insertDrill(env.sql, { service: "drill-web", result: { verdict: "passed", reason: "healthy again after 4.2 s, within the objective 30.0 s", detected_ms: 310, proposed_ms: 820, approved_ms: 1_450, recovered_ms: 4_200, approved_by: "drill:x" } });
    const missed = await insertDrill(env.sql, { service: "drill-slow", objectiveMs: 1_000, result: { verdict: "missed", reason: "healthy again after 3.4 s, over the objective 1.0 s", detected_ms: 200, proposed_ms: 700, approved_ms: 900, recovered_ms: 3_400 } });
    const refused = await insertDrill(env.sql, { node: "node-2", service: "drill-api", state: "failed", result: { verdict: "refused", reason: "node node-2 is stale (last heartbeat 2 min ago): a drill needs a node that reports", started_at: null } });
    const open = await insertDrill(env.sql, { service: "drill-db" });
    const rejected = await insertDrill(env.sql, { service: "drill-cache" });
    // Rejected the way an operator does it, from the console: its reason is on the Drills page.
    expect((await post(`/console/actions/${rejected}/reject`, { csrf, reason: "not during the backup", back: "/console/drills" }, { cookie })).headers.get("location")).toBe("/console/drills");

    const overview = await (await fetch(url + "/console", { headers: { cookie } })).text();
    expect(overview).toMatch(/<header class="top">[\s\S]*<a href="\/console\/drills" class="">Drills<\/a>[\s\S]*<\/header>/);
    const res = await fetch(url + "/console/drills", { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const page = await res.text();
    expect(page).toContain('<a href="/console/drills" class="here">Drills</a>');
    const rowOf = (id: string) => new RegExp(`<tr class="drill" data-drill-id="${id}"[\\s\\S]*?</tr>`).exec(page)?.[0] ?? "";
    const text = (id: string) => rowOf(id).replace(/<[^>]+>/g, " ").replace(/\s+/g, " ");
    expect(rowOf(passed)).toContain('data-status="passed" data-objective="met"');
    expect(text(passed)).toMatch(/met \(30\.0 s\) healthy again after 4\.2 s, within the objective 30\.0 s/);
    expect(text(passed)).toMatch(/down 0\.3 s restart pending 0\.8 s approved 1\.4 s by drill:x healthy 4\.2 s/);
    // The drill started 40 s before it was inserted; on a busy machine the page is rendered a second or more later.
    expect(text(passed)).toMatch(/proposed .* ago by ops-ann killed (4\d|[5-9]\d) s ago finished/);
    expect(rowOf(missed)).toContain('data-status="missed" data-objective="missed"');
    expect(text(missed)).toMatch(/missed \(1\.0 s\) healthy again after 3\.4 s, over the objective 1\.0 s/);
    expect(rowOf(refused)).toContain('data-status="refused" data-objective="refused"');
    expect(text(refused)).toMatch(/node-2\/drill-api refused \(30\.0 s\) node node-2 is stale .*: a drill needs a node that reports not started/);
    expect(rowOf(open)).toContain('data-status="pending" data-objective="waiting for approval"');
    expect(rowOf(rejected)).toContain('data-status="rejected" data-objective="rejected"');
    expect(text(rejected)).toContain("rejected by ops-ann (web): not during the backup");
    expect(page).toMatch(/id="drill-summary">5 drills: 1 met their objective, 1 missed, 1 refused, 1 open\./);
    // Newest first, each row links to its action's page (the audit log).
    expect([...page.matchAll(/data-drill-id="([^"]+)"/g)].map((m) => m[1])).toEqual([rejected, open, refused, missed, passed]);
    expect(rowOf(passed)).toContain(`href="/console/actions/${passed}"`);
    // The partial a live page fetches is the body alone.
    const partial = await (await fetch(url + "/console/drills", { headers: { cookie, "x-console-partial": "1" } })).text();
    expect(partial.startsWith("<h1>Restart drills</h1>")).toBe(true);
    // No session: sent to sign in, no drill shown.
    const anon = await fetch(url + "/console/drills", { redirect: "manual" });
    expect(anon.status).toBe(303);
  });

  it("/api stays bearer-only: a console cookie does not open it", async () => {
    const { cookie } = await login();
    expect((await fetch(url + "/api/actions", { headers: { cookie } })).status).toBe(401);
  });
});
