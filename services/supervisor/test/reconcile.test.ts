import { describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { Drift } from "@steward/contracts/drift";
import { clearedActions, holdFailedRevisions, planProposals, reconcile } from "../src/reconcile.js";
import { node, snapshot, spec, svc } from "./fixtures.js";

const NOW = new Date("2025-01-01T00:00:05.000Z");
const OPTS = { snapshotMaxAgeMs: 30_000 };

const drift = (kind: Drift["kind"], n: string, service: string, proposes: Drift["proposes"], over: Partial<Drift> = {}): Drift => ({
  key: `${kind}:${n}/${service}`,
  kind,
  node: n,
  service,
  severity: proposes ? "action" : "alert",
  message: `${service} ${kind} on ${n}`,
  since: null,
  proposes,
  ...over,
});

let ids = 0;
const action = (n: string, service: string, kind: Action["kind"], state: Action["state"], over: Partial<Action> = {}): Action => ({
  id: `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
  node: n,
  service,
  kind,
  state,
  reason: "r",
  drift_key: `down:${n}/${service}`,
  proposed_by: "sup",
  diagnosis: null,
  created_at: NOW.toISOString(),
  updated_at: NOW.toISOString(),
  expires_at: NOW.toISOString(),
  result: null,
  traceparent: null,
  params: {},
  task_id: null,
  ...over,
});

describe("reconcile (spec, world, actions) → report, propose, expire", () => {
  const cases: { name: string; world: Parameters<typeof snapshot>[0]; open: Action[]; report: string[]; propose: string[]; expire: string[] }[] = [
    { name: "all running: nothing to do", world: [node("n1", [svc("api")])], open: [], report: [], propose: [], expire: [] },
    { name: "a stopped service proposes a restart", world: [node("n1", [svc("api", { state: "exited" })])], open: [], report: ["down:n1/api"], propose: ["restart n1/api"], expire: [] },
    { name: "declared, never started: a start", world: [node("n1", [])], open: [], report: ["missing:n1/api"], propose: ["start n1/api"], expire: [] },
    { name: "an open restart is not proposed twice", world: [node("n1", [svc("api", { state: "exited" })])], open: [action("n1", "api", "restart", "approved")], report: ["down:n1/api"], propose: [], expire: [] },
    { name: "the service came back: its pending restart expires", world: [node("n1", [svc("api")])], open: [action("n1", "api", "restart", "pending")], report: [], propose: [], expire: ["n1/api"] },
    { name: "an approved restart is not expired", world: [node("n1", [svc("api")])], open: [action("n1", "api", "restart", "approved")], report: [], propose: [], expire: [] },
    {
      name: "a stale node is unknown: nothing proposed, nothing expired",
      world: [node("n1", [svc("api", { state: "unknown", health: "unknown" })], { status: "stale" })],
      open: [action("n1", "api", "restart", "pending")],
      report: ["unknown:n1/api"],
      propose: [],
      expire: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = reconcile(spec({ n1: ["api"] }), snapshot(c.world, NOW.toISOString()), { open: c.open, failedDeploys: [] }, NOW, OPTS);
      expect(r.report.map((d) => d.key)).toEqual(c.report);
      expect(r.propose.map((p) => `${p.proposes} ${p.node}/${p.service}`)).toEqual(c.propose);
      expect(r.expire.map((e) => c.open.find((a) => a.id === e.id)).map((a) => `${a?.node}/${a?.service}`)).toEqual(c.expire);
      expect(r.extend).toEqual([]);
    });
  }

  it("does not touch its inputs", () => {
    const open = [action("n1", "api", "restart", "pending")];
    const frozen = JSON.stringify(open);
    reconcile(spec({ n1: ["api"] }), snapshot([node("n1", [svc("api")])], NOW.toISOString()), { open, failedDeploys: [] }, NOW, OPTS);
    expect(JSON.stringify(open)).toBe(frozen);
  });
});

describe("planProposals", () => {
  const deploy = (n: string) => drift("config_drift", n, "shop", "deploy");
  const cases: { name: string; drifts: Drift[]; open: Action[]; propose: [string, unknown][]; extend: [string, string[]][] }[] = [
    { name: "one rollout for a service drifted on several nodes", drifts: [deploy("n1"), deploy("n2")], open: [], propose: [["deploy n1/shop", { nodes: ["n1", "n2"] }]], extend: [] },
    { name: "a drift without a proposal proposes nothing", drifts: [drift("unmanaged", "n1", "x", null)], open: [], propose: [], extend: [] },
    {
      name: "a pending rollout takes in a node that drifts later, in name order",
      drifts: [deploy("n3"), deploy("n0")],
      open: [action("n1", "shop", "deploy", "pending", { id: "r-1", params: { nodes: ["n1", "n2"] } })],
      propose: [],
      extend: [["r-1", ["n0", "n1", "n2", "n3"]]],
    },
    {
      name: "an approved rollout does not: the new node gets its own",
      drifts: [deploy("n1"), deploy("n4")],
      open: [action("n1", "shop", "deploy", "approved", { params: { nodes: ["n1", "n2"] } })],
      propose: [["deploy n4/shop", undefined]],
      extend: [],
    },
    { name: "other kinds are one action each", drifts: [drift("down", "n1", "a", "restart"), drift("repo_drift", "n1", "@repo", "pull")], open: [], propose: [["restart n1/a", undefined], ["pull n1/@repo", undefined]], extend: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = planProposals(c.drifts, c.open);
      expect(r.propose.map((p) => [`${p.proposes} ${p.node}/${p.service}`, p.params])).toEqual(c.propose);
      expect(r.extend.map((x) => [x.id, x.nodes])).toEqual(c.extend);
    });
  }
});

describe("clearedActions", () => {
  const pending = (over: Partial<Action> = {}) => action("n1", "api", "restart", "pending", over);
  const cases: { name: string; drifts: Drift[]; open: Action; cleared: boolean }[] = [
    { name: "drift gone: cleared", drifts: [], open: pending(), cleared: true },
    { name: "still drifting: kept", drifts: [drift("down", "n1", "api", "restart")], open: pending(), cleared: false },
    { name: "unknown service: kept", drifts: [drift("unknown", "n1", "api", null)], open: pending(), cleared: false },
    { name: "anything unknown on the node keeps a node-wide pull", drifts: [drift("unknown", "n1", "api", null)], open: pending({ service: "@repo", kind: "pull" }), cleared: false },
    { name: "an operator's stop is never cleared by drift", drifts: [], open: pending({ kind: "stop" }), cleared: false },
    { name: "a planner's diagnosed action expires by TTL only", drifts: [], open: pending({ task_id: "t-1" }), cleared: false },
    { name: "an action without a drift key is not the supervisor's", drifts: [], open: pending({ drift_key: null }), cleared: false },
    { name: "approved is never cleared", drifts: [], open: action("n1", "api", "restart", "approved"), cleared: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(clearedActions(c.drifts, [c.open]).map((e) => e.id)).toEqual(c.cleared ? [c.open.id] : []);
    });
  }
});

describe("holdFailedRevisions", () => {
  const d = (target: string) => drift("config_drift", "n1", "shop", "deploy", { target });
  const failed = action("n1", "shop", "deploy", "failed", { params: { target_config_hash: "sha256:bad" } });
  const cases: { name: string; drift: Drift; failed: Action[]; held: boolean }[] = [
    { name: "the failed revision is held as an alert", drift: d("sha256:bad"), failed: [failed], held: true },
    { name: "another revision is proposed", drift: d("sha256:good"), failed: [failed], held: false },
    { name: "another service's failure does not hold it", drift: { ...d("sha256:bad"), service: "web" }, failed: [failed], held: false },
    { name: "nothing failed: proposed", drift: d("sha256:bad"), failed: [], held: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const [out] = holdFailedRevisions([c.drift], c.failed);
      expect(out).toMatchObject(c.held ? { severity: "alert", proposes: null } : { severity: "action", proposes: "deploy" });
      if (c.held) expect(out?.message).toContain(`action ${failed.id.slice(0, 8)}`);
    });
  }
});
