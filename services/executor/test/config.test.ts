import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { generateSigningKey, PRIVATE_PREFIX } from "@steward/contracts/command-keys";
import { loadConfig } from "../src/config.js";

const pair = generateSigningKey();
const good = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/steward", API_TOKEN: "a-real-api-token-123456", EXECUTOR_SIGNING_KEY: pair.privateKey };

function problem(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("applies defaults", () => {
    const c = loadConfig(good);
    expect(c).toMatchObject({ httpPort: 7070, httpHost: "127.0.0.1", pollMs: 1000, leaseMs: 15_000, commandTimeoutMs: 10_000, commandTtlMs: 30_000, verifyTimeoutMs: 60_000, worker: true });
    expect(c.executorId).toMatch(/^executor-/);
  });

  it.each([
    ["API_TOKEN", undefined],
    ["API_TOKEN", ""],
    ["API_TOKEN", "changeme"],
    ["API_TOKEN", "GENERATE_ON_HOST"],
    ["API_TOKEN", "${API_TOKEN}"],
    ["API_TOKEN", "short-token"],
    ["EXECUTOR_SIGNING_KEY", undefined],
    ["EXECUTOR_SIGNING_KEY", ""],
    ["EXECUTOR_SIGNING_KEY", "<secret>"],
    ["EXECUTOR_SIGNING_KEY", "changeme"],
    ["EXECUTOR_SIGNING_KEY", "xxxxxxxxxxxxxxxxxxxx"],
    ["EXECUTOR_SIGNING_KEY", `${PRIVATE_PREFIX}${"A".repeat(43)}`],
    ["EXECUTOR_SIGNING_KEY", pair.privateKey.slice(0, -2)],
    ["EXECUTOR_SIGNING_KEY", pair.publicKey],
    ["EXECUTOR_SIGNING_KEY", "a-real-fleet-key-123456"],
    ["DATABASE_URL", undefined],
    ["DATABASE_URL", "mysql://nope"],
  ])("refuses %s=%j, naming the setting and not the value", (setting, value) => {
    const e = problem({ ...good, [setting]: value });
    expect(e.problems.map((p) => p.setting)).toContain(setting);
    expect(e.message).toContain(setting);
    if (value) expect(e.message).not.toContain(value);
  });

  it("takes the private command key; its public half and id are what may be shown", () => {
    const c = loadConfig(good);
    expect(c.signingKey.publicKey.text).toBe(pair.publicKey);
    expect(c.signingKey.publicKey.id).toBe(pair.id);
    expect(JSON.stringify(c)).not.toContain(pair.privateKey.slice(PRIVATE_PREFIX.length));
  });

  it("HTTP_PORT=0 means a free port; EXECUTOR_WORKER=false serves the API only", () => {
    expect(loadConfig({ ...good, HTTP_PORT: "0", EXECUTOR_WORKER: "false" })).toMatchObject({ httpPort: 0, worker: false });
    expect(problem({ ...good, HTTP_PORT: "70000" }).problems[0]?.setting).toBe("HTTP_PORT");
  });
});
