import { describe, expect, it } from "vitest";
import type { FleetSpec, SecretStore } from "@steward/fleet/fleet-spec";
import type { NodeState } from "@steward/contracts/world-state";
import { computeSecretDrift, judgeStores } from "@steward/fleet/secret-drift";
import { computeDrift, driftKey } from "@steward/fleet/diff";
import { T0, node, snapshot, spec } from "./fixtures.js";

type Reading = NonNullable<NodeState["secrets"]>[string][string];

const FP_A = "a".repeat(32);
const FP_B = "b".repeat(32);
const ok = (fingerprint: string): Reading => ({ status: "ok", fingerprint, at: T0 });
const bad = (status: Exclude<Reading["status"], "ok">, detail?: string): Reading => ({ status, fingerprint: status === "placeholder" ? "c".repeat(32) : null, at: T0, ...(detail ? { detail } : {}) });

/** Stores of `db_password`: an env file and a file on web1, a running service's env on web1, a file on web2. */
const STORES: SecretStore[] = [
  { type: "env_file", node: "web1", path: "stacks/app/.env", key: "DB_PASSWORD" },
  { type: "file", node: "web1", path: "/run/secrets/db_password" },
  { type: "service_env", node: "web1", service: "api", key: "DB_PASSWORD" },
  { type: "file", node: "web2", path: "/run/secrets/db_password" },
];
const ENV = "env_file:stacks/app/.env#DB_PASSWORD";
const FILE = "file:/run/secrets/db_password";
const SVC = "service_env:api#DB_PASSWORD";

function specWith(stores: SecretStore[] = STORES): FleetSpec {
  return { ...spec({ web1: [], web2: [] }), secrets: { db_password: { stores } } };
}

/** A world where web1 and web2 reported the given readings (by store id) for db_password. */
function world(web1: Record<string, Reading>, web2: Record<string, Reading>, over: { web2Stale?: boolean; web2Absent?: boolean } = {}) {
  const nodes = [node("web1", [], { secrets: { db_password: web1 } })];
  if (!over.web2Absent) nodes.push(node("web2", [], { status: over.web2Stale ? "stale" : "up", secrets: { db_password: web2 } }));
  return snapshot(nodes).world;
}

const allA = () => world({ [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: ok(FP_A) }, { [FILE]: ok(FP_A) });

describe("secret drift (pure)", () => {
  it("every store agreeing on a real value is no drift", () => {
    expect(computeSecretDrift(specWith(), allA(), { snapshotTooOld: false })).toEqual([]);
  });

  it("a secret with no stores reported anywhere yet is unknown, not missing", () => {
    const [d] = computeSecretDrift(specWith(), snapshot([]).world, { snapshotTooOld: false });
    expect(d?.message).toContain("unknown in");
    expect(d?.message).not.toContain("missing");
  });

  const cases: { name: string; web1: Record<string, Reading>; web2: Record<string, Reading>; over?: { web2Stale?: boolean; web2Absent?: boolean }; expect: RegExp[]; not?: RegExp[] }[] = [
    {
      name: "one store disagrees: names who agrees with whom",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: ok(FP_A) },
      web2: { [FILE]: ok(FP_B) },
      expect: [/stores disagree \(2 different values\): \{web1\/env_file:stacks\/app\/\.env#DB_PASSWORD, web1\/file:\/run\/secrets\/db_password, web1\/service_env:api#DB_PASSWORD\} vs \{web2\/file:\/run\/secrets\/db_password\}/],
      not: [/empty|placeholder|missing|unknown/],
    },
    {
      name: "an empty store",
      web1: { [ENV]: ok(FP_A), [FILE]: bad("empty"), [SVC]: ok(FP_A) },
      web2: { [FILE]: ok(FP_A) },
      expect: [/empty in web1\/file:\/run\/secrets\/db_password/, /agreeing: web1\/env_file/],
      not: [/disagree/],
    },
    {
      name: "a placeholder",
      web1: { [ENV]: bad("placeholder"), [FILE]: ok(FP_A), [SVC]: ok(FP_A) },
      web2: { [FILE]: ok(FP_A) },
      expect: [/placeholder value in web1\/env_file:stacks\/app\/\.env#DB_PASSWORD/],
    },
    {
      name: "a missing key, with the agent's reason",
      web1: { [ENV]: bad("missing", "DB_PASSWORD is not set in stacks/app/.env"), [FILE]: ok(FP_A), [SVC]: ok(FP_A) },
      web2: { [FILE]: ok(FP_A) },
      expect: [/missing from web1\/env_file:stacks\/app\/\.env#DB_PASSWORD \(DB_PASSWORD is not set in stacks\/app\/\.env\)/],
    },
    {
      name: "an unreadable store",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: bad("unreadable", "service 'api' is not running") },
      web2: { [FILE]: ok(FP_A) },
      expect: [/unreadable in web1\/service_env:api#DB_PASSWORD \(service 'api' is not running\)/],
    },
    {
      name: "a stale node's stores are unknown, never missing",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: ok(FP_A) },
      web2: { [FILE]: bad("missing") },
      over: { web2Stale: true },
      expect: [/unknown in web2\/file:\/run\/secrets\/db_password \(node web2 is stale\)/],
      not: [/missing/],
    },
    {
      name: "a node that never reported",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: ok(FP_A) },
      web2: {},
      over: { web2Absent: true },
      expect: [/unknown in web2\/file:\/run\/secrets\/db_password \(node web2 never reported\)/],
    },
    {
      name: "a store the agent has not reported yet",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_A) },
      web2: { [FILE]: ok(FP_A) },
      expect: [/unknown in web1\/service_env:api#DB_PASSWORD \(not reported yet by web1\)/],
    },
    {
      name: "three values and an empty store at once",
      web1: { [ENV]: ok(FP_A), [FILE]: ok(FP_B), [SVC]: bad("empty") },
      web2: { [FILE]: ok("d".repeat(32)) },
      expect: [/stores disagree \(3 different values\)/, /empty in web1\/service_env:api#DB_PASSWORD/],
      not: [/agreeing/],
    },
  ];

  it.each(cases)("$name", (c) => {
    const drifts = computeSecretDrift(specWith(), world(c.web1, c.web2, c.over), { snapshotTooOld: false });
    expect(drifts).toHaveLength(1);
    const d = drifts[0]!;
    expect(d).toMatchObject({ kind: "secret_drift", severity: "alert", proposes: null, node: "*", service: "db_password", key: driftKey("secret_drift", "*", "db_password") });
    for (const re of c.expect) expect(d.message).toMatch(re);
    for (const re of c.not ?? []) expect(d.message).not.toMatch(re);
    // Fingerprints are not the operator's business (and not values either): never in the message.
    for (const fp of [FP_A, FP_B, "c".repeat(32), "d".repeat(32)]) expect(d.message).not.toContain(fp);
  });

  it("a snapshot too old makes every store unknown", () => {
    const v = judgeStores(specWith(), "db_password", allA(), { snapshotTooOld: true });
    expect(v.map((x) => x.kind)).toEqual(["unknown", "unknown", "unknown", "unknown"]);
  });

  it("stores reported but no longer declared are ignored", () => {
    const w = world({ [ENV]: ok(FP_A), "file:/old/path": ok(FP_B) }, {});
    expect(computeSecretDrift(specWith([STORES[0]!]), w, { snapshotTooOld: false })).toEqual([]);
  });

  it("a single store holding a real value is fine", () => {
    expect(computeSecretDrift(specWith([STORES[3]!]), allA(), { snapshotTooOld: false })).toEqual([]);
  });

  it("computeDrift includes secret drift, which never proposes an action, even when the snapshot is old", () => {
    const s = specWith();
    const snap = snapshot([...Object.values(world({ [ENV]: ok(FP_A), [FILE]: ok(FP_A), [SVC]: ok(FP_A) }, { [FILE]: ok(FP_B) }).nodes)]);
    const fresh = computeDrift(s, snap, new Date(Date.parse(T0) + 1000), { snapshotMaxAgeMs: 30_000 });
    expect(fresh.filter((d) => d.kind === "secret_drift")).toHaveLength(1);
    const old = computeDrift(s, snap, new Date(Date.parse(T0) + 60_000), { snapshotMaxAgeMs: 30_000 });
    const sd = old.filter((d) => d.kind === "secret_drift");
    expect(sd).toHaveLength(1);
    expect(sd[0]?.message).toContain("snapshot is too old");
    expect(sd[0]?.message).not.toContain("disagree");
    expect([...fresh, ...old].every((d) => d.kind !== "secret_drift" || d.proposes === null)).toBe(true);
  });
});
