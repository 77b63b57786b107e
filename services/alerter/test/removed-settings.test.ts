/**
 * A setting the alerter no longer reads must not be ignored in silence: an operator who tuned ALERT_RENOTIFY_MS would
 * otherwise run on the default repeat interval without knowing. The alerter refuses to start, naming the old setting
 * and its replacement, exit 2 like every other bad setting.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { loadConfig, REMOVED_SETTINGS, removedSettingProblems, SETTINGS } from "../src/config.js";

const API_TOKEN = "a-real-api-token-0123456789";
const base = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN, ALERT_CONSOLE: "true" };

describe("removed settings", () => {
  it.each<[string, Record<string, string>, string[]]>([
    ["none set", {}, []],
    ["the replacement alone is fine", { ALERT_REPEAT_INTERVAL_MS: "600000" }, []],
    ["ALERT_RENOTIFY_MS set", { ALERT_RENOTIFY_MS: "600000" }, ["ALERT_RENOTIFY_MS"]],
    ["ALERT_RENOTIFY_MS set but empty still meant something", { ALERT_RENOTIFY_MS: "" }, ["ALERT_RENOTIFY_MS"]],
    ["old and new both set: still refused (the old one would be ignored)", { ALERT_RENOTIFY_MS: "600000", ALERT_REPEAT_INTERVAL_MS: "600000" }, ["ALERT_RENOTIFY_MS"]],
    ["a name that merely looks alike is not matched", { ALERT_RENOTIFY: "1", alert_renotify_ms: "1" }, []],
  ])("%s", (_n, env, want) => {
    expect(removedSettingProblems(env).map((p) => p.setting)).toEqual(want);
    let got: string[] = [];
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      got = err.problems.map((p) => p.setting);
    }
    expect(got).toEqual(want);
  });

  it("names the replacement, never the value, beside the other problems", () => {
    try {
      loadConfig({ ...base, ALERT_RENOTIFY_MS: "987654", ALERT_EVAL_MS: "often" });
      throw new Error("should have refused");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^ {2}ALERT_RENOTIFY_MS: was replaced by ALERT_REPEAT_INTERVAL_MS\b/m);
      expect(msg).toMatch(/^ {2}ALERT_EVAL_MS: /m);
      expect(msg).not.toContain("987654");
    }
  });

  it("PLANNER_URL without PLANNER_TOKEN is refused: the executor credential (API_TOKEN) is no longer sent to the planner", () => {
    expect(() => loadConfig({ ...base, EXECUTOR_URL: "http://127.0.0.1:7070", PLANNER_URL: "http://127.0.0.1:7071" })).toThrow(/PLANNER_TOKEN: is required when PLANNER_URL is set/);
    const c = loadConfig({ ...base, EXECUTOR_URL: "http://127.0.0.1:7070", PLANNER_URL: "http://127.0.0.1:7071", PLANNER_TOKEN: "its-own-planner-token-0123" });
    expect(c.plannerToken).toBe("its-own-planner-token-0123");
    expect(loadConfig({ ...base, EXECUTOR_URL: "http://127.0.0.1:7070" }).plannerToken).toBeUndefined();
  });

  it("every replacement named is a setting the alerter reads, and no removed one is still read", () => {
    for (const [old, message] of Object.entries(REMOVED_SETTINGS)) {
      expect(SETTINGS).not.toContain(old);
      const replacement = /replaced by ([A-Z][A-Z0-9_]+)/.exec(message)?.[1];
      expect(replacement, old).toBeDefined();
      expect(SETTINGS).toContain(replacement);
    }
  });

  it("the alerter process exits 2, naming the old setting and its replacement", async () => {
    const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const env = { PATH: process.env["PATH"] ?? "", ...base, DATABASE_URL: "postgres://x@127.0.0.1:1/x", ALERT_RENOTIFY_MS: "600000" };
    const child = spawn(process.execPath, [main], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    expect(code, stderr).toBe(2);
    expect(stderr).toMatch(/ALERT_RENOTIFY_MS: was replaced by ALERT_REPEAT_INTERVAL_MS/);
    expect(stderr).not.toContain("600000");
    expect(stdout).not.toMatch(/steward alerter on/);
  });
});
