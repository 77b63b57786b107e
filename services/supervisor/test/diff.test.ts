import { describe, expect, it } from "vitest";
import { Drift } from "@steward/contracts/drift";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import type { Snapshot } from "@steward/contracts/world-state";
import { computeDrift } from "@steward/fleet/diff";
import { T0, TP, node, snapshot, spec, specYaml, svc } from "./fixtures.js";

const NOW = new Date(Date.parse(T0) + 1000);
const OPTS = { snapshotMaxAgeMs: 30_000 };

type Expect = Pick<Drift, "key" | "kind" | "severity" | "proposes" | "since"> & { traceparent?: string };

const cases: { name: string; spec: FleetSpec; snap: Snapshot; now?: Date; want: Expect[] }[] = [
  { name: "all running and healthy: no drift", spec: spec({ n1: ["api"] }), snap: snapshot([node("n1", [svc("api")])]), want: [] },
  { name: "starting is not drift", spec: spec({ n1: ["api"] }), snap: snapshot([node("n1", [svc("api", { state: "starting", health: "starting" })])]), want: [] },
  {
    name: "service absent on a live node: missing, proposes start",
    spec: spec({ n1: ["api", "db"] }),
    snap: snapshot([node("n1", [svc("api")])]),
    want: [{ key: "missing:n1/db", kind: "missing", severity: "action", proposes: "start", since: null }],
  },
  {
    name: "stopped and never started: missing",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { state: "stopped", health: "none", starts: 0, traceparent: TP })])]),
    want: [{ key: "missing:n1/api", kind: "missing", severity: "action", proposes: "start", since: T0, traceparent: TP }],
  },
  {
    name: "exited and never started: missing",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { state: "exited", health: "none", starts: 0 })])]),
    want: [{ key: "missing:n1/api", kind: "missing", severity: "action", proposes: "start", since: T0 }],
  },
  ...(["exited", "failed", "stopped"] as const).map((state) => ({
    name: `${state} after a start: down, proposes restart`,
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { state, health: "none", starts: 2, exit_code: 137, since: "2025-01-01T00:00:00.500Z", traceparent: TP })])]),
    want: [{ key: "down:n1/api", kind: "down" as const, severity: "action" as const, proposes: "restart" as const, since: "2025-01-01T00:00:00.500Z", traceparent: TP }],
  })),
  {
    name: "running but unhealthy: unhealthy, proposes restart",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { health: "unhealthy", traceparent: TP })])]),
    want: [{ key: "unhealthy:n1/api", kind: "unhealthy", severity: "action", proposes: "restart", since: T0, traceparent: TP }],
  },
  {
    name: "service state unknown: unknown alert, no action",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { state: "unknown", health: "unknown" })])]),
    want: [{ key: "unknown:n1/api", kind: "unknown", severity: "alert", proposes: null, since: T0 }],
  },
  {
    name: "stale node: every declared service unknown, even absent or exited ones",
    spec: spec({ n1: ["api", "db", "web"] }),
    snap: snapshot([node("n1", [svc("api", { state: "unknown", health: "unknown" }), svc("db", { state: "exited", starts: 1 })], { status: "stale", last_heartbeat: "2024-12-31T23:59:00.000Z" })]),
    want: ["api", "db", "web"].map((s) => ({ key: `unknown:n1/${s}`, kind: "unknown" as const, severity: "alert" as const, proposes: null, since: "2024-12-31T23:59:00.000Z" })),
  },
  {
    name: "node never reported: unknown, not missing",
    spec: spec({ n1: ["api"], n2: ["cache"] }),
    snap: snapshot([node("n1", [svc("api")])]),
    want: [{ key: "unknown:n2/cache", kind: "unknown", severity: "alert", proposes: null, since: null }],
  },
  {
    name: "snapshot older than the limit: everything declared unknown, even if it looks down, no unmanaged",
    spec: spec({ n1: ["api", "db"] }),
    snap: snapshot([node("n1", [svc("api", { state: "exited", starts: 3 }), svc("extra")])]),
    now: new Date(Date.parse(T0) + 30_001),
    want: ["api", "db"].map((s) => ({ key: `unknown:n1/${s}`, kind: "unknown" as const, severity: "alert" as const, proposes: null, since: T0 })),
  },
  {
    name: "snapshot exactly at the limit is still trusted",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api", { state: "exited", starts: 3 })])]),
    now: new Date(Date.parse(T0) + 30_000),
    want: [{ key: "down:n1/api", kind: "down", severity: "action", proposes: "restart", since: T0 }],
  },
  {
    name: "running but not declared: unmanaged report; a stopped undeclared one is ignored",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api"), svc("extra", { declared: false, traceparent: TP }), svc("old", { state: "exited", declared: false })])]),
    want: [{ key: "unmanaged:n1/extra", kind: "unmanaged", severity: "report", proposes: null, since: T0, traceparent: TP }],
  },
  {
    name: "a whole undeclared node is unmanaged",
    spec: spec({ n1: ["api"] }),
    snap: snapshot([node("n1", [svc("api")]), node("n9", [svc("x")])]),
    want: [{ key: "unmanaged:n9/x", kind: "unmanaged", severity: "report", proposes: null, since: T0 }],
  },
  {
    name: "mixed fleet, sorted by key",
    spec: spec({ a: ["s1", "s2"], b: ["s3"] }),
    snap: snapshot([node("a", [svc("s1", { health: "unhealthy" })]), node("b", [svc("s3", { state: "failed", starts: 1 }), svc("zz")])]),
    want: [
      { key: "down:b/s3", kind: "down", severity: "action", proposes: "restart", since: T0 },
      { key: "missing:a/s2", kind: "missing", severity: "action", proposes: "start", since: null },
      { key: "unhealthy:a/s1", kind: "unhealthy", severity: "action", proposes: "restart", since: T0 },
      { key: "unmanaged:b/zz", kind: "unmanaged", severity: "report", proposes: null, since: T0 },
    ],
  },
];

describe("computeDrift", () => {
  it.each(cases)("$name", ({ spec: s, snap, now, want }) => {
    const got = computeDrift(s, snap, now ?? NOW, OPTS);
    for (const d of got) expect(Drift.safeParse(d).success).toBe(true);
    expect(got.map(({ key, kind, severity, proposes, since, traceparent }) => ({ key, kind, severity, proposes, since, ...(traceparent ? { traceparent } : {}) }))).toEqual(want);
  });

  it("never proposes an action for unknown drift", () => {
    for (const c of cases) {
      for (const d of computeDrift(c.spec, c.snap, c.now ?? NOW, OPTS)) {
        if (d.kind === "unknown" || d.kind === "unmanaged") expect(d.proposes).toBeNull();
      }
    }
  });

  it("an unparseable written_at counts as too old", () => {
    const snap = snapshot([node("n1", [svc("api", { state: "exited", starts: 1 })])], "garbage");
    expect(computeDrift(spec({ n1: ["api"] }), snap, NOW, OPTS).map((d) => d.kind)).toEqual(["unknown"]);
  });

  it("fixture YAML parses to the same spec the table uses", () => {
    const res = parseFleetSpec(specYaml({ n1: ["api", "db"] }));
    expect(res.ok && res.spec).toEqual(spec({ n1: ["api", "db"] }));
  });

  it("diffs 1,000 nodes x 20 services: exactly the exited ones drift (speed is the benchmark's job: bench/fleet-scale.js)", () => {
    const names = Array.from({ length: 20 }, (_, i) => `s${i}`);
    const nodes: Record<string, string[]> = {};
    for (let i = 0; i < 1000; i++) nodes[`n${i}`] = names;
    const exited = (i: number, j: number) => (i + j) % 97 === 0;
    const snap = snapshot(Object.keys(nodes).map((n, i) => node(n, names.map((s, j) => svc(s, exited(i, j) ? { state: "exited", starts: 1 } : {})))));
    const drifts = computeDrift(spec(nodes), snap, NOW, OPTS);
    const expected: string[] = [];
    for (let i = 0; i < 1000; i++) for (let j = 0; j < 20; j++) if (exited(i, j)) expected.push(`n${i}/s${j}`);
    expect(drifts.map((d) => `${d.node}/${d.service}`).sort()).toEqual(expected.sort());
  });
});
