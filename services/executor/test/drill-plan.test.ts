import { describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { Snapshot } from "@steward/contracts/world-state";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { drillTargets, drillTimings, drillVerdict, drillWindowMs, followUpApproval, refuseDrill, sightDrill, type DrillTimings, type DrillWindow, type RefusalInputs } from "../src/drill-plan.js";
import { commandMark } from "../src/verify.js";
import { service, snapshot } from "./helpers.js";

function spec(text: string): FleetSpec {
  const r = parseFleetSpec(text, "fleet.yaml");
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.spec;
}

const fleet = spec(`
version: 1
nodes:
  n1:
    services:
      db: {kind: process, command: [db], recovery_objective: 30s}
      web: {kind: process, command: [web], depends_on: [db], recovery_objective: 10s}
      batch: {kind: process, command: [batch]}
      shop: {kind: compose, files: [shop.yml], recovery_objective: 1m}
  n2:
    services:
      web: {kind: process, command: [web], recovery_objective: 10s}
`);

const now = new Date();
const world = (over: Partial<Record<"db" | "web", Parameters<typeof service>[1]>> = {}, mutate?: (s: Snapshot) => void): Snapshot => {
  const s = snapshot({ n1: [service("db", over.db), service("web", over.web), service("batch"), service("shop")], n2: [service("web")] });
  mutate?.(s);
  return s;
};
const inputs = (over: Partial<RefusalInputs> = {}): RefusalInputs => ({ spec: fleet, world: world(), open: [], now, worldMaxAgeMs: 30_000, ...over });

describe("drillTargets", () => {
  it.each<[string, Parameters<typeof drillTargets>[1], string[] | RegExp]>([
    ["one service on every node that declares it", { service: "web" }, ["n1/web", "n2/web"]],
    ["one service on one node", { service: "web", node: "n2" }, ["n2/web"]],
    ["every service", { all: true }, ["n1/batch", "n1/db", "n1/shop", "n1/web", "n2/web"]],
    ["every service of one node", { all: true, node: "n2" }, ["n2/web"]],
    ["an undeclared service", { service: "nope" }, /no service 'nope' is declared in the fleet spec/],
    ["a service not on that node", { service: "db", node: "n2" }, /no service 'db' is declared on node 'n2'/],
    ["an unknown node", { service: "web", node: "n9" }, /no node 'n9'/],
  ])("%s", (_name, req, want) => {
    const r = drillTargets(fleet, req);
    if (Array.isArray(want)) expect(r.ok && r.targets.map((t) => `${t.node}/${t.service}`)).toEqual(want);
    else expect(!r.ok && r.message).toMatch(want);
  });
});

describe("refuseDrill", () => {
  const openRestart: Pick<Action, "id" | "node" | "service" | "kind" | "state"> = { id: "0badc0de-0000-4000-8000-000000000000", node: "n1", service: "web", kind: "restart", state: "pending" };
  it.each<[string, { node: string; service: string }, Partial<RefusalInputs>, RegExp | null]>([
    ["a healthy service with healthy dependencies", { node: "n1", service: "web" }, {}, null],
    ["not declared", { node: "n2", service: "db" }, {}, /not declared in the fleet spec/],
    ["a compose stack", { node: "n1", service: "shop" }, {}, /compose service: drills kill process services only/],
    ["no recovery objective", { node: "n1", service: "batch" }, {}, /no recovery_objective/],
    ["another open action on it", { node: "n1", service: "web" }, { open: [openRestart] }, /already has an open restart action \(0badc0de, pending\)/],
    ["its own drill action is not another one", { node: "n1", service: "web" }, { open: [{ ...openRestart, kind: "drill", state: "running" }], self: openRestart.id }, null],
    ["an open action elsewhere does not matter", { node: "n2", service: "web" }, { open: [openRestart] }, null],
    ["no world", { node: "n1", service: "web" }, { world: undefined }, /world cannot be read/],
    ["an old world", { node: "n1", service: "web" }, { now: new Date(now.getTime() + 60_000) }, /last written 60 s ago/],
    ["a node that never reported", { node: "n2", service: "web" }, { world: snapshot({ n1: [service("db"), service("web")] }) }, /node n2 never reported/],
    ["a stale node", { node: "n1", service: "web" }, { world: world({}, (s) => void (s.world.nodes["n1"]!.status = "stale")) }, /node n1 is stale .*a drill needs a node that reports/],
    ["a service already down", { node: "n1", service: "web" }, { world: world({ web: { state: "exited", health: "none" } }) }, /n1\/web is exited\/none, not running and healthy/],
    ["a service running but unhealthy", { node: "n1", service: "web" }, { world: world({ web: { health: "unhealthy" } }) }, /running\/unhealthy/],
    ["a dependency down", { node: "n1", service: "web" }, { world: world({ db: { state: "exited" } }) }, /depends on db, which is exited\/healthy: a drill never touches a service whose dependencies are unhealthy/],
    ["a dependency unhealthy", { node: "n1", service: "web" }, { world: world({ db: { health: "unhealthy" } }) }, /depends on db, which is running\/unhealthy/],
    ["a dependency not reported", { node: "n1", service: "web" }, { world: snapshot({ n1: [service("web")] }) }, /depends on db, which is not reported/],
  ])("%s", (_name, t, over, want) => {
    const why = refuseDrill(t, inputs(over));
    if (want === null) expect(why).toBeNull();
    else expect(why).toMatch(want);
  });
});

describe("sightDrill", () => {
  const t = { node: "n1", service: "web" };
  const sent = new Date(now.getTime() - 1000);
  const at = (seq: number, s: Snapshot): Snapshot => ({ ...s, world: { ...s.world, last_seq: seq } });
  it.each<[string, string, Snapshot, number | undefined]>([
    ["the world has not folded the node's report after the kill", "before", at(4, world()), 5],
    ["folded, still the old process running", "before", at(5, world()), 5],
    ["folded, exited", "down", at(5, world({ web: { state: "exited", signal: "SIGKILL" } })), 5],
    ["a new start, not yet healthy", "down", at(9, world({ web: { starts: 2, health: "starting" } })), 5],
    ["a new start, healthy", "recovered", at(9, world({ web: { starts: 2 } })), 5],
    ["a new start with no checks at all", "recovered", at(9, world({ web: { starts: 2, health: "none", checks: {} } })), 5],
    ["a stale node shows nothing", "before", at(9, world({ web: { starts: 2 } }, (s) => void (s.world.nodes["n1"]!.status = "stale"))), 5],
  ])("%s → %s", (_name, phase, snap, seq) => {
    expect(sightDrill(snap, t, commandMark(sent, seq), 1).phase).toBe(phase);
  });
});

describe("followUpApproval: the drill approves the restart it caused, and nothing else", () => {
  const startedAt = new Date("2030-01-01T00:00:10.000Z");
  const w: DrillWindow = { drillId: "d1", node: "n1", service: "web", startedAt, endsAt: new Date("2030-01-01T00:01:10.000Z"), approveRestart: true };
  const during = new Date("2030-01-01T00:00:12.000Z");
  type Candidate = Pick<Action, "id" | "node" | "service" | "kind" | "state" | "created_at">;
  const restart: Candidate = { id: "r1", node: "n1", service: "web", kind: "restart", state: "pending", created_at: "2030-01-01T00:00:11.000Z" };
  it.each<[string, Partial<DrillWindow>, Partial<Candidate>, Date, RegExp | null]>([
    ["the restart of the drilled service, proposed after the kill", {}, {}, during, null],
    ["without --approve", { approveRestart: false }, {}, during, /without --approve/],
    ["a start of the same service", {}, { kind: "start" }, during, /only a restart, not a start/],
    ["a stop of the same service", {}, { kind: "stop" }, during, /not a stop/],
    ["a deploy", {}, { kind: "deploy" }, during, /not a deploy/],
    ["the same service on another node", {}, { node: "n2" }, during, /n2\/web is not the drilled service n1\/web/],
    ["another service on the node", {}, { service: "db" }, during, /n1\/db is not the drilled service/],
    ["already approved", {}, { state: "approved" }, during, /approved, not pending/],
    ["proposed before the kill", {}, { created_at: "2030-01-01T00:00:09.999Z" }, during, /before the drill's kill/],
    ["proposed after the window", {}, { created_at: "2030-01-01T00:01:10.001Z" }, new Date("2030-01-01T00:01:10.000Z"), /after the drill's window/],
    ["the window is over", {}, {}, new Date("2030-01-01T00:01:10.001Z"), /window is over/],
  ])("%s", (_name, wOver, aOver, at, want) => {
    const d = followUpApproval({ ...w, ...wOver }, { ...restart, ...aOver }, at);
    if (want === null) expect(d).toEqual({ approve: true });
    else expect(!d.approve && d.why).toMatch(want);
  });
});

describe("timings and verdict", () => {
  it("times each step after the kill, and never before it", () => {
    expect(drillTimings({ sentAt: 1000, detectedAt: 1250, proposedAt: 1700, approvedAt: 1800.4, recoveredAt: 4000 })).toEqual({ detected_ms: 250, proposed_ms: 700, approved_ms: 800, recovered_ms: 3000 });
    expect(drillTimings({ sentAt: 1000, proposedAt: 990 })).toEqual({ detected_ms: null, proposed_ms: 0, approved_ms: null, recovered_ms: null });
  });

  it("a window long enough to see a late recovery", () => {
    expect(drillWindowMs(30_000)).toBe(90_000);
    expect(drillWindowMs(120_000)).toBe(240_000);
  });

  const p = { objective_ms: 10_000, window_ms: 70_000 };
  const t = (recovered: number | null): DrillTimings => ({ detected_ms: 200, proposed_ms: 700, approved_ms: 900, recovered_ms: recovered });
  it.each<[string, string, DrillTimings, RegExp]>([
    ["healthy within the objective", "passed", t(3200), /^healthy again after 3\.2 s, within the objective 10 s; down in the world after 0\.2 s, restart pending after 0\.7 s, approved after 0\.9 s$/],
    ["healthy exactly at the objective", "passed", t(10_000), /within the objective/],
    ["healthy after the objective", "missed", t(10_001), /^healthy again after 10 s, over the objective 10 s/],
    ["never healthy in the window", "missed", t(null), /^not healthy again within the 70 s drill window \(objective 10 s\); .*; last seen: n1\/web is exited/],
    ["never even seen down", "missed", { detected_ms: null, proposed_ms: null, approved_ms: null, recovered_ms: null }, /never seen down in the world, no restart proposed/],
  ])("%s → %s", (_name, verdict, timings, reason) => {
    const v = drillVerdict(p, timings, "n1/web is exited/none");
    expect(v.verdict).toBe(verdict);
    expect(v.reason).toMatch(reason);
  });
});
