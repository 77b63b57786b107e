import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { loadSupervisorConfig } from "../src/config.js";

const base = { DATABASE_URL: "postgres://steward:hunter2-very-secret@db:5432/steward", FLEET_SPEC: "/etc/steward/fleet.yaml" };

describe("loadSupervisorConfig", () => {
  it("applies defaults", () => {
    const c = loadSupervisorConfig(base);
    expect(c).toMatchObject({
      natsUrl: "nats://127.0.0.1:4222",
      fleetSpecPath: "/etc/steward/fleet.yaml",
      snapshotPath: undefined,
      recheckMs: 5000,
      snapshotMaxAgeMs: 30_000,
      actionTtlMs: 3_600_000,
      leaderRetryMs: 1000,
      metricsPort: 9466,
      metricsHost: "127.0.0.1",
    });
    expect(c.supervisorId).toMatch(/^supervisor-/);
  });

  it("reads every setting", () => {
    const c = loadSupervisorConfig({ ...base, NATS_URL: "nats://a:4222", SNAPSHOT_PATH: "/var/lib/steward/world.json", SUPERVISOR_ID: "sup-1", RECHECK_MS: "250", SNAPSHOT_MAX_AGE_MS: "9000", ACTION_TTL_MS: "60000", LEADER_RETRY_MS: "300", METRICS_PORT: "0", METRICS_HOST: "0.0.0.0" });
    expect(c).toMatchObject({ natsUrl: "nats://a:4222", snapshotPath: "/var/lib/steward/world.json", supervisorId: "sup-1", recheckMs: 250, snapshotMaxAgeMs: 9000, actionTtlMs: 60_000, leaderRetryMs: 300, metricsPort: 0, metricsHost: "0.0.0.0" });
  });

  it.each([
    { name: "DATABASE_URL missing", env: { FLEET_SPEC: "f.yaml" }, setting: "DATABASE_URL" },
    { name: "FLEET_SPEC missing", env: { DATABASE_URL: base.DATABASE_URL }, setting: "FLEET_SPEC" },
    { name: "RECHECK_MS not a number", env: { ...base, RECHECK_MS: "soon" }, setting: "RECHECK_MS" },
    { name: "RECHECK_MS zero", env: { ...base, RECHECK_MS: "0" }, setting: "RECHECK_MS" },
    { name: "METRICS_PORT out of range", env: { ...base, METRICS_PORT: "70000" }, setting: "METRICS_PORT" },
  ])("$name → error naming the setting", ({ env, setting }) => {
    let err: unknown;
    try {
      loadSupervisorConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.setting)).toContain(setting);
    expect((err as Error).message).not.toContain("hunter2");
  });
});
