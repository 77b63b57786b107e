import { describe, expect, it } from "vitest";
import { flapFindings, type EpisodeHistory } from "../src/flapping.js";
import { groupOf, noticePayload, planGroups, visibleMembers, type GroupMember, type GroupTiming, type OpenGroup } from "../src/grouping.js";
import { loadConfig } from "../src/config.js";
import { ConfigError } from "@steward/platform/config";
import { consoleLine } from "../src/sinks/console.js";
import { parseAlertsRequest } from "../src/alerts-responder.js";

const T0 = Date.parse("2026-01-01T12:00:00Z");
const timing: GroupTiming = { waitMs: 5_000, intervalMs: 30_000, repeatMs: 3_600_000 };

let nextId = 1;
function m(fingerprint: string, rule: string, labels: Record<string, string>, over: Partial<GroupMember> = {}): GroupMember {
  return { id: nextId++, fingerprint, rule, severity: "warning", title: fingerprint, message: `${fingerprint} message`, labels, firstSeen: T0 - 1000, ...over };
}
const down = (node: string, svc: string) => m(`drift:down:${node}/${svc}`, "new_drift", { node, service: svc, kind: "down" });
const unknown = (node: string, svc: string) => m(`drift:unknown:${node}/${svc}`, "new_drift", { node, service: svc, kind: "unknown" });
const stale = (node: string) => m(`node_stale:${node}`, "node_stale", { node }, { title: `Node stale: ${node}`, severity: "critical" });
const group = (key: string, over: Partial<OpenGroup> = {}): OpenGroup => ({ id: 100, key, firstSeen: T0 - 1000, notified: [], lastNotified: null, ...over });
const told = (xs: GroupMember[]) => xs.map((x) => ({ id: x.id, fingerprint: x.fingerprint, rule: x.rule, severity: x.severity, title: x.title, labels: x.labels, first_seen: new Date(x.firstSeen).toISOString() }));

describe("groupOf", () => {
  it.each<[string, GroupMember, string, number]>([
    ["a node's drift: the node's group", down("n1", "web"), "node:n1", 5_000],
    ["every stale node: one outage", stale("n7"), "nodes_stale", 5_000],
    ["dead-man checks: the control plane", m("deadman:executor", "deadman:executor", { component: "executor" }), "control_plane", 5_000],
    ["an approval request: its own group, at once", m("action_pending:a1", "action_pending", { node: "n1", action_id: "a1" }), "approval:a1", 0],
    ["no node: its own group", m("cost_cap:global:80", "cost_cap", { scope: "global" }), "llm_spend", 5_000],
    ["a failed action: an incident of its own", m("action_failed:n1/web/restart", "action_failed", { node: "n1", kind: "restart" }), "action_failed:n1/web/restart", 5_000],
    ["a recurring failure: news of its own", m("incident_recurs:7", "incident_recurs", { node: "n1", service: "web" }), "incident_recurs:7", 5_000],
  ])("%s", (_n, a, key, wait) => {
    const g = groupOf(a, timing);
    expect(g.key).toBe(key);
    expect(g.timing.waitMs).toBe(wait);
  });
});

describe("visibleMembers", () => {
  it("hides a flapping alert's own changes and a stale node's unknown services, not its other alerts", () => {
    const flapped = down("n1", "web");
    const flap = m(`flapping:${flapped.fingerprint}`, "flapping", { node: "n1" });
    const failed = m("action_failed:n2/db/restart", "action_failed", { node: "n2", kind: "restart" });
    const vis = visibleMembers([flapped, flap, unknown("n2", "db"), stale("n2"), failed, unknown("n3", "x")], new Set(["n2"]));
    expect(vis.map((v) => v.fingerprint).sort()).toEqual([flap.fingerprint, failed.fingerprint, "drift:unknown:n3/x", "node_stale:n2"].sort());
  });
});

describe("planGroups", () => {
  const web = down("n1", "web");
  const api = down("n1", "api");
  it.each<[string, GroupMember[], OpenGroup[], number, { open?: string[]; notify?: [string, string, number][]; silent?: string[] }]>([
    ["a new alert opens its group", [web], [], T0, { open: ["node:n1"] }],
    ["group_wait not over: nothing yet", [web, api], [group("node:n1")], T0 + 3_000, {}],
    ["group_wait over: one notice with both", [web, api], [group("node:n1")], T0 + 4_000, { notify: [["node:n1", "firing", 2]] }],
    ["all resolved before anyone was told: closed silently", [], [group("node:n1")], T0 + 10_000, { silent: ["node:n1"] }],
    ["unchanged within the repeat interval: nothing", [web], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 600_000, {}],
    ["unchanged past the repeat interval: repeated", [web], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 3_600_000, { notify: [["node:n1", "renotify", 1]] }],
    ["a rule that never repeats (0) keeps the group quiet", [{ ...web, renotifyMs: 0 }], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 9_000_000, {}],
    ["changed within group_interval: held back", [web, api], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 29_000, {}],
    ["changed after group_interval: an update", [web, api], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 30_000, { notify: [["node:n1", "firing", 2]] }],
    ["all resolved: resolved after group_interval", [], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 30_000, { notify: [["node:n1", "resolved", 1]] }],
    ["all resolved within group_interval: held back", [], [group("node:n1", { notified: told([web]), lastNotified: T0 })], T0 + 10_000, {}],
    ["an approval's outcome goes out at once", [], [group("approval:a1", { notified: told([m("action_pending:a1", "action_pending", { action_id: "a1" })]), lastNotified: T0 })], T0 + 1, { notify: [["approval:a1", "resolved", 1]] }],
  ])("%s", (_n, visible, open, now, want) => {
    const p = planGroups(visible, open, now, timing);
    expect(p.open).toEqual(want.open ?? []);
    expect(p.notify.map((n) => [n.group.key, n.kind, n.members.length])).toEqual(want.notify ?? []);
    expect(p.closeSilently.map((g) => g.key)).toEqual(want.silent ?? []);
  });

  it("200 nodes going quiet at once: one notice that names the count, their 4,000 unknown services hidden", () => {
    const nodes = Array.from({ length: 200 }, (_, i) => `n${String(i).padStart(3, "0")}`);
    const firing = nodes.flatMap((n) => [stale(n), ...Array.from({ length: 20 }, (_, s) => unknown(n, `svc${s}`))]);
    const vis = visibleMembers(firing, new Set(nodes));
    const opened = planGroups(vis, [], T0, timing);
    expect(opened.open).toEqual(["nodes_stale"]);
    const p = planGroups(vis, [group("nodes_stale", { firstSeen: T0 })], T0 + 5_000, timing);
    expect(p.notify).toHaveLength(1);
    const payload = noticePayload(p.notify[0]!, new Date(T0 + 5_000));
    expect(payload.title).toBe("200 nodes stale: n000, n001, n002, n003, n004, …");
    expect(payload.severity).toBe("critical");
    expect(payload.group).toEqual({ key: "nodes_stale", count: 200 });
    expect(payload.message.split("\n")).toHaveLength(16);
    expect(payload.message).toContain("… and 185 more");
  });

  it("a notice about one alert reads as that alert, with its action; an update says what resolved", () => {
    const pending = m("action_pending:a1", "action_pending", { node: "n1", action_id: "a1" }, { title: "Approve restart n1/web?", action: { id: "a1", node: "n1", service: "web", kind: "restart", reason: "down", diagnosis: null, expires_at: "2026-01-02T00:00:00Z", params: {} } });
    const p = noticePayload({ group: group("approval:a1"), kind: "firing", members: [pending], resolvedSince: [] }, new Date(T0));
    expect(p).toMatchObject({ title: "Approve restart n1/web?", fingerprint: "action_pending:a1", alert_id: pending.id, action: { id: "a1" } });
    const upd = noticePayload({ group: group("node:n1"), kind: "firing", members: [web], resolvedSince: told([api]) }, new Date(T0));
    expect(upd.title).toBe(web.title);
    expect(upd.message).toContain(`Resolved since the last notice: ${api.title}`);
    const two = noticePayload({ group: group("node:n1"), kind: "firing", members: [web, api], resolvedSince: [] }, new Date(T0));
    expect(two.title).toBe(`2 alerts on n1: ${api.title}; ${web.title}`);
    const resolved = noticePayload({ group: group("approval:a1"), kind: "resolved", members: told([pending]), resolvedSince: told([pending]) }, new Date(T0), new Map([["action_pending:a1", "restart n1/web was approved by op via cli"]]));
    expect(resolved).toMatchObject({ kind: "resolved", title: "Approve restart n1/web?", note: "restart n1/web was approved by op via cli" });
    expect(consoleLine(resolved)).toBe("steward alert: RESOLVED [warning] Approve restart n1/web? — restart n1/web was approved by op via cli");
    expect(consoleLine(p)).toContain("approve: steward approve a1");
  });
});

describe("flapping", () => {
  const h = (fp: string, starts: number, lastChange: number): EpisodeHistory => ({ fingerprint: fp, starts, lastChange, latest: { rule: "new_drift", severity: "warning", title: `Drift down: n1/web`, labels: { node: "n1", service: "web", kind: "down" } } });
  const s = { count: 3, windowMs: 60_000 };
  it.each<[string, EpisodeHistory[], string[], string[]]>([
    ["fired twice: not flapping", [h("drift:down:n1/web", 2, T0)], [], []],
    ["fired three times within the window: flapping", [h("drift:down:n1/web", 3, T0)], [], ["flapping:drift:down:n1/web"]],
    ["already flapping, changed within the window: still flapping", [h("drift:down:n1/web", 1, T0 - 59_000)], ["flapping:drift:down:n1/web"], ["flapping:drift:down:n1/web"]],
    ["already flapping, stable for the window: resolves", [h("drift:down:n1/web", 1, T0 - 60_000)], ["flapping:drift:down:n1/web"], []],
    ["a flapping alert never flaps itself", [{ ...h("flapping:drift:down:n1/web", 5, T0), latest: { ...h("x", 0, 0).latest, rule: "flapping" } }], [], []],
  ])("%s", (_n, history, now, want) => {
    const f = flapFindings(history, new Set(now), T0, s);
    expect(f.map((x) => x.fingerprint)).toEqual(want);
    for (const x of f) {
      expect(x.title).toBe("Flapping: Drift down: n1/web");
      expect(x.labels["node"]).toBe("n1");
    }
  });
});

describe("grouping and flapping settings", () => {
  const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN: "a-real-api-token-0123456789", ALERT_CONSOLE: "true" };
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
    ["defaults (the console sink alone is enough)", {}, []],
    ["group_wait 0 is allowed", { ALERT_GROUP_WAIT_MS: "0" }, []],
    ["group_wait negative", { ALERT_GROUP_WAIT_MS: "-1" }, ["ALERT_GROUP_WAIT_MS"]],
    ["group_interval not a number", { ALERT_GROUP_INTERVAL_MS: "5m" }, ["ALERT_GROUP_INTERVAL_MS"]],
    ["repeat shorter than group_interval", { ALERT_GROUP_INTERVAL_MS: "60000", ALERT_REPEAT_INTERVAL_MS: "1000" }, ["ALERT_REPEAT_INTERVAL_MS"]],
    ["repeat 0 = never", { ALERT_REPEAT_INTERVAL_MS: "0" }, []],
    ["flap count 1", { ALERT_FLAP_COUNT: "1" }, ["ALERT_FLAP_COUNT"]],
    ["flap window 0", { ALERT_FLAP_WINDOW_MS: "0" }, ["ALERT_FLAP_WINDOW_MS"]],
    ["grace not a number", { ALERT_NEW_GRACE_MS: "soon" }, ["ALERT_NEW_GRACE_MS"]],
    ["console off and no sink", { ALERT_CONSOLE: "false" }, ["NTFY_URL"]],
  ])("%s", (_n, env, want) => {
    expect(problems(env)).toEqual(want);
  });
});

describe("alerts request (the console asks the alerter)", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  it.each<[string, string, { limit: number; resolvedWithinMs: number } | RegExp]>([
    ["empty: the defaults", "", { limit: 100, resolvedWithinMs: 86_400_000 }],
    ["a limit", '{"limit": 5}', { limit: 5, resolvedWithinMs: 86_400_000 }],
    ["not JSON", "{", /not JSON/],
    ["limit too large", '{"limit": 5000}', /limit: /],
    ["an unknown field", '{"sql": "DROP TABLE alerts"}', /Unrecognized key/i],
  ])("%s", (_n, body, want) => {
    const r = parseAlertsRequest(enc(body));
    if (want instanceof RegExp) expect(r.ok ? "accepted" : r.message).toMatch(want);
    else expect(r).toEqual({ ok: true, value: want });
  });
});
