import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, isPlaceholderSecret, parseEnv, redactUrl, secretString } from "@steward/platform/config";

describe("secrets in configuration", () => {
  it.each(["", "  ", "changeme", "CHANGEME", "GENERATE_ON_HOST", "TODO", "<token>", "${TOKEN}", "xxxxxxxx"])("%j is a placeholder", (v) => {
    expect(isPlaceholderSecret(v)).toBe(true);
  });
  it("a real value is not", () => expect(isPlaceholderSecret("s3cr3t-4f9a-long-enough")).toBe(false));

  const schema = z.object({ API_TOKEN: secretString(16) });
  it("refuses a placeholder, naming the setting and never the value", () => {
    const err = (() => {
      try {
        parseEnv("executor", schema, { API_TOKEN: "changeme" });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems[0]?.setting).toBe("API_TOKEN");
    expect((err as Error).message).not.toContain("changeme");
  });
  it("refuses a missing secret", () => {
    expect(() => parseEnv("executor", schema, {})).toThrow(/API_TOKEN: is required/);
  });
  it("refuses a short secret", () => {
    expect(() => parseEnv("executor", schema, { API_TOKEN: "abc123abc" })).toThrow(/at least 16/);
  });
  it("redacts passwords in URLs", () => {
    expect(redactUrl("postgres://u:hunter2@db:5432/x")).toBe("postgres://u:***@db:5432/x");
  });
});
