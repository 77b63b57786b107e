import { describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { Drift } from "@steward/contracts/drift";
import type { NodeState } from "@steward/contracts/world-state";
import { computeDrift } from "@steward/fleet/diff";
import { clearedActions, holdFailedRevisions, planProposals, reconcile, type Reconciled } from "../src/reconcile.js";
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
      const r = reconcile({ spec: spec({ n1: ["api"] }), world: snapshot(c.world, NOW.toISOString()), actions: { open: c.open, failedDeploys: [] }, now: NOW, opts: OPTS });
      expect(r.report.map((d) => d.key)).toEqual(c.report);
      expect(r.propose.map((p) => `${p.proposes} ${p.node}/${p.service}`)).toEqual(c.propose);
      expect(r.expire.map((e) => c.open.find((a) => a.id === e.id)).map((a) => `${a?.node}/${a?.service}`)).toEqual(c.expire);
      expect(r.extend).toEqual([]);
    });
  }

  it("does not touch its inputs", () => {
    const open = [action("n1", "api", "restart", "pending")];
    const frozen = JSON.stringify(open);
    reconcile({ spec: spec({ n1: ["api"] }), world: snapshot([node("n1", [svc("api")])], NOW.toISOString()), actions: { open, failedDeploys: [] }, now: NOW, opts: OPTS });
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

describe("reconcile after a change: only the changed nodes are diffed", () => {
  const SERVICES = ["api", "db"];
  const SPEC = spec({ n1: SERVICES, n2: SERVICES, n3: SERVICES, n4: SERVICES });
  const up = (n: string, over: Partial<NodeState> = {}) => node(n, SERVICES.map((s) => svc(s)), over);
  const BASE = [up("n1"), node("n2", [svc("api", { state: "exited" }), svc("db")]), up("n3"), up("n4")];
  const none = { open: [], failedDeploys: [] };
  type Step = { name: string; world: NodeState[]; changed: string[]; now?: Date; spec?: typeof SPEC; full: boolean; diffed: number; written: string[] };
  const cases: Step[] = [
    { name: "nothing changed: nothing diffed, nothing written", world: BASE, changed: [], full: false, diffed: 0, written: [] },
    { name: "a heartbeat that changes no finding: one node diffed, nothing written", world: [up("n1", { last_heartbeat: "2025-01-01T00:00:04.000Z" }), ...BASE.slice(1)], changed: ["n1"], full: false, diffed: 1, written: [] },
    { name: "a service goes down: that node diffed and written", world: [BASE[0]!, BASE[1]!, node("n3", [svc("api"), svc("db", { state: "failed" })]), BASE[3]!], changed: ["n3"], full: false, diffed: 1, written: ["n3"] },
    { name: "a service comes back: its node's findings are removed", world: [BASE[0]!, up("n2"), BASE[2]!, BASE[3]!], changed: ["n2"], full: false, diffed: 1, written: ["n2"] },
    { name: "a node leaves the world: never reported (unknown)", world: [BASE[0]!, BASE[1]!, BASE[2]!], changed: ["n4"], full: false, diffed: 1, written: ["n4"] },
    { name: "an undeclared node appears with a running service: unmanaged", world: [...BASE, node("x9", [svc("web")])], changed: ["x9"], full: false, diffed: 1, written: ["x9"] },
    { name: "a new spec: every node diffed (n4 now runs db undeclared)", world: BASE, changed: [], spec: spec({ n1: SERVICES, n2: SERVICES, n3: SERVICES, n4: ["api"] }), full: true, diffed: 4, written: ["n4"] },
    { name: "the snapshot grows too old: every node diffed, all unknown", world: BASE, changed: [], now: new Date("2025-01-01T00:01:00.000Z"), full: true, diffed: 4, written: ["n1", "n2", "n3", "n4"] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const first = reconcile({ spec: SPEC, world: snapshot(BASE), actions: none, now: NOW, opts: OPTS });
      expect(first).toMatchObject({ full: true, diffed: 4, changed: ["n2"] });
      const s = c.spec ?? SPEC;
      const now = c.now ?? NOW;
      const world = snapshot(c.world);
      const r = reconcile({ spec: s, world, actions: none, now, opts: OPTS, since: { state: first.state, changed: new Set(c.changed) } });
      expect({ full: r.full, diffed: r.diffed, written: [...r.changed].sort() }).toEqual({ full: c.full, diffed: c.diffed, written: c.written });
      // Whatever was diffed, the result is the full diff's.
      expect(keys(r)).toEqual(computeDrift(s, world, now, OPTS).map((d) => d.key));
      // Nodes not written keep the very same findings (nothing re-serialised).
      for (const [n, ds] of r.state.report) if (!r.changed.includes(n)) expect(ds).toBe(first.state.report.get(n));
    });
  }

  const keys = (r: Reconciled) => [...r.report].map((d) => d.key).sort();

  it("a long run of random changes ends where a full diff does", () => {
    const names = Array.from({ length: 30 }, (_, i) => `n${String(i).padStart(2, "0")}`);
    const sp = spec(Object.fromEntries(names.map((n) => [n, SERVICES])));
    const states: NodeState["services"][string]["state"][] = ["running", "exited", "failed", "starting", "stopped"];
    let seed = 7;
    const rand = (k: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
    const world: Record<string, NodeState> = Object.fromEntries(names.map((n) => [n, up(n)]));
    let prev = reconcile({ spec: sp, world: snapshot(Object.values(world)), actions: none, now: NOW, opts: OPTS });
    for (let step = 0; step < 200; step++) {
      const changed = new Set<string>();
      for (let k = rand(3); k >= 0; k--) {
        const n = names[rand(names.length)] as string;
        changed.add(n);
        if (rand(10) === 0) delete world[n];
        else world[n] = node(n, SERVICES.map((s) => svc(s, { state: states[rand(states.length)], health: rand(4) === 0 ? "unhealthy" : "healthy" })), { status: rand(8) === 0 ? "stale" : "up" });
      }
      const snap = snapshot(Object.values(world));
      prev = reconcile({ spec: sp, world: snap, actions: none, now: NOW, opts: OPTS, since: { state: prev.state, changed } });
      expect(prev.diffed).toBe(changed.size);
      expect(keys(prev)).toEqual(computeDrift(sp, snap, NOW, OPTS).map((d) => d.key));
      expect(prev.report).toEqual(computeDrift(sp, snap, NOW, OPTS).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.key < b.key ? -1 : 1)));
    }
  });

  it("holds apply to unchanged nodes too: a rollout failing meanwhile holds its drift without the node changing", () => {
    const sp = spec({ n1: ["shop"] });
    const w = snapshot([node("n1", [svc("shop", { config_hash: "sha256:old", desired_config_hash: "sha256:new" })])]);
    const composeSpec = { ...sp, nodes: { n1: { ...sp.nodes["n1"]!, services: { shop: { ...sp.nodes["n1"]!.services["shop"]!, kind: "compose" as const } } } } } as unknown as typeof sp;
    const first = reconcile({ spec: composeSpec, world: w, actions: none, now: NOW, opts: OPTS });
    expect(first.propose.map((p) => p.key)).toEqual(["config_drift:n1/shop"]);
    const failed = action("n1", "shop", "deploy", "failed", { params: { target_config_hash: "sha256:new" } });
    const r = reconcile({ spec: composeSpec, world: w, actions: { open: [], failedDeploys: [failed] }, now: NOW, opts: OPTS, since: { state: first.state, changed: new Set() } });
    expect(r).toMatchObject({ full: false, diffed: 0, changed: ["n1"], propose: [] });
    expect(r.report[0]).toMatchObject({ severity: "alert", proposes: null });
  });
});
