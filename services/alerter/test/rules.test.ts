import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import type { Action } from "@steward/contracts/action";
import type { CostReport } from "@steward/contracts/task";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { loadConfig, ntfyTopicProtected } from "../src/config.js";
import { backoffMs, renderText, retryableStatus, type NotificationPayload } from "../src/notification.js";
import { defaultRules, evaluate, reconcile, Rules, type RuleInputs } from "../src/rules.js";
import { ntfyMessage } from "../src/sinks/ntfy.js";
import { isAllowed } from "../src/telegram-bot.js";

const T0 = Date.parse("2026-01-01T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();

function snap(writtenAt: number, stale: string[] = []): Snapshot {
  const node = (name: string) => ({ name, status: stale.includes(name) ? ("stale" as const) : ("up" as const), last_heartbeat: iso(writtenAt - 1000), heartbeat_interval_ms: 1000, agent_started_at: null, dropped_events: 0, host: null, services: {} });
  return { written_at: iso(writtenAt), observer_id: "o", world: { version: 1, last_seq: 1, events_applied: 1, event_time: iso(writtenAt), nodes: { a: node("a"), b: node("b") } } };
}
function driftReport(computedAt: number, drifts: { key: string; since?: number | null; severity?: "action" | "alert" | "report"; kind?: "down" | "unknown" | "missing" }[]): DriftReport {
  return {
    computed_at: iso(computedAt),
    snapshot_written_at: null,
    world_seq: 1,
    supervisor_id: "s",
    skipped: null,
    drifts: drifts.map((d) => ({ key: d.key, kind: d.kind ?? "down", node: "a", service: d.key, severity: d.severity ?? "action", message: `${d.key} is down`, since: d.since === undefined ? null : d.since === null ? null : iso(d.since), proposes: "restart" })),
  };
}
function action(id: string, state: Action["state"], updatedAt: number, over: Partial<Action> = {}): Action {
  return { id, node: "a", service: "web", kind: "restart", state, reason: "web is down", drift_key: null, proposed_by: "s", diagnosis: null, created_at: iso(updatedAt), updated_at: iso(updatedAt), expires_at: iso(updatedAt + 3_600_000), result: state === "failed" ? "not verified" : null, traceparent: null, params: {}, ...over };
}
const cost = (usd: number, cap: number): CostReport => ({
  generated_at: iso(T0),
  caps: { per_task_usd: 5, per_agent_day_usd: 100, global_day_usd: cap },
  today: { global: { usd, calls: 1 }, by_agent: {} },
  headroom: { global_day_usd: cap - usd, per_agent_day_usd: {} },
  by_day: [],
  by_agent: [],
  by_model_group: [],
  by_source: [],
});

const rules = defaultRules({ driftPersistMin: 10, deadmanS: 30 });
function inputs(over: Partial<RuleInputs> = {}): RuleInputs {
  return {
    now: T0,
    startedAt: T0 - 5000,
    snapshot: { ok: true, value: snap(T0 - 1000) },
    lastGoodSnapshotAt: T0 - 1000,
    drift: { ok: true, value: driftReport(T0 - 1000, []) },
    lastGoodDriftAt: T0 - 1000,
    actions: { ok: true, value: { pending: [], latestFinished: [] } },
    cost: { ok: false, reason: "no planner configured" },
    firstSeen: new Map(),
    driftFirstSeen: new Map(),
    graceMs: 60_000,
    answered: { watched: new Set(["executor", "planner"]), lastOk: { executor: T0 - 1000, planner: T0 - 1000 }, lastError: {} },
    ...over,
  };
}
const fps = (i: RuleInputs) => evaluate(rules, i).findings.map((f) => f.fingerprint).sort();

describe("evaluate", () => {
  it.each<[string, Partial<RuleInputs>, string[]]>([
    ["a quiet fleet fires nothing", {}, []],
    ["a new drift", { drift: { ok: true, value: driftReport(T0, [{ key: "down:a/web", since: T0 - 1000 }]) } }, ["drift:down:a/web"]],
    ["report-only drift is not alerted", { drift: { ok: true, value: driftReport(T0, [{ key: "x", severity: "report" }]) } }, []],
    ["a drift older than N minutes also persists", { drift: { ok: true, value: driftReport(T0, [{ key: "k", since: T0 - 11 * 60_000 }]) } }, ["drift:k", "drift_persists:k"]],
    ["persistence without since falls back to first_seen", { drift: { ok: true, value: driftReport(T0, [{ key: "k", since: null }]) }, firstSeen: new Map([["drift:k", T0 - 20 * 60_000]]) }, ["drift:k", "drift_persists:k"]],
    ["a stale node", { snapshot: { ok: true, value: snap(T0, ["b"]) } }, ["node_stale:b"]],
    ["failed action (newest of its kind)", { actions: { ok: true, value: { pending: [], latestFinished: [action("1", "failed", T0 - 1000)] } } }, ["action_failed:a/web/restart"]],
    ["succeeded action", { actions: { ok: true, value: { pending: [], latestFinished: [action("1", "succeeded", T0 - 1000)] } } }, []],
    ["pending action asks for approval", { actions: { ok: true, value: { pending: [action("p1", "pending", T0)], latestFinished: [] } } }, ["action_pending:p1"]],
    ["observer dead-man: snapshot too old", { lastGoodSnapshotAt: T0 - 31_000 }, ["deadman:observer"]],
    ["supervisor dead-man: drift report too old", { lastGoodDriftAt: T0 - 31_000 }, ["deadman:supervisor"]],
    ["dead-man before any snapshot counts from start", { lastGoodSnapshotAt: undefined, startedAt: T0 - 40_000, snapshot: { ok: false, reason: "none" } }, ["deadman:observer"]],
    ["never reported, inside the grace: not news yet", { drift: { ok: true, value: driftReport(T0, [{ key: "unknown:a/web", kind: "unknown", since: null }]) }, driftFirstSeen: new Map([["unknown:a/web", T0 - 59_000]]) }, []],
    ["never reported past the grace", { drift: { ok: true, value: driftReport(T0, [{ key: "unknown:a/web", kind: "unknown", since: null }]) }, driftFirstSeen: new Map([["unknown:a/web", T0 - 61_000]]) }, ["drift:unknown:a/web"]],
    ["declared service not seen yet, inside the grace", { drift: { ok: true, value: driftReport(T0, [{ key: "missing:a/web", kind: "missing", since: null }]) }, driftFirstSeen: new Map([["missing:a/web", T0 - 1000]]) }, []],
    ["inside the grace but already alerted (alerter restarted): stays", { drift: { ok: true, value: driftReport(T0, [{ key: "unknown:a/web", kind: "unknown", since: null }]) }, driftFirstSeen: new Map([["unknown:a/web", T0]]), firstSeen: new Map([["drift:unknown:a/web", T0 - 90_000]]) }, ["drift:unknown:a/web"]],
    ["grace 0: at once", { drift: { ok: true, value: driftReport(T0, [{ key: "unknown:a/web", kind: "unknown", since: null }]) }, graceMs: 0 }, ["drift:unknown:a/web"]],
    ["a down service has no grace", { drift: { ok: true, value: driftReport(T0, [{ key: "down:a/web", since: T0 - 10 }]) }, driftFirstSeen: new Map([["down:a/web", T0]]) }, ["drift:down:a/web"]],
    ["executor not answering past the limit", { answered: { watched: new Set(["executor", "planner"]), lastOk: { executor: T0 - 31_000, planner: T0 - 1000 }, lastError: { executor: "ECONNREFUSED" } } }, ["deadman:executor"]],
    ["planner never answered since start, past the limit", { startedAt: T0 - 40_000, answered: { watched: new Set(["executor", "planner"]), lastOk: { executor: T0 - 1000 }, lastError: {} } }, ["deadman:planner"]],
    ["no planner in this stack: never judged", { startedAt: T0 - 40_000, answered: { watched: new Set(["executor"]), lastOk: { executor: T0 - 1000 }, lastError: {} } }, []],
    ["cost at 85%", { cost: { ok: true, value: cost(8.5, 10) } }, ["cost_cap:global:80"]],
    ["cost at 100%", { cost: { ok: true, value: cost(10, 10) } }, ["cost_cap:global:100"]],
  ])("%s", (_n, over, want) => {
    expect(fps(inputs(over))).toEqual(want);
  });

  it("an approval request labels the texts a model wrote as unverified, and only those", () => {
    const msg = (over: Partial<Action>) => evaluate(rules, inputs({ actions: { ok: true, value: { pending: [{ ...action("p1", "pending", T0), reason: "db keeps dying", diagnosis: "oom", ...over }], latestFinished: [] } } })).findings[0]?.message;
    expect(msg({ model_written: ["reason", "diagnosis"] })).toBe("Reason (written by a model, unverified): db keeps dying\nDiagnosis (written by a model, unverified): oom");
    expect(msg({})).toBe("db keeps dying\nDiagnosis: oom");
  });

  it("only judges rules whose inputs were readable", () => {
    const ev = evaluate(rules, inputs({ drift: { ok: false, reason: "unreadable" }, snapshot: { ok: false, reason: "unreadable" } }));
    expect(ev.judged.has("new_drift")).toBe(false);
    expect(ev.judged.has("node_stale")).toBe(false);
    expect(ev.judged.has("deadman:observer")).toBe(true);
    expect(ev.judged.has("cost_cap")).toBe(false);
  });

  it("a recurring failure is one alert per recurrence while its window lasts, never repeated; not judged without the planner's list", () => {
    const rec = { id: 7, node: "a", service: "web", signature: "down:exit=3", count: 3, incident_ids: [2, 5, 9], raised_at: iso(T0 - 3_600_000), window_until: iso(T0 - 3_600_000 + 30 * 86_400_000) };
    const ended = { ...rec, id: 6, window_until: iso(T0 - 1) };
    const ev = evaluate(rules, inputs({ recurrences: { ok: true, value: [rec, ended] } }));
    const found = ev.findings.filter((f) => f.rule === "incident_recurs");
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      fingerprint: "incident_recurs:7",
      severity: "warning",
      title: "This keeps happening: web on a (down:exit=3)",
      renotifyMs: 0,
      labels: { node: "a", service: "web", signature: "down:exit=3", recurrence_id: "7", incident_id: "9" },
    });
    expect(found[0]?.message).toBe("3 incidents of the same failure (down:exit=3) within 30 days: #2, #5, #9. A restart will not end it; see steward incident show 9 and its similar past incidents.");
    expect(ev.judged.has("incident_recurs")).toBe(true);
    expect(evaluate(rules, inputs()).judged.has("incident_recurs")).toBe(false);
    expect(evaluate(rules, inputs({ recurrences: { ok: false, reason: "planner down" } })).judged.has("incident_recurs")).toBe(false);
  });

  it("rejects unknown rules and bad fields in a rules file", () => {
    expect(Rules.safeParse([{ rule: "nope" }]).success).toBe(false);
    expect(Rules.safeParse([{ rule: "deadman", component: "observer" }]).success).toBe(false);
    expect(Rules.safeParse([{ rule: "deadman", component: "observer", after_s: 5 }]).success).toBe(true);
  });
});

describe("reconcile", () => {
  const f = (fp: string, rule = "new_drift", renotifyMs?: number) => ({ fingerprint: fp, rule, severity: "warning" as const, title: fp, message: fp, labels: {}, renotifyMs });
  const open = (id: number, fp: string, rule: string, lastNotified: number | null) => ({ id, fingerprint: fp, rule, firstSeen: T0 - 60_000, lastNotified });

  it("fires new, keeps existing, resolves what cleared", () => {
    const p = reconcile([open(1, "drift:a", "new_drift", T0 - 1000), open(2, "drift:b", "new_drift", T0 - 1000)], { findings: [f("drift:a"), f("drift:c")], judged: new Set(["new_drift"]) });
    expect(p.fire.map((x) => x.fingerprint)).toEqual(["drift:c"]);
    expect(p.keep.map((x) => x.alert.id)).toEqual([1]);
    expect(p.resolve.map((x) => x.id)).toEqual([2]);
  });

  it("does not resolve what it could not judge (unknown is not clear)", () => {
    const p = reconcile([open(2, "drift:b", "new_drift", T0)], { findings: [], judged: new Set() });
    expect(p.resolve).toEqual([]);
  });
});

describe("delivery helpers", () => {
  it.each([
    [200, false],
    [400, false],
    [401, false],
    [404, false],
    [408, true],
    [429, true],
    [500, true],
    [503, true],
  ])("HTTP %i retryable: %s", (s, want) => expect(retryableStatus(s)).toBe(want));

  it("backs off exponentially with a cap", () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 10].map((a) => backoffMs(a, 100, 1000, mid))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffMs(1, 100, 1000, () => 0)).toBe(80);
  });
});

const pending: NotificationPayload = {
  kind: "firing",
  alert_id: 1,
  fingerprint: "action_pending:abc",
  rule: "action_pending",
  severity: "info",
  title: "Approve restart a/web?",
  message: "web is down",
  labels: {},
  first_seen: iso(T0),
  at: iso(T0),
  action: { id: "abc", node: "a", service: "web", kind: "restart", reason: "web is down", diagnosis: null, expires_at: iso(T0 + 1000), params: {} },
};

describe("ntfy message", () => {
  it("carries Approve/Reject http actions to the executor and a console view", () => {
    const m = ntfyMessage(pending, {
      topic: "ops",
      consoleUrl: "https://steward.lan/console",
      executorPublicUrl: "https://steward.lan",
      tokens: { action_id: "abc", expires_at: iso(T0), approve: { token: "A", path: "/approvals/abc/approve" }, reject: { token: "R", path: "/approvals/abc/reject" } },
    });
    expect(m.actions).toEqual([
      { action: "http", label: "Approve", url: "https://steward.lan/approvals/abc/approve", method: "POST", headers: { "content-type": "application/json" }, body: '{"token":"A"}', clear: true },
      { action: "http", label: "Reject", url: "https://steward.lan/approvals/abc/reject", method: "POST", headers: { "content-type": "application/json" }, body: '{"token":"R"}', clear: true },
      { action: "view", label: "Console", url: "https://steward.lan/console/actions/abc" },
    ]);
    expect(m.message).toContain("Will run: restart a/web");
  });

  it("with confirm-only tokens (an open topic) the buttons only open the console's confirmation page", () => {
    const m = ntfyMessage(pending, {
      topic: "ops",
      consoleUrl: "https://steward.lan/console",
      executorPublicUrl: "https://steward.lan",
      tokens: { action_id: "abc", expires_at: iso(T0), approve: { token: "A", path: "/console/confirm?token=A" }, reject: { token: "R", path: "/console/confirm?token=R" } },
    });
    expect(m.actions).toEqual([
      { action: "view", label: "Approve…", url: "https://steward.lan/console/confirm?token=A" },
      { action: "view", label: "Reject…", url: "https://steward.lan/console/confirm?token=R" },
      { action: "view", label: "Console", url: "https://steward.lan/console/actions/abc" },
    ]);
  });

  it("a resolved notice has no buttons and low priority", () => {
    const m = ntfyMessage({ ...pending, kind: "resolved", note: "approved by x" }, { topic: "ops", executorPublicUrl: "http://e" });
    expect(m.actions).toBeUndefined();
    expect(m.priority).toBe(2);
    expect(m.title).toMatch(/^Resolved: /);
    expect(renderText({ ...pending, kind: "resolved", note: "approved by x" })).toContain("approved by x");
  });
});

describe("is the ntfy topic access-controlled?", () => {
  it.each([
    ["own server with a token", { url: "https://ntfy.home.lan", token: "tk_1234567890", explicit: undefined }, true],
    ["own server without a token", { url: "https://ntfy.home.lan", token: undefined, explicit: undefined }, false],
    ["the public server, even with a token", { url: "https://ntfy.sh", token: "tk_1234567890", explicit: undefined }, false],
    ["the public server, a topic reserved for you (explicit)", { url: "https://ntfy.sh", token: "tk_1234567890", explicit: true }, true],
    ["explicitly open", { url: "https://ntfy.home.lan", token: "tk_1234567890", explicit: false }, false],
  ] as const)("%s", (_n, o, want) => {
    expect(ntfyTopicProtected(o)).toBe(want);
  });

  it("reads NTFY_TOPIC_PROTECTED and refuses anything but a boolean, naming it", () => {
    const base = { DATABASE_URL: "postgres://x@h/db", API_TOKEN: "k3J9xQ2mV8pL5wR7tY1uZ4aB6cD0eF", NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "ops" };
    expect(loadConfig(base).ntfy?.protectedTopic).toBe(false);
    expect(loadConfig({ ...base, NTFY_TOPIC_PROTECTED: "true" }).ntfy?.protectedTopic).toBe(true);
    expect(() => loadConfig({ ...base, NTFY_TOPIC_PROTECTED: "maybe" })).toThrow(/NTFY_TOPIC_PROTECTED/);
  });
});

describe("telegram allow-list", () => {
  it.each([
    ["user listed", "1", "100", ["1"], [], true],
    ["user not listed", "2", "100", ["1"], [], false],
    ["chat listed", "9", "100", [], ["100"], true],
    ["both lists must agree", "1", "200", ["1"], ["100"], false],
    ["no list admits no one", "1", "100", [], [], false],
  ])("%s", (_n, user, chat, users, chats, want) => {
    expect(isAllowed(user, chat, new Set(users), new Set(chats))).toBe(want);
  });
});

describe("config", () => {
  const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN: "a-real-api-token-0123456789" };
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.problems.map((p) => p.setting);
    }
  };
  it.each<[string, Record<string, string>, string[]]>([
    ["no sink at all", {}, ["NTFY_URL"]],
    ["ntfy ok", { NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "steward-ops-1" }, []],
    ["ntfy URL empty", { NTFY_URL: "", NTFY_TOPIC: "steward-ops" }, ["NTFY_URL"]],
    ["ntfy URL placeholder", { NTFY_URL: "https://ntfy.example.com", NTFY_TOPIC: "steward-ops" }, ["NTFY_URL"]],
    ["ntfy topic placeholder", { NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "changeme" }, ["NTFY_TOPIC"]],
    ["ntfy token empty", { NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "steward-ops", NTFY_TOKEN: "" }, ["NTFY_TOKEN"]],
    ["telegram token empty", { TELEGRAM_BOT_TOKEN: "", TELEGRAM_CHAT_ID: "42", TELEGRAM_ALLOWED_USERS: "1" }, ["TELEGRAM_BOT_TOKEN"]],
    ["telegram token placeholder", { TELEGRAM_BOT_TOKEN: "changeme", TELEGRAM_CHAT_ID: "42", TELEGRAM_ALLOWED_USERS: "1" }, ["TELEGRAM_BOT_TOKEN"]],
    ["telegram without allow-list", { TELEGRAM_BOT_TOKEN: "123456:AAbbccddeeffgghhiijjkkll", TELEGRAM_CHAT_ID: "42" }, ["TELEGRAM_ALLOWED_USERS"]],
    ["telegram ok", { TELEGRAM_BOT_TOKEN: "123456:AAbbccddeeffgghhiijjkkll", TELEGRAM_CHAT_ID: "42", TELEGRAM_ALLOWED_USERS: "7, 8" }, []],
    ["telegram webhook without secret", { TELEGRAM_BOT_TOKEN: "123456:AAbbccddeeffgghhiijjkkll", TELEGRAM_CHAT_ID: "42", TELEGRAM_ALLOWED_USERS: "7", TELEGRAM_MODE: "webhook", TELEGRAM_WEBHOOK_URL: "https://bot.steward.lan/telegram/webhook" }, ["TELEGRAM_WEBHOOK_SECRET"]],
    ["webhook URL empty", { WEBHOOK_URL: "" }, ["WEBHOOK_URL"]],
    ["webhook URL <placeholder>", { WEBHOOK_URL: "<your webhook>" }, ["WEBHOOK_URL"]],
    ["webhook ok", { WEBHOOK_URL: "http://127.0.0.1:9000/hook" }, []],
  ])("%s", (_n, env, want) => {
    expect(problems(env)).toEqual(want);
  });

  it("names the setting, never the value", () => {
    try {
      loadConfig({ ...base, API_TOKEN: "changeme", NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "steward-ops" });
      throw new Error("should have refused");
    } catch (err) {
      expect((err as Error).message).toContain("API_TOKEN");
      expect((err as Error).message).not.toContain("changeme");
    }
  });
});
