import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { ROUTE_REASONS, estimateTokens, scoreRoute, type RouteInput } from "../src/router.js";
import { groupFor, loadConfig, parseModelGroups } from "../src/config.js";
import { costUsd } from "../src/cost-ledger.js";
import { validateEnvelope } from "../src/inbox.js";
import { buildPrompt, triage } from "../src/prompt.js";
import { specExcerpt, stripSecrets } from "../src/evidence.js";

const base: RouteInput = {
  agent: "diagnostician",
  estimatedInputTokens: 1000,
  group: { name: "default", num_ctx: 8192, escalate_above_tokens: 6000 },
  local: "up",
  restricted: false,
  sensitive: false,
  claude: "enabled",
  budget: "ok",
  claudeContextTokens: 180_000,
};

describe("scoreRoute", () => {
  const table: [string, Partial<RouteInput>, string, string, boolean][] = [
    ["fits and local up", {}, "local", "within_context", false],
    ["exactly at the threshold", { estimatedInputTokens: 6000 }, "local", "within_context", false],
    ["above the threshold", { estimatedInputTokens: 6001 }, "claude", "context_overflow", false],
    ["local down", { local: "down" }, "claude", "local_down", false],
    ["restricted, overflow, local up: trimmed local", { restricted: true, estimatedInputTokens: 9000 }, "local", "restricted", true],
    ["restricted, local down: rules, never claude", { restricted: true, local: "down" }, "rules", "restricted", false],
    ["restricted, fits: local", { restricted: true }, "local", "within_context", false],
    ["local answered garbage twice: claude", { local: "unusable" }, "claude", "local_unusable", false],
    ["local answered garbage, restricted: rules", { local: "unusable", restricted: true }, "rules", "restricted", false],
    ["sensitive, local down: rules, never claude", { sensitive: true, local: "down" }, "rules", "sensitive", false],
    ["sensitive, overflow: trimmed local", { sensitive: true, estimatedInputTokens: 9000 }, "local", "sensitive", true],
    ["sensitive, local answered garbage: rules", { sensitive: true, local: "unusable" }, "rules", "sensitive", false],
    ["both answered garbage: rules", { local: "unusable", claude: "unusable" }, "rules", "claude_unusable", false],
    ["claude answered garbage, overflow, local up: trimmed local", { claude: "unusable", estimatedInputTokens: 9000 }, "local", "claude_unusable", true],
    ["claude disabled, overflow: trimmed local", { claude: "disabled", estimatedInputTokens: 9000 }, "local", "claude_disabled", true],
    ["claude disabled, local down: rules", { claude: "disabled", local: "down" }, "rules", "claude_disabled", false],
    ["claude unavailable, local down: rules", { claude: "unavailable", local: "down" }, "rules", "claude_unavailable", false],
    ["claude unavailable, overflow: local", { claude: "unavailable", estimatedInputTokens: 9000 }, "local", "claude_unavailable", true],
    ["budget exhausted, overflow: local", { budget: "exhausted", estimatedInputTokens: 9000 }, "local", "budget_exhausted", true],
    ["budget exhausted, local down: rules", { budget: "exhausted", local: "down" }, "rules", "budget_exhausted", false],
    ["too large even for claude, local down", { local: "down", estimatedInputTokens: 200_000 }, "rules", "claude_context_overflow", false],
    ["too large even for claude, local up", { estimatedInputTokens: 200_000 }, "local", "claude_context_overflow", true],
  ];
  it.each(table)("%s", (_name, over, decision, reason, trim) => {
    expect(scoreRoute({ ...base, ...over })).toEqual({ decision, reason, trim });
  });

  it("covers every reason", () => {
    const seen = new Set(table.map((t) => t[3]));
    expect([...ROUTE_REASONS].filter((r) => !seen.has(r))).toEqual([]);
  });

  it("is deterministic", () => {
    const input = { ...base, estimatedInputTokens: 7000 };
    expect(scoreRoute(input)).toEqual(scoreRoute({ ...input }));
    expect(estimateTokens("abcd".repeat(100))).toBe(100);
  });
});

describe("config", () => {
  const env = { DATABASE_URL: "postgres://x@127.0.0.1/db", API_TOKEN: "a-real-token-of-some-length", FLEET_SPEC: "/tmp/fleet.yaml" };

  it("prices Claude from a table per model (input, output, cache write, cache read), overridable, and refuses a model without prices", () => {
    const key = { ANTHROPIC_API_KEY: "sk-ant-test-key-0123456789abcdef" };
    expect(loadConfig({ ...env, ...key }).prices).toEqual({ inputPerMTok: 3, outputPerMTok: 15, cacheWritePerMTok: 3.75, cacheReadPerMTok: 0.3 });
    expect(loadConfig({ ...env, ...key, CLAUDE_MODEL: "claude-haiku-4-5" }).prices).toEqual({ inputPerMTok: 1, outputPerMTok: 5, cacheWritePerMTok: 1.25, cacheReadPerMTok: 0.1 });
    const custom = JSON.stringify({ "claude-next": { input: 2, output: 10, cache_write: 2.5, cache_read: 0.2 } });
    expect(loadConfig({ ...env, ...key, CLAUDE_MODEL: "claude-next", MODEL_PRICES: custom }).prices).toEqual({ inputPerMTok: 2, outputPerMTok: 10, cacheWritePerMTok: 2.5, cacheReadPerMTok: 0.2 });
    expect(loadConfig({ ...env, ...key, CLAUDE_PRICE_INPUT_PER_MTOK: "4" }).prices).toMatchObject({ inputPerMTok: 4, outputPerMTok: 15, cacheWritePerMTok: 3.75 });
    expect(() => loadConfig({ ...env, ...key, CLAUDE_MODEL: "claude-unknown" })).toThrow(/MODEL_PRICES.*has no prices for CLAUDE_MODEL 'claude-unknown'/);
    // Claude off: nothing is priced, nothing refused.
    expect(() => loadConfig({ ...env, CLAUDE_MODEL: "claude-unknown" })).not.toThrow();
    expect(() => loadConfig({ ...env, ...key, MODEL_PRICES: "{" })).toThrow(/MODEL_PRICES/);
    expect(() => loadConfig({ ...env, ...key, MODEL_PRICES: JSON.stringify({ m: { input: -1, output: 1, cache_write: 1, cache_read: 1 } }) })).toThrow(/MODEL_PRICES\.m\.input/);
    expect(costUsd(loadConfig({ ...env, ...key }).prices, 1_000_000, 0, 1_000_000, 1_000_000)).toBeCloseTo(3 + 3.75 + 0.3);
  });

  it("refuses a group whose escalation threshold is above num_ctx, naming the setting", () => {
    expect(() => parseModelGroups(JSON.stringify({ small: { model: "m", num_ctx: 4096, escalate_above_tokens: 5000 } }))).toThrow(/MODEL_GROUPS\.small\.escalate_above_tokens/);
    expect(() => loadConfig({ ...env, MODEL_GROUPS: "{not json" })).toThrow(ConfigError);
    expect(() => parseModelGroups(JSON.stringify({ claude: { model: "m", num_ctx: 10, escalate_above_tokens: 5 } }))).toThrow(/reserved/);
  });

  it("picks a group per agent", () => {
    const groups = parseModelGroups(JSON.stringify({ big: { model: "b", num_ctx: 32768, escalate_above_tokens: 30000, agents: ["diagnostician"] }, small: { model: "s", num_ctx: 4096, escalate_above_tokens: 3000 } }));
    expect(groupFor(groups, "diagnostician").name).toBe("big");
    expect(groupFor(groups, "operator-answerer").name).toBe("small");
  });

  it("treats the Anthropic key as a secret only when Claude is enabled", () => {
    expect(() => loadConfig({ ...env, ANTHROPIC_API_KEY: "changeme" })).toThrow(/ANTHROPIC_API_KEY/);
    expect(loadConfig({ ...env, ANTHROPIC_API_KEY: "changeme", CLAUDE_ENABLED: "false" }).claude).toMatchObject({ enabled: false, disabledBecause: "config", apiKey: undefined });
    expect(loadConfig(env).claude).toMatchObject({ enabled: false, disabledBecause: "no_key" });
    const c = loadConfig({ ...env, ANTHROPIC_API_KEY: "sk-ant-a-real-looking-key-123456" });
    expect(c.claude.enabled).toBe(true);
    expect(c.httpPort).toBe(7071);
    expect(c.caps).toEqual({ perTaskUsd: 5, perAgentDayUsd: 10, globalDayUsd: 30 });
    expect(() => loadConfig({ ...env, API_TOKEN: "changeme" })).toThrow(/API_TOKEN/);
  });
});

describe("validateEnvelope", () => {
  const ok = { task_id: "t1", content: "why?", source: "cli", user: "op" };
  it.each([
    [{ ...ok, task_id: "  " }, "task_id", "blank_task_id"],
    [{ ...ok, content: "" }, "content", "blank_content"],
    [{ ...ok, ttl_s: 0 }, "ttl_s", "non_positive_ttl"],
    [{ ...ok, ttl_s: -5 }, "ttl_s", "non_positive_ttl"],
    [{ ...ok, idempotency_key: " " }, "idempotency_key", "blank_idempotency_key"],
    [{ ...ok, target_agent: "hacker" }, "target_agent", "unknown_target_agent"],
    [{ ...ok, source: "email" }, "source", "schema"],
    [{ ...ok, user: undefined }, "user", "schema"],
  ])("%j → 422 %s", (body, field, reason) => {
    expect(validateEnvelope(body)).toMatchObject({ ok: false, field, reason });
  });
  it("accepts a valid envelope", () => {
    expect(validateEnvelope({ ...ok, ttl_s: 60, target_agent: "diagnostician" })).toMatchObject({ ok: true });
  });
});

describe("prompts and triage", () => {
  it("triages drift work to the diagnostician and questions to the answerer", () => {
    expect(triage(null, "cli", "why does jellyfin keep restarting?", null)).toBe("diagnostician");
    expect(triage(null, "cli", "which nodes run postgres?", null)).toBe("operator-answerer");
    expect(triage(null, "supervisor", "anything", null)).toBe("diagnostician");
    expect(triage("operator-answerer", "supervisor", "why", null)).toBe("operator-answerer");
  });

  it("trims the evidence to fit a token budget", () => {
    const big = { targets: [], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: { "n/s": "x".repeat(100_000) }, attached: null, notes: [] };
    const full = buildPrompt("diagnostician", "why?", [], big);
    const trimmed = buildPrompt("diagnostician", "why?", [], big, 2000);
    expect(full.user.length).toBeGreaterThan(100_000);
    expect(estimateTokens(trimmed.system + trimmed.user + JSON.stringify(trimmed.schema))).toBeLessThanOrEqual(2000);
    expect(trimmed.user).toContain("evidence trimmed");
  });

  it("never puts env values or secrets into spec excerpts or attached evidence", () => {
    const ex = specExcerpt({ kind: "process", command: ["api", "--password=hunter2hunter2"], env: { DB_PASSWORD: { secret: "db" }, PLAIN: "plain-value-123" }, restart: "never", autostart: true, health: [], depends_on: [] });
    const text = JSON.stringify(ex);
    expect(text).not.toContain("plain-value-123");
    expect(text).not.toContain("hunter2hunter2");
    expect(text).not.toContain("env");
    const s = JSON.stringify(stripSecrets({ node: "n1", env: { A: "env-value-1" }, nested: { api_token: "tok-123456789", note: "DB_PASSWORD=abc123456 here" } }));
    expect(s).not.toContain("env-value-1");
    expect(s).not.toContain("tok-123456789");
    expect(s).not.toContain("abc123456");
    expect(s).toContain("n1");
  });
});
