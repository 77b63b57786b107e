import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { generateSigningKey, PRIVATE_PREFIX } from "@steward/contracts/command-keys";
import { defaultLogDir, loadConfig } from "../src/config.js";

const pair = generateSigningKey();
const base = { NODE_NAME: "web1", FLEET_SPEC: "/etc/steward/fleet.yaml", FLEET_KEY: "a-real-fleet-key-0123456789", NODE_COMMAND_PUBLIC_KEY: pair.publicKey };

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies the defaults", () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({
      nodeName: "web1",
      natsUrl: "nats://127.0.0.1:4222",
      heartbeatMs: 5000,
      hostProbeMs: 15_000,
      specPollMs: 2000,
      maxInFlight: 256,
      backlogMax: 10_000,
      metricsPort: 9464,
      metricsHost: "127.0.0.1",
      stopGraceMs: 5000,
      logDir: defaultLogDir("web1"),
      commandSkewMs: 30_000,
      commandMaxLifetimeMs: 300_000,
    });
    expect(c.commandKeys.map((k) => k.text)).toEqual([pair.publicKey]);
  });

  it("trusts two public keys during a rotation, and takes its skew allowance and lifetime bound", () => {
    const next = generateSigningKey();
    const c = loadConfig({ ...base, NODE_COMMAND_PUBLIC_KEY: `${pair.publicKey},${next.publicKey}`, COMMAND_SKEW_MS: "5000", COMMAND_MAX_LIFETIME_MS: "60000" });
    expect(c.commandKeys.map((k) => k.id)).toEqual([pair.id, next.id]);
    expect(c).toMatchObject({ commandSkewMs: 5000, commandMaxLifetimeMs: 60_000 });
  });

  it.each([
    ["missing", undefined],
    ["empty", ""],
    ["a placeholder", "changeme"],
    ["the old shared FLEET_KEY", "a-real-fleet-key-0123456789"],
    ["a truncated key", pair.publicKey.slice(0, -3)],
    ["the executor's PRIVATE key", pair.privateKey],
  ])("refuses a NODE_COMMAND_PUBLIC_KEY that is %s, naming the setting and not the value", (_what, key) => {
    const err = configError({ ...base, NODE_COMMAND_PUBLIC_KEY: key });
    expect([...new Set(err.problems.map((p) => p.setting))]).toEqual(["NODE_COMMAND_PUBLIC_KEY"]);
    if (key && key.length > 3) expect(err.message).not.toContain(key);
    if (key === pair.privateKey) expect(err.message).toMatch(/PRIVATE key/);
    if (key === pair.privateKey) expect(err.message).not.toContain(key.slice(PRIVATE_PREFIX.length));
  });

  it("reads overrides, including METRICS_PORT=0 for a free port", () => {
    const c = loadConfig({ ...base, METRICS_PORT: "0", BACKLOG_MAX: "5", MAX_IN_FLIGHT: "3", LOG_DIR: "/var/log/steward", HEARTBEAT_MS: "250" });
    expect(c).toMatchObject({ metricsPort: 0, backlogMax: 5, maxInFlight: 3, logDir: "/var/log/steward", heartbeatMs: 250 });
  });

  it.each([
    ["empty", ""],
    ["placeholder changeme", "changeme"],
    ["placeholder GENERATE_ON_HOST", "GENERATE_ON_HOST"],
    ["template", "${FLEET_KEY}"],
    ["too short", "short-key"],
  ])("refuses a FLEET_KEY that is %s, naming the setting and not the value", (_what, key) => {
    const err = configError({ ...base, FLEET_KEY: key });
    expect([...new Set(err.problems.map((p) => p.setting))]).toEqual(["FLEET_KEY"]);
    expect(err.message).toContain("FLEET_KEY");
    if (key.length > 3) expect(err.message).not.toContain(key);
  });

  it("refuses a missing FLEET_KEY", () => {
    const { FLEET_KEY: _k, ...rest } = base;
    expect(configError(rest).problems.map((p) => p.setting)).toContain("FLEET_KEY");
  });

  it.each([
    ["NODE_NAME", { NODE_NAME: "web.1" }],
    ["NODE_NAME", { NODE_NAME: "web 1" }],
    ["NODE_NAME", { NODE_NAME: undefined }],
    ["FLEET_SPEC", { FLEET_SPEC: undefined }],
    ["HEARTBEAT_MS", { HEARTBEAT_MS: "0" }],
    ["BACKLOG_MAX", { BACKLOG_MAX: "-1" }],
    ["METRICS_PORT", { METRICS_PORT: "70000" }],
  ])("refuses a bad %s", (setting, over) => {
    expect(configError({ ...base, ...over }).problems.map((p) => p.setting)).toContain(setting);
  });
});
