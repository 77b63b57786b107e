import { describe, expect, it } from "vitest";
import { parseFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import type { NodeState } from "@steward/contracts/world-state";
import { computeDrift } from "@steward/fleet/diff";
import { node, snapshot, svc, T0 } from "./fixtures.js";

function fleet(): FleetSpec {
  const res = parseFleetSpec(
    JSON.stringify({
      version: 1,
      nodes: {
        web1: { services: { shop: { kind: "compose", files: ["stacks/shop/compose.yaml"] }, api: { kind: "process", command: ["api"] } } },
        web2: { services: { shop: { kind: "compose", files: ["stacks/shop/compose.yaml"] } } },
      },
    }),
  );
  if (!res.ok) throw new Error(JSON.stringify(res.problems));
  return res.spec;
}

const H1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const H2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

function drifts(nodes: NodeState[], now = T0) {
  return computeDrift(fleet(), snapshot(nodes), new Date(now), { snapshotMaxAgeMs: 60_000 });
}

const web2ok = node("web2", [svc("shop", { config_hash: H1, desired_config_hash: H1 })]);

describe("compose drift", () => {
  it("a stack declared and never deployed (no containers: starts 0) is missing and proposes deploy, not start", () => {
    const d = drifts([node("web1", [svc("api"), svc("shop", { state: "stopped", health: "none", starts: 0, desired_config_hash: H1 })]), web2ok]);
    expect(d).toEqual([expect.objectContaining({ key: "missing:web1/shop", kind: "missing", proposes: "deploy", severity: "action", message: "stack shop is declared on web1 but was never deployed there" })]);
  });

  it("a stack the agent has not reported at all is missing and proposes deploy", () => {
    const d = drifts([node("web1", [svc("api")]), web2ok]);
    expect(d.map((x) => [x.key, x.proposes])).toEqual([["missing:web1/shop", "deploy"]]);
  });

  it("a process service that was never started still proposes start", () => {
    const d = drifts([node("web1", [svc("api", { state: "stopped", starts: 0 }), svc("shop", { config_hash: H1, desired_config_hash: H1 })]), web2ok]);
    expect(d.map((x) => [x.key, x.proposes])).toEqual([["missing:web1/api", "start"]]);
  });

  it("a running stack whose config hash differs from the spec's is config_drift proposing deploy", () => {
    const d = drifts([node("web1", [svc("api"), svc("shop", { config_hash: H1, desired_config_hash: H2 })]), web2ok]);
    expect(d).toEqual([
      expect.objectContaining({ key: "config_drift:web1/shop", kind: "config_drift", proposes: "deploy", severity: "action", message: "stack shop on web1 runs config 111111111111; the spec asks for 222222222222" }),
    ]);
  });

  it("containers without Steward's hash label are config drift too", () => {
    const d = drifts([node("web1", [svc("api"), svc("shop", { desired_config_hash: H2 })]), web2ok]);
    expect(d.map((x) => [x.key, x.proposes])).toEqual([["config_drift:web1/shop", "deploy"]]);
    expect(d[0]?.message).toMatch(/not deployed by Steward/);
  });

  it.each([
    ["equal hashes", { config_hash: H1, desired_config_hash: H1 }],
    ["no desired hash (the agent could not read its compose files): unknown is not drift", { config_hash: H1 }],
    ["a deploy in progress (starting)", { state: "starting" as const, config_hash: H1, desired_config_hash: H2 }],
  ])("no config drift with %s", (_what, over) => {
    expect(drifts([node("web1", [svc("api"), svc("shop", over)]), web2ok])).toEqual([]);
  });

  it("a stale node's stack is unknown, never config drift or missing", () => {
    const stale = node("web1", [svc("api", { state: "unknown", health: "unknown" }), svc("shop", { state: "unknown", health: "unknown", config_hash: H1, desired_config_hash: H2 })], { status: "stale" });
    const d = drifts([stale, web2ok]);
    expect(d.map((x) => x.kind)).toEqual(["unknown", "unknown"]);
    expect(d.every((x) => x.proposes === null)).toBe(true);
  });

  it("a stack the agent cannot see (engine not answering) on a live node is unknown, never down", () => {
    const d = drifts([node("web1", [svc("api"), svc("shop", { state: "unknown", health: "none", config_hash: H1, desired_config_hash: H2, detail: "cannot read containers: connect ENOENT" })]), web2ok]);
    expect(d.map((x) => [x.kind, x.service, x.proposes])).toEqual([["unknown", "shop", null]]);
  });

  it("a snapshot too old to trust yields unknown only", () => {
    const d = computeDrift(fleet(), snapshot([node("web1", [svc("shop", { config_hash: H1, desired_config_hash: H2 })]), web2ok]), new Date(Date.parse(T0) + 3_600_000), { snapshotMaxAgeMs: 60_000 });
    expect(new Set(d.map((x) => x.kind))).toEqual(new Set(["unknown"]));
  });
});
