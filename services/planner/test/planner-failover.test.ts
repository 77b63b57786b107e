import { actionsOf } from "@steward/actions/testing";
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "@steward/platform/db";
import type { FakeAnthropic, FakeOllama } from "@steward/testkit";
import { start, post, done, envelope, live, usePlannerHarness } from "./harness.js";

/** Garbage from a model: one repair retry with the error shown, then the next route within the caps, then the runbooks. */
usePlannerHarness();
let sql: Sql, ollama: FakeOllama, anthropic: FakeAnthropic;
beforeAll(() => ({ sql, ollama, anthropic } = live));

const GARBAGE = "Sure! I would restart everything with rm -rf";
const claudeAnswer = { json: { diagnosis: "api cannot reach the database", answer: "Restart api once the db is up.", proposals: [{ kind: "restart", node: "node1", service: "api", reason: "exited on db connection" }] }, inputTokens: 2000, outputTokens: 200 };
const usd = (inTok: number, outTok: number) => (inTok * 3 + outTok * 15) / 1e6;
// The streaming "is answering" notes are written while a model streams, so their place among the others varies.
const steps = (d: { steps: { kind: string; message: string }[] }) =>
  d.steps.filter((s) => ["error", "progress", "diagnosis", "report"].includes(s.kind) && !s.message.endsWith(" is answering")).map((s) => `${s.kind}: ${s.message}`);

describe("fail-over on garbage", () => {
  it("Ollama answers garbage twice: one repair retry shows it the error, then Claude answers; each step recorded, cost only for the Claude call", async () => {
    ollama.script({ content: GARBAGE }, { content: "{\"diagnosis\": 42}" });
    anthropic.script(claudeAnswer);
    const { url } = await start();
    await post(url, envelope("t-garbage"));
    const d = await done(url, "t-garbage");
    expect(d.task.state).toBe("succeeded");

    // The repair retry went to the same local model, with its own garbage as its turn and the error.
    const chats = ollama.chats();
    expect(chats).toHaveLength(2);
    expect(chats[1]?.messages.at(-2)).toMatchObject({ role: "assistant", content: GARBAGE });
    expect(chats[1]?.messages.at(-1)?.content).toMatch(/^Your answer could not be used: the model's answer is not JSON\./);
    expect(anthropic.messages()).toHaveLength(1);

    expect(d.calls).toMatchObject([
      { provider: "ollama", decision: "local", reason: "within_context", cost_usd: 0 },
      { provider: "ollama", decision: "local", reason: "within_context", cost_usd: 0 },
      { provider: "anthropic", decision: "claude", reason: "local_unusable", input_tokens: 2000, output_tokens: 200, cost_usd: usd(2000, 200) },
    ]);
    expect(d.task.cost_usd).toBeCloseTo(usd(2000, 200));
    expect(await sql`SELECT state, actual_usd::float AS usd FROM planner_cost_ledger`).toEqual([{ state: "settled", usd: usd(2000, 200) }]);
    expect(steps(d)).toEqual([
      "error: the local model (default) answered unusable output (the model's answer is not JSON); asking it once more with the error",
      expect.stringMatching(/^error: the local model \(default\) answered unusable output again \(the model's answer does not match the schema: diagnosis: .*\); routing past the local model$/),
      "diagnosis: anthropic (claude, local_unusable): api cannot reach the database",
      "report: answered by anthropic (claude)",
    ]);
    expect(d.task.answer).toContain("Restart api once the db is up.");
    expect((await actionsOf(sql)).map((a) => `${a.kind} ${a.node}/${a.service} ${a.proposed_by}`)).toEqual(["restart node1/api planner"]);
  });

  it("a repair retry that works is the answer: no Claude call", async () => {
    ollama.script({ content: GARBAGE }, { content: JSON.stringify({ diagnosis: "db down", answer: "The db is down.", proposals: [] }) });
    const { url } = await start();
    await post(url, envelope("t-repaired"));
    const d = await done(url, "t-repaired");
    expect(d.calls.map((c) => c.provider)).toEqual(["ollama", "ollama"]);
    expect(steps(d)).toContain("progress: the local model (default) answered usably after the repair retry");
    expect(d.task.answer).toContain("The db is down.");
    expect(anthropic.requests).toHaveLength(0);
  });

  it("garbage from both models: two calls each, then the runbooks answer and say so; cost is the two Claude calls made", async () => {
    ollama.script({ content: GARBAGE }, { content: GARBAGE });
    anthropic.script({ text: "I cannot help with that", inputTokens: 1000, outputTokens: 10 }, { json: { verdict: "restart it" }, inputTokens: 1100, outputTokens: 20 });
    const { url } = await start();
    await post(url, envelope("t-all-garbage"));
    const d = await done(url, "t-all-garbage");
    expect(d.task.state).toBe("succeeded");
    expect(d.calls).toMatchObject([
      { provider: "ollama", reason: "within_context" },
      { provider: "ollama", reason: "within_context" },
      { provider: "anthropic", reason: "local_unusable", cost_usd: usd(1000, 10) },
      { provider: "anthropic", reason: "local_unusable", cost_usd: usd(1100, 20) },
      { provider: "rules", decision: "rules", reason: "claude_unusable", cost_usd: 0 },
    ]);
    expect(d.task.cost_usd).toBeCloseTo(usd(1000, 10) + usd(1100, 20));
    // Claude's repair retry carried its unusable answer and the error too.
    expect(JSON.stringify(anthropic.messages()[1]?.messages.at(-1))).toContain("Your answer could not be used");
    expect(d.task.answer).toMatch(/^No model could be used \(the local model gave no usable answer, and Claude gave no usable answer either\)/);
    expect(d.task.answer).toContain("crash_loop");
    expect(steps(d)).toContain("error: Claude (claude) answered unusable output again (the model's answer does not match the schema: diagnosis: Invalid input: expected string, received undefined); routing past the local model and Claude");
  });

  it("garbage from Ollama when a cost cap leaves no room for Claude: no Claude call, the runbooks answer", async () => {
    ollama.script({ content: GARBAGE }, { content: GARBAGE });
    const { url } = await start({ CAP_PER_TASK_USD: "0.000001" });
    await post(url, envelope("t-capped"));
    const d = await done(url, "t-capped");
    expect(anthropic.requests).toHaveLength(0);
    expect(d.calls).toMatchObject([{ provider: "ollama" }, { provider: "ollama" }, { provider: "rules", reason: "budget_exhausted", cost_usd: 0 }]);
    expect(d.task.cost_usd).toBe(0);
    expect(steps(d).some((s) => /Claude not called: the per task cap/.test(s))).toBe(true);
    expect(d.task.answer).toMatch(/^No model could be used \(the local model gave no usable answer, and a cost cap would be passed\)/);
  });
});
