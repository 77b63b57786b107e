import { describe, expect, it } from "vitest";
import type { Drift, Hold } from "@steward/contracts/drift";
import { reconcile } from "../src/reconcile.js";
import { applyHolds, holdCovers } from "../src/holds.js";
import { node, snapshot, spec, svc } from "./fixtures.js";

const NOW = new Date("2025-01-01T00:00:05.000Z");
const OPTS = { snapshotMaxAgeMs: 30_000 };

let ids = 0;
const hold = (over: Partial<Hold> = {}): Hold => ({
  action_id: `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
  node: "n1",
  service: "api",
  kind: "restart",
  nodes: ["n1"],
  cause: "down",
  target: null,
  held_by: "alice",
  channel: "cli",
  reason: "investigating first",
  created_at: "2025-01-01T00:00:01.000Z",
  until: null,
  ended_at: null,
  end_reason: null,
  ...over,
});

const down = svc("api", { state: "exited", exit_code: 1 });
const unhealthy = svc("api", { state: "running", health: "unhealthy", detail: "http: 500" });
const stale = node("n1", [svc("api", { state: "unknown", health: "unknown" })], { status: "stale" });

describe("reconcile with operators' holds: a rejected proposal is not proposed again until its drift changes or clears, or its time runs out", () => {
  const cases: { name: string; world: Parameters<typeof snapshot>[0]; holds: Hold[]; held: string[]; propose: string[]; end: string[] }[] = [
    { name: "no hold: the restart is proposed", world: [node("n1", [down])], holds: [], held: [], propose: ["restart n1/api"], end: [] },
    { name: "held: the same drift proposes nothing and reads held", world: [node("n1", [down])], holds: [hold()], held: ["down:n1/api"], propose: [], end: [] },
    { name: "held for a time still running: held", world: [node("n1", [down])], holds: [hold({ until: "2025-01-01T02:00:00.000Z" })], held: ["down:n1/api"], propose: [], end: [] },
    {
      name: "its time ran out: the hold ends and the restart is proposed again",
      world: [node("n1", [down])],
      holds: [hold({ until: "2025-01-01T00:00:05.000Z" })],
      held: [],
      propose: ["restart n1/api"],
      end: ["hold ended: its time ran out (2025-01-01T00:00:05.000Z)"],
    },
    {
      name: "the drift changed (down → unhealthy): the hold ends and the new drift is proposed",
      world: [node("n1", [unhealthy])],
      holds: [hold()],
      held: [],
      propose: ["restart n1/api"],
      end: ["hold ended: the drift changed (now unhealthy:n1/api)"],
    },
    {
      name: "the drift changed even within a timed hold: the hold ends",
      world: [node("n1", [unhealthy])],
      holds: [hold({ until: "2025-01-01T02:00:00.000Z" })],
      held: [],
      propose: ["restart n1/api"],
      end: ["hold ended: the drift changed (now unhealthy:n1/api)"],
    },
    { name: "the drift cleared: the hold ends, nothing to propose", world: [node("n1", [svc("api")])], holds: [hold()], held: [], propose: [], end: ["hold ended: the drift cleared"] },
    { name: "the node is stale (unknown is not cleared): the hold stays", world: [stale], holds: [hold()], held: [], propose: [], end: [] },
    { name: "a hold on another service holds nothing here", world: [node("n1", [down])], holds: [hold({ service: "web", cause: "down" })], held: [], propose: ["restart n1/api"], end: ["hold ended: the drift cleared"] },
    { name: "a hold on another node holds nothing here (and ends: n2 has no drift)", world: [node("n1", [down])], holds: [hold({ node: "n2", nodes: ["n2"] })], held: [], propose: ["restart n1/api"], end: ["hold ended: the drift cleared"] },
    { name: "a hold of another kind (a start) does not hold a restart", world: [node("n1", [down])], holds: [hold({ kind: "start", cause: "missing" })], held: [], propose: ["restart n1/api"], end: ["hold ended: the drift cleared"] },
    { name: "a time-only hold (no cause) holds whatever proposes its kind", world: [node("n1", [unhealthy])], holds: [hold({ cause: null, until: "2025-01-01T02:00:00.000Z" })], held: ["unhealthy:n1/api"], propose: [], end: [] },
    { name: "a time-only hold outlives a cleared drift", world: [node("n1", [svc("api")])], holds: [hold({ cause: null, until: "2025-01-01T02:00:00.000Z" })], held: [], propose: [], end: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = reconcile({ spec: spec({ n1: ["api"] }), world: snapshot(c.world, NOW.toISOString()), actions: { open: [], failedDeploys: [], holds: c.holds }, now: NOW, opts: OPTS });
      expect(r.report.filter((d) => d.held).map((d) => d.key)).toEqual(c.held);
      expect(r.propose.map((p) => `${p.proposes} ${p.node}/${p.service}`)).toEqual(c.propose);
      expect(r.endHolds.map((e) => e.detail)).toEqual(c.end);
      expect(r.endHolds.every((e) => c.holds.some((h) => h.action_id === e.actionId))).toBe(true);
    });
  }

  it("a held drift says by whom, why, through which channel and until when", () => {
    const h = hold({ until: "2025-01-01T02:00:00.000Z" });
    const r = reconcile({ spec: spec({ n1: ["api"] }), world: snapshot([node("n1", [down])], NOW.toISOString()), actions: { open: [], failedDeploys: [], holds: [h] }, now: NOW, opts: OPTS });
    expect(r.report[0]?.held).toEqual({ action_id: h.action_id, cause: "down", held_by: "alice", channel: "cli", reason: "investigating first", created_at: h.created_at, until: h.until });
  });

  it("an old snapshot (everything unknown) keeps every hold", () => {
    const r = reconcile({ spec: spec({ n1: ["api"] }), world: snapshot([node("n1", [svc("api")])], "2024-12-31T00:00:00.000Z"), actions: { open: [], failedDeploys: [], holds: [hold()] }, now: NOW, opts: OPTS });
    expect(r.endHolds).toEqual([]);
  });
});

describe("holdCovers: a deploy hold is by revision across its rollout's nodes", () => {
  const cd = (n: string, target: string): Drift => ({ key: `config_drift:${n}/shop`, kind: "config_drift", node: n, service: "shop", severity: "action", message: "m", since: null, proposes: "deploy", target });
  const h = hold({ service: "shop", kind: "deploy", nodes: ["n1", "n2"], cause: "config_drift", target: "sha256:aaa" });
  const cases: [string, Drift, boolean][] = [
    ["same revision on the first node", cd("n1", "sha256:aaa"), true],
    ["same revision on another node of the rollout", cd("n2", "sha256:aaa"), true],
    ["same revision on a node outside the rollout", cd("n3", "sha256:aaa"), false],
    ["a new revision", cd("n1", "sha256:bbb"), false],
  ];
  for (const [name, d, want] of cases) it(name, () => expect(holdCovers(h, d)).toBe(want));

  it("a new revision ends the hold as a changed drift", () => {
    expect(applyHolds([cd("n1", "sha256:bbb")], [h], NOW).end.map((e) => e.detail)).toEqual(["hold ended: the drift changed (now config_drift:n1/shop towards sha256:bbb)"]);
  });
});
