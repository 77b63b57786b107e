/**
 * The alerter against real NATS + Postgres + the real executor, and local servers that speak ntfy's publish API and
 * the Telegram Bot API. World documents are written to KV by the test (the full loop is alerter-e2e.test.ts).
 */
import { createServer, type Server } from "node:http";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "@steward/platform/db";
import { openWorldBucket, type KV } from "@steward/platform/bus";
import { putDriftReport, putWorldSnapshot } from "@steward/world/testing";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { seedAction, stateOf as actionState, auditOf, only } from "@steward/actions/testing";
import { startFakeNtfy, startFakeTelegram, waitFor, waitForTicks, type FakeNtfy, type FakeTelegram } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { createExecutorClient } from "@steward/executor/client";
import { createNtfySink } from "@steward/alerter";

const API_TOKEN = "alerter-test-api-token-0123456789";
const OPERATOR = { id: 7001, is_bot: false, first_name: "Op", username: "op" };
const STRANGER = { id: 6666, is_bot: false, first_name: "Mallory" };
const ALERT_CHAT = { id: -1001, type: "group" as const, title: "ops" };
const OTHER_CHAT = { id: -2002, type: "group" as const, title: "elsewhere" };

let stack: Stack;
let sql: Sql;
let kv: KV;
let executorUrl = "";
let ntfy: FakeNtfy;
let tg: FakeTelegram;
let hooks: { server: Server; url: string; received: unknown[] };
let planner: { server: Server; url: string; inbox: unknown[]; spend: number };
let alerterUrl = "";
let alive = true;
let heart: NodeJS.Timeout | undefined;

const iso = () => new Date().toISOString();
function snapshot(): Snapshot {
  const now = iso();
  return { written_at: now, observer_id: "test", world: { version: 1, last_seq: 1, events_applied: 1, event_time: now, nodes: { n1: { name: "n1", status: "up", last_heartbeat: now, heartbeat_interval_ms: 1000, agent_started_at: now, dropped_events: 0, host: null, services: {} } } } };
}
let drifts: DriftReport["drifts"] = [];
const report = (): DriftReport => ({ computed_at: iso(), snapshot_written_at: null, world_seq: 1, supervisor_id: "test", skipped: null, drifts });

/** One writer at a time, like the one observer and the one leading supervisor (the timer and a test both beat). */
let beating: Promise<void> = Promise.resolve();
function beat(): Promise<void> {
  const next = beating.then(async () => {
    await putWorldSnapshot(kv, snapshot());
    await putDriftReport(kv, report());
  });
  beating = next.catch(() => undefined);
  return next;
}

async function listen(handler: (path: string, body: string) => { status: number; body: unknown }): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = handler(`${req.method} ${(req.url ?? "/").split("?")[0]}`, Buffer.concat(chunks).toString("utf8"));
      res.writeHead(r.status, { "content-type": "application/json" }).end(JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const a = server.address();
  return { server, url: `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}` };
}

const metric = async (name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`${alerterUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.split(",").every((p) => l.includes(p)));
  return line ? Number(line.split(" ").at(-1)) : 0;
};

const insertPending = (service: string): Promise<string> => seedAction(sql, { node: "n1", service, reason: `${service} is down`, proposedBy: "test", notify: true });
const stateOf = (id: string) => actionState(sql, id);

beforeAll(async () => {
  ntfy = await startFakeNtfy({ token: "tk_ntfy_access_token_1" });
  tg = await startFakeTelegram();
  const received: unknown[] = [];
  hooks = { ...(await listen((_p, body) => (received.push(JSON.parse(body)), { status: 200, body: {} }))), received };
  const inbox: unknown[] = [];
  const tasks = new Map<string, { id: string; content: string }>();
  planner = {
    inbox,
    spend: 1,
    ...(await listen((path, body) => {
      const now = iso();
      const task = (t: { id: string; content: string }, done: boolean) => ({ id: t.id, state: done ? "succeeded" : "queued", source: "telegram", user: "u", content: t.content, conversation_id: "c", agent: null, answer: done ? `answer to: ${t.content}` : null, model_groups: done ? ["rules"] : [], cost_usd: 0, attempts: 0, error: null, restricted: false, created_at: now, updated_at: now, expires_at: null });
      if (path === "POST /inbox") {
        const env = JSON.parse(body) as { task_id: string; content: string };
        inbox.push(env);
        tasks.set(env.task_id, { id: env.task_id, content: env.content });
        return { status: 201, body: { task: task({ id: env.task_id, content: env.content }, false), created: true } };
      }
      if (path.startsWith("GET /tasks/")) {
        const t = tasks.get(path.slice("GET /tasks/".length));
        return t ? { status: 200, body: { task: task(t, true), steps: [], calls: [], proposals: [] } } : { status: 404, body: { error: { code: "not_found" } } };
      }
      if (path === "GET /healthz") return { status: 200, body: { ok: true } };
      if (path === "GET /cost") {
        return { status: 200, body: { generated_at: now, caps: { per_task_usd: 5, per_agent_day_usd: 10, global_day_usd: 10 }, today: { global: { usd: planner.spend, calls: 1 }, by_agent: {} }, headroom: { global_day_usd: 10 - planner.spend, per_agent_day_usd: {} }, by_day: [], by_agent: [], by_model_group: [], by_source: [] } };
      }
      return { status: 404, body: {} };
    })),
  };
  stack = await startStack({
    dbPrefix: "steward_alerter",
    sqlMax: 4,
    // World and drift documents come from the test, a heartbeat every 200 ms while `alive`.
    beforeServices: async ({ nc }) => {
      kv = await openWorldBucket(nc);
      await beat();
      heart = setInterval(() => {
        if (alive) void beat().catch(() => undefined);
      }, 200);
    },
    executor: { EXECUTOR_WORKER: "false" },
    alerter: {
      PLANNER_URL: planner.url,
      NTFY_URL: ntfy.url,
      NTFY_TOPIC: "steward-test",
      NTFY_TOKEN: "tk_ntfy_access_token_1",
      TELEGRAM_API_URL: tg.apiUrl,
      TELEGRAM_BOT_TOKEN: tg.token,
      TELEGRAM_CHAT_ID: String(ALERT_CHAT.id),
      TELEGRAM_ALLOWED_USERS: String(OPERATOR.id),
      TELEGRAM_ALLOWED_CHATS: String(ALERT_CHAT.id),
      TELEGRAM_POLL_TIMEOUT_S: "1",
      WEBHOOK_URL: `${hooks.url}/hook`,
      ALERT_EVAL_MS: "200",
      ALERT_DEADMAN_S: "2",
      // Groups are told within a second, their changes within half a second (their timing has its own tests).
      ALERT_GROUP_WAIT_MS: "1000",
      ALERT_GROUP_INTERVAL_MS: "500",
      COST_POLL_MS: "200",
      RETRY_BASE_MS: "100",
      RETRY_MAX_MS: "2000",
    },
  });
  sql = stack.sql;
  executorUrl = stack.executorUrl;
  alerterUrl = stack.alerterUrl;
});

afterAll(async () => {
  if (heart) clearInterval(heart);
  await stack?.stop();
  await ntfy?.close();
  await tg?.close();
  hooks?.server.closeAllConnections();
  hooks?.server.close();
  planner?.server.closeAllConnections();
  planner?.server.close();
});

describe("alerts", () => {
  it("a new drift reaches every sink, ntfy after two 503s with backoff (counted), and resolves with a notification", async () => {
    const before = ntfy.rejected.length;
    ntfy.failNext(2, 503);
    drifts = [{ key: "down:n1/web", kind: "down", node: "n1", service: "web", severity: "action", message: "web exited (code 1)", since: iso(), proposes: "restart" }];
    await beat();
    const pushed = await ntfy.waitFor((m) => m.title === "Drift down: n1/web", 10_000);
    expect(ntfy.rejected.length - before).toBe(2);
    expect(pushed.headers["authorization"]).toBe("Bearer tk_ntfy_access_token_1");
    expect(pushed.priority).toBe(4);
    expect(await metric("steward_alerter_notifications_total", 'sink="ntfy",result="retry"')).toBe(2);
    // The push arrived; the alerter records it once ntfy's answer is back.
    const row = await waitFor("sent recorded", async () => {
      const [r] = await sql<{ attempts: number; state: string }[]>`SELECT n.attempts, n.state FROM alert_notifications n WHERE n.payload->>'fingerprint' = 'drift:down:n1/web' AND n.kind = 'firing' AND n.sink = 'ntfy'`;
      return r?.state === "sent" ? r : undefined;
    });
    expect(row).toEqual({ attempts: 3, state: "sent" });
    expect(await metric("steward_alerter_notifications_total", 'sink="ntfy",result="sent"')).toBeGreaterThanOrEqual(1);
    await tg.waitFor("telegram drift message", () => tg.sent.find((m) => m.text?.includes("Drift down: n1/web")));
    await waitFor("webhook drift", () => hooks.received.find((b) => (b as { alert?: { fingerprint?: string } }).alert?.fingerprint === "drift:down:n1/web"));
    // Still firing on later evaluations: not sent again (de-duplicated by fingerprint).
    await waitForTicks("alert evaluations", () => metric("steward_alerter_evaluations_total", 'result="ok"'));
    expect(ntfy.published.filter((m) => m.title === "Drift down: n1/web")).toHaveLength(1);

    drifts = [];
    await beat();
    await ntfy.waitFor((m) => m.title === "Resolved: Drift down: n1/web");
    await waitFor("webhook resolved", () => hooks.received.find((b) => (b as { status?: string; alert?: { fingerprint?: string } }).status === "resolved" && (b as { alert: { fingerprint: string } }).alert.fingerprint === "drift:down:n1/web"));
    const [a] = await sql<{ state: string }[]>`SELECT state FROM alerts WHERE fingerprint = 'drift:down:n1/web'`;
    expect(a).toEqual({ state: "resolved" });
    // Its group (node n1) told every sink twice: firing and resolved.
    const [g] = await sql<{ state: string; notifications: number }[]>`SELECT state, notifications FROM alert_groups WHERE group_key = 'node:n1' ORDER BY id DESC LIMIT 1`;
    expect(g).toEqual({ state: "resolved", notifications: 6 });
  });

  it("a failing sink never drops a notification: it is kept and retried until the sink is back", async () => {
    ntfy.failNext(1_000, 500);
    drifts = [{ key: "down:n1/db", kind: "down", node: "n1", service: "db", severity: "action", message: "db exited", since: iso(), proposes: "restart" }];
    await beat();
    await waitFor("retried row", async () => ((await sql<{ attempts: number }[]>`SELECT n.attempts FROM alert_notifications n WHERE n.payload->>'fingerprint' = 'drift:down:n1/db' AND n.sink = 'ntfy'`)[0]?.attempts ?? 0) >= 2 || undefined);
    expect(await metric("steward_alerter_notifications_unsent", 'sink="ntfy"')).toBeGreaterThanOrEqual(1);
    ntfy.failNext(0);
    await ntfy.waitFor((m) => m.title === "Drift down: n1/db", 10_000);
    drifts = [];
    await beat();
    await ntfy.waitFor((m) => m.title === "Resolved: Drift down: n1/db", 10_000);
  });

  it("the dead-man fires when snapshots stop and resolves when they resume", async () => {
    alive = false;
    // The observer and the supervisor both stopped writing: one outage, one notice naming both.
    const fired = await ntfy.waitFor((m) => m.title === "Dead man: observer, supervisor not making progress", 8000);
    expect(fired.priority).toBe(5);
    expect(fired.message.split("\n").sort()).toEqual(["Dead man: observer made no progress", "Dead man: supervisor made no progress"]);
    alive = true;
    // Both write again with one beat; the group may first shrink to the one that had not yet been read back.
    await ntfy.waitFor((m) => (m.title ?? "").startsWith("Resolved: Dead man: "), 8000);
  });

  it("the web console's Alerts page lists what fires and what resolved, asked of the alerter (it owns the alerts)", async () => {
    drifts = [{ key: "down:n1/shop", kind: "down", node: "n1", service: "shop", severity: "action", message: "shop exited (code 2)", since: iso(), proposes: "restart" }];
    await beat();
    await ntfy.waitFor((m) => m.title === "Drift down: n1/shop", 10_000);
    const origin = executorUrl;
    const signIn = await fetch(`${executorUrl}/console/login`, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", origin }, body: new URLSearchParams({ token: stack.token, name: "ops" }).toString() });
    expect(signIn.status).toBe(303);
    const cookie = (signIn.headers.get("set-cookie") ?? "").split(";")[0]!;
    const page = async () => {
      const r = await fetch(`${executorUrl}/console/alerts`, { headers: { cookie } });
      expect(r.status).toBe(200);
      return r.text();
    };
    const firing = await page();
    expect(firing).toContain('data-fingerprint="drift:down:n1/shop"');
    expect(firing).toContain("shop exited (code 2)");
    expect(firing.indexOf("Firing (")).toBeLessThan(firing.indexOf("drift:down:n1/shop"));
    drifts = [];
    await beat();
    await ntfy.waitFor((m) => m.title === "Resolved: Drift down: n1/shop", 10_000);
    const after = await page();
    expect(after.indexOf("Resolved in the last day")).toBeLessThan(after.indexOf('data-fingerprint="drift:down:n1/shop"'));
  });

  it("cost cap at 80% and 100% from the planner's /cost", async () => {
    planner.spend = 8.5;
    await ntfy.waitFor((m) => m.title === "LLM spend at 80% of the global daily cap");
    planner.spend = 10;
    const at100 = await ntfy.waitFor((m) => m.title === "LLM spend at 100% of the global daily cap");
    expect(at100.priority).toBe(5);
    planner.spend = 1;
    await ntfy.waitFor((m) => m.title === "Resolved: LLM spend at 100% of the global daily cap");
  });
});

describe("approvals outside the console", () => {
  it("ntfy: a pending action is pushed with Approve/Reject/Console; pressing Approve approves it once", async () => {
    const id = await insertPending("api");
    const push = await ntfy.waitFor((m) => m.title === "Approve restart n1/api?");
    expect(push.actions.map((a) => `${a.action}:${a.label}`)).toEqual(["http:Approve", "http:Reject", "view:Console"]);
    expect(push.actions[2]?.url).toBe(`${executorUrl}/console/actions/${id}`);
    const r = await ntfy.press(push, "Approve");
    expect(r.status).toBe(200);
    expect(await stateOf(id)).toBe("approved");
    expect((await ntfy.press(push, "Approve")).status).toBe(409);
    const resolved = await ntfy.waitFor((m) => m.title === "Resolved: Approve restart n1/api?");
    expect(resolved.message).toContain("approved by ntfy-button via ntfy");
  });

  it("telegram: a press from a chat that is not allow-listed is refused and audited; an allow-listed press approves and edits the message", async () => {
    const id = await insertPending("cache");
    const msg = await tg.waitFor("pending action message", () => tg.sent.find((m) => m.text?.includes("Approve restart n1/cache?") && m.reply_markup));
    const [approve, reject] = msg.reply_markup!.inline_keyboard[0]!;
    expect(approve?.text).toContain("Approve");
    expect(reject?.text).toContain("Reject");
    for (const b of [approve, reject]) expect(Buffer.byteLength(b!.callback_data!, "utf8")).toBeLessThanOrEqual(64);
    expect(approve!.callback_data).not.toContain(id);

    // An allow-listed user, but in a chat that is not allow-listed.
    const bad = await tg.injectCallback({ from: OPERATOR, chat: OTHER_CHAT, message_id: msg.message_id, data: approve!.callback_data! });
    await tg.waitFor("refusal answer", () => tg.answers.find((a) => a.callback_query_id === bad.callback_query!.id));
    expect(tg.answers.at(-1)?.text).toMatch(/Not allowed/);
    const strangerPress = await tg.injectCallback({ from: STRANGER, message_id: msg.message_id, data: approve!.callback_data! });
    await tg.waitFor("stranger answer", () => tg.answers.find((a) => a.callback_query_id === strangerPress.callback_query!.id));
    expect(await stateOf(id)).toBe("pending");
    const audit = only(await auditOf(sql, id), "from_state", "to_state", "channel", "actor", "detail");
    expect(audit).toHaveLength(2);
    // The actor is the alerter's credential, never a name the request carries; who pressed is in the detail.
    expect(audit[0]).toMatchObject({ from_state: "pending", to_state: "pending", channel: "telegram", actor: "alerter" });
    expect(audit[0]?.detail).toMatch(/not allow-listed/);
    expect(audit[0]?.detail).toContain("telegram:7001(@op), as alerter relays it");
    expect(audit[1]).toMatchObject({ channel: "telegram", actor: "alerter" });
    expect(audit[1]?.detail).toContain("telegram:6666");
    expect(tg.edits).toHaveLength(0);

    const good = await tg.injectCallback({ from: OPERATOR, message_id: msg.message_id, data: approve!.callback_data! });
    await tg.waitFor("approval answer", () => tg.answers.find((a) => a.callback_query_id === good.callback_query!.id));
    expect(await stateOf(id)).toBe("approved");
    const edit = await tg.waitFor("message edited", () => tg.edits.find((e) => e.message_id === msg.message_id));
    expect(edit.text).toContain("Approved by @op via Telegram");
    const [last] = only(await auditOf(sql, id), "to_state", "channel", "actor", "detail").slice(-1);
    expect(last).toEqual({ to_state: "approved", channel: "telegram", actor: "alerter", detail: "approved via telegram by telegram:7001(@op), as alerter relays it" });
    // Every callback was answered.
    const presses = tg.calls.filter((c) => c.method === "answerCallbackQuery").length;
    expect(presses).toBe(3);
    expect(await metric("steward_alerter_telegram_callbacks_total", 'result="not_allowed"')).toBe(2);
  });

  it("telegram: a replayed, altered or cross-action press is refused and changes nothing; the button's token is the executor's, bound to what runs", async () => {
    const a = await insertPending("queue");
    const b = await insertPending("mail");
    const msgOf = (svc: string) => tg.waitFor(`${svc} message`, () => tg.sent.find((m) => m.text?.includes(`Approve restart n1/${svc}?`) && m.reply_markup));
    const [ma, mb] = [await msgOf("queue"), await msgOf("mail")];
    // Read the buttons now: a refused press edits its message, and an edit without a keyboard removes it.
    const data = new Map([ma, mb].flatMap((m) => [0, 1].map((i) => [`${m.message_id}:${i}`, m.reply_markup!.inline_keyboard[0]![i]!.callback_data!] as const)));
    const dataOf = (m: typeof ma, i: 0 | 1) => data.get(`${m.message_id}:${i}`)!;
    const pressed = async (message_id: number, data: string): Promise<string> => {
      const u = await tg.injectCallback({ from: OPERATOR, message_id, data });
      return (await tg.waitFor("answer", () => tg.answers.find((x) => x.callback_query_id === u.callback_query!.id))).text ?? "";
    };
    // The token behind each button is the executor's (st1.…), kept by the alerter, never in the button.
    const [row] = await sql<{ token: string }[]>`SELECT token FROM telegram_callbacks WHERE id = ${dataOf(ma, 0)}`;
    expect(row?.token).toMatch(/^st1\./);

    // Cross-action: queue's Approve pressed on mail's message.
    expect(await pressed(mb.message_id, dataOf(ma, 0))).toMatch(/does not belong/);
    // Altered callback data.
    expect(await pressed(ma.message_id, `${dataOf(ma, 0).slice(0, -2)}xx`)).toMatch(/unknown/);
    // A token altered where the alerter keeps it: the executor's signature check refuses it.
    const t = row!.token;
    const [p, body, mac] = t.split(".");
    const claims = JSON.parse(Buffer.from(body!, "base64url").toString("utf8")) as Record<string, unknown>;
    const forged = `${p}.${Buffer.from(JSON.stringify({ ...claims, aid: b })).toString("base64url")}.${mac}`;
    await sql`UPDATE telegram_callbacks SET token = ${forged} WHERE id = ${dataOf(ma, 0)}`;
    expect(await pressed(ma.message_id, dataOf(ma, 0))).toMatch(/Could not approve: .*signature/);
    // Another action's (valid) token swapped in: refused as another action's.
    const [bRow] = await sql<{ token: string }[]>`SELECT token FROM telegram_callbacks WHERE id = ${dataOf(mb, 0)}`;
    await sql`UPDATE telegram_callbacks SET token = ${bRow!.token}, used_at = NULL WHERE id = ${dataOf(ma, 0)}`;
    expect(await pressed(ma.message_id, dataOf(ma, 0))).toMatch(/Could not approve: .*another action/);
    expect([await stateOf(a), await stateOf(b)]).toEqual(["pending", "pending"]);
    // What mail would run changed after the push: its button decides nothing.
    await sql`UPDATE actions SET params = ${sql.json({ extra: "changed" })} WHERE id = ${b}`;
    expect(await pressed(mb.message_id, dataOf(mb, 0))).toMatch(/Could not approve: .*changed/);
    expect(await stateOf(b)).toBe("pending");

    // The right token approves once; a replay past the alerter's own check (its row freed) is refused by the executor.
    await sql`UPDATE telegram_callbacks SET token = ${t}, used_at = NULL WHERE id = ${dataOf(ma, 0)}`;
    expect(await pressed(ma.message_id, dataOf(ma, 0))).toMatch(/Approved by @op/);
    expect(await stateOf(a)).toBe("approved");
    expect(await pressed(ma.message_id, dataOf(ma, 0))).toMatch(/already used/);
    await sql`UPDATE telegram_callbacks SET used_at = NULL WHERE id = ${dataOf(ma, 0)}`;
    expect(await pressed(ma.message_id, dataOf(ma, 0))).toMatch(/Could not approve: .*already used/);
    const audit = only(await auditOf(sql, a), "from_state", "to_state", "actor", "channel", "detail");
    expect(audit.filter((r) => r.to_state === "approved" && r.from_state === "pending")).toHaveLength(1);
    expect(audit.map((r) => r.detail ?? "").filter((d) => /forged_token|wrong_action|does not belong|token_used/.test(d))).toHaveLength(4);
    expect(audit.every((r) => r.actor === "alerter" && r.channel === "telegram")).toBe(true);
  });

  it("ntfy on an open topic: the buttons only open the console's confirmation; nothing is approved until a signed-in operator confirms", async () => {
    const open = await startFakeNtfy();
    try {
      const executor = createExecutorClient({ url: executorUrl, token: stack.alerterToken });
      const sink = createNtfySink({ url: open.url, topic: "steward-open", token: undefined, protectedTopic: false }, { executor, executorPublicUrl: executorUrl, consoleUrl: `${executorUrl}/console`, timeoutMs: 10_000 });
      const id = await insertPending("open-topic");
      const at = iso();
      const sent = await sink.send({ kind: "firing", alert_id: 1, fingerprint: "f", rule: "action_pending", severity: "warning", title: "Approve restart n1/open-topic?", message: "open-topic is down", labels: {}, first_seen: at, at, action: { id, node: "n1", service: "open-topic", kind: "restart", reason: "down", diagnosis: null, expires_at: new Date(Date.now() + 3_600_000).toISOString(), params: {} } });
      expect(sent).toMatchObject({ ok: true });
      const push = await open.waitFor((m) => m.title === "Approve restart n1/open-topic?");
      expect(push.actions.map((x) => `${x.action}:${x.label}`)).toEqual(["view:Approve…", "view:Reject…", "view:Console"]);
      // No button carries a request that decides: the ntfy app only opens these pages.
      expect(push.actions.some((x) => x.action === "http" || x.body !== undefined)).toBe(false);
      const confirmUrl = push.actions[0]!.url!;
      expect(confirmUrl.startsWith(`${executorUrl}/console/confirm?token=st1.`)).toBe(true);
      const opened = await fetch(confirmUrl, { redirect: "manual" });
      expect(opened.status).toBe(303);
      expect(opened.headers.get("location")).toMatch(/^\/console\/login\?next=/);
      // Whoever reads the topic and posts the token the way an http button would is refused.
      const token = new URL(confirmUrl).searchParams.get("token")!;
      const direct = await fetch(`${executorUrl}/approvals/${id}/approve`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
      expect(direct.status).toBe(403);
      expect(await stateOf(id)).toBe("pending");

      const created = await fetch(`${executorUrl}/api/credentials`, { method: "POST", headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" }, body: JSON.stringify({ name: "ops-olga", role: "approver" }) });
      const opToken = ((await created.json()) as { token: string }).token;
      const form = (o: Record<string, string>) => ({ method: "POST", redirect: "manual" as const, headers: { "content-type": "application/x-www-form-urlencoded", origin: executorUrl }, body: new URLSearchParams(o).toString() });
      const next = new URL(confirmUrl).pathname + new URL(confirmUrl).search;
      const signedIn = await fetch(`${executorUrl}/console/login`, form({ token: opToken, next }));
      expect(signedIn.headers.get("location")).toBe(next);
      const cookie = (signedIn.headers.get("set-cookie") ?? "").split(";")[0]!;
      const page = await (await fetch(confirmUrl, { headers: { cookie } })).text();
      expect(await stateOf(id)).toBe("pending");
      const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? "";
      const confirmed = await fetch(`${executorUrl}/console/confirm`, { ...form({ csrf, token, action: id, decision: "approve" }), headers: { ...form({}).headers, cookie } });
      expect(confirmed.status).toBe(303);
      expect(await stateOf(id)).toBe("approved");
      const approved = only(await auditOf(sql, id), "to_state", "actor", "channel").filter((r) => r.to_state === "approved");
      expect(approved).toEqual([{ to_state: "approved", actor: "ops-olga", channel: "web" }]);
    } finally {
      await open.close();
    }
  });

  it("telegram /status and /task (answered when the planner is done); strangers are refused", async () => {
    await tg.injectMessage({ from: OPERATOR, chat: ALERT_CHAT, text: "/status" });
    const status = await tg.waitFor("status reply", () => tg.sent.find((m) => m.text?.startsWith("Fleet (snapshot")));
    expect(status.text).toContain("n1: up");
    await tg.injectMessage({ from: OPERATOR, chat: ALERT_CHAT, text: "/task why did web restart?" });
    await tg.waitFor("queued reply", () => tg.sent.find((m) => m.text?.includes("queued")));
    const answer = await tg.waitFor("task answer", () => tg.sent.find((m) => m.text?.includes("answer to: why did web restart?")), 10_000);
    expect(answer.chat.id).toBe(ALERT_CHAT.id);
    expect(planner.inbox[0]).toMatchObject({ source: "telegram", content: "why did web restart?", user: "telegram:7001(@op)" });
    await tg.injectMessage({ from: STRANGER, chat: OTHER_CHAT, text: "/status" });
    const refused = await tg.waitFor("refusal", () => tg.sent.find((m) => m.chat.id === OTHER_CHAT.id));
    expect(refused.text).toMatch(/Not allowed/);
  });
});

describe("start-up refusals", () => {
  const main = fileURLToPath(new URL("../services/alerter/dist/main.js", import.meta.url));
  it.each([
    ["TELEGRAM_BOT_TOKEN", { TELEGRAM_BOT_TOKEN: "", TELEGRAM_CHAT_ID: "1", TELEGRAM_ALLOWED_USERS: "1" }],
    ["NTFY_URL", { NTFY_URL: "changeme", NTFY_TOPIC: "steward-ops" }],
    ["WEBHOOK_URL", { WEBHOOK_URL: "" }],
  ])("an empty or placeholder %s refuses to start, naming it", async (setting, extra) => {
    const child = spawn(process.execPath, [main], { env: { PATH: process.env["PATH"] ?? "", DATABASE_URL: "postgres://x@127.0.0.1:1/x", API_TOKEN, ...extra }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    expect(code).toBe(2);
    expect(stderr).toContain(setting);
  });
});
