import { describe, expect, it } from "vitest";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { TOOLS, checkCall, renderToolOutput, runTool, toolSpecs, undeclared, defineTool, type ToolContext } from "../src/tools.js";
import { fitTurns, readAnswer, repairTurns } from "../src/investigation.js";
import { UNTRUSTED_CLOSE, toolBlock } from "../src/prompt.js";
import { z } from "zod";
import { SPEC_YAML, makeSources } from "./harness.js";

/** The loop's pure parts: the tools' schemas, argument checks, bounded and redacted output, reading a model's turn. */
const spec = (() => {
  const r = parseFleetSpec(SPEC_YAML);
  if (!r.ok) throw new Error("spec");
  return r.spec;
})();
const ctx: Omit<ToolContext, "signal"> = { sources: makeSources(), actions: { listForService: async () => [] }, spec, now: new Date(), eventsWindowMs: 3_600_000, logBytes: 4096 };

describe("tools", () => {
  it("each tool's JSON schema is an object schema derived from its zod arguments, names unique", () => {
    const specs = toolSpecs(TOOLS);
    expect(new Set(specs.map((s) => s.name)).size).toBe(TOOLS.length);
    for (const s of specs) {
      expect(s.parameters).toMatchObject({ type: "object", additionalProperties: false });
      expect(s.parameters).not.toHaveProperty("$schema");
      expect(s.name).toMatch(/^[a-z_]{1,64}$/);
    }
  });

  it.each([
    ["service_logs", { node: "node1", service: "api", tail: 500 }, /tail: Too big/],
    ["service_logs", { node: "node1" }, /service: /],
    ["service_logs", { node: "node1", service: "api", cmd: "rm" }, /Unrecognized key/],
    ["run_shell", {}, /there is no tool 'run_shell'/],
    ["host_metrics", "node1", /\(root\)/],
  ] as const)("%s %j is refused naming the problem", (name, input, why) => {
    const r = checkCall(TOOLS, name, input);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(why);
  });

  it("a call may only read declared nodes and services", () => {
    expect(undeclared([{ node: "node1", service: "api" }], spec)).toBeNull();
    expect(undeclared([{ node: "node9" }], spec)).toMatch(/node 'node9' is not declared/);
    expect(undeclared([{ node: "node2", service: "api" }], spec)).toMatch(/service 'api' is not declared on node 'node2' \(services: db\)/);
  });

  it("output is redacted (secret-looking keys dropped, values masked) and cut, saying so", () => {
    const r = renderToolOutput({ password: "hunter2-very-secret", detail: "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123", ok: "x".repeat(50) }, 10_000);
    expect(r.text).not.toContain("hunter2");
    expect(r.text).not.toContain("abcdefghijklmnopqrstuvwxyz0123");
    const cut = renderToolOutput("y".repeat(5000), 600);
    expect(cut.truncated).toBe(true);
    expect(cut.text.length).toBeLessThanOrEqual(600);
    expect(cut.text).toMatch(/cut at 600 characters\)$/);
  });

  it("a hanging tool is abandoned at its timeout and its signal aborted; a failing one is an error, not a throw", async () => {
    let aborted = false;
    const hang = defineTool({ name: "hang", description: "", args: z.object({}), reads: () => [], run: (_a, c) => new Promise(() => c.signal.addEventListener("abort", () => (aborted = true))) });
    const t0 = Date.now();
    expect(await runTool(hang, {}, ctx, { timeoutMs: 50, maxChars: 100 })).toMatchObject({ ok: false, kind: "timeout" });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(aborted).toBe(true);
    const boom = defineTool({ name: "boom", description: "", args: z.object({}), reads: () => [], run: async () => Promise.reject(new Error("db gone, token=sk-ant-abcdefabcdefabcdefabcdef")) });
    const r = await runTool(boom, {}, ctx, { timeoutMs: 1000, maxChars: 100 });
    expect(r).toMatchObject({ ok: false, kind: "error" });
    expect(r.text).not.toContain("sk-ant-abcdefabcdefabcdefabcdef");
  });

  it("service_logs greps and tails the log it reads", async () => {
    const logs = defineTool(TOOLS.find((t) => t.name === "service_logs")!);
    const c = { ...ctx, sources: makeSources({ logTail: async (node, service) => ({ ok: true, node, service, text: "a ok\nb error one\nc ok\nd ERROR two\n", bytes: 30, truncated: true }) }) };
    const r = await runTool(logs, { node: "node1", service: "api", grep: "error", tail: 1 }, c, { timeoutMs: 1000, maxChars: 1000 });
    expect(r.ok && r.text).toBe('1 line(s) containing "error" of the last 30 bytes of the log (older lines not read), 1 earlier matching line(s) left out:\nd ERROR two');
  });
});

describe("reading a model's turn", () => {
  const a = (over: object) => ({ text: "", inputTokens: 1, outputTokens: 1, model: "m", ...over });
  it("an answer, checked calls, or unusable with the reason", () => {
    expect(readAnswer(a({ json: { diagnosis: "d", answer: "a", proposals: [] } }), TOOLS, false)).toMatchObject({ kind: "answer" });
    expect(readAnswer(a({ toolCalls: [{ id: "1", name: "host_metrics", input: { node: "node1" } }] }), TOOLS, false)).toMatchObject({ kind: "calls", calls: [{ id: "1", input: { node: "node1" } }] });
    expect(readAnswer(a({ toolCalls: [{ id: "1", name: "host_metrics", input: { node: "node1" } }] }), TOOLS, true)).toMatchObject({ kind: "unusable", answerNow: true });
    expect(readAnswer(a({ toolCalls: [{ id: "1", name: "host_metrics", input: {} }] }), TOOLS, false)).toMatchObject({ kind: "unusable", answerNow: false, reason: expect.stringMatching(/^tool call host_metrics: .*node/) });
    // Arguments sent as a JSON string (some models do) are read as the object they hold.
    expect(readAnswer(a({ toolCalls: [{ id: "1", name: "host_metrics", input: '{"node":"node1"}' }] }), TOOLS, false)).toMatchObject({ kind: "calls", calls: [{ input: { node: "node1" } }] });
    expect(readAnswer(a({ json: '{"diagnosis":"d","answer":"a","proposals":[]}' }), TOOLS, false)).toMatchObject({ kind: "answer" });
    expect(readAnswer(a({ text: "sure!" }), TOOLS, false)).toMatchObject({ kind: "unusable", reason: "the model's answer is not JSON", answerNow: true });
  });
  it("a bad call's repair answers every call with the error (the APIs want a result per call)", () => {
    const v = readAnswer(a({ toolCalls: [{ id: "x1", name: "nope", input: {} }, { id: "x2", name: "host_metrics", input: { node: "node1" } }] }), TOOLS, false);
    if (v.kind !== "unusable") throw new Error("expected unusable");
    const turns = repairTurns(a({}), v);
    expect(turns[1]).toMatchObject({ role: "tool", results: [{ id: "x1", isError: true }, { id: "x2", isError: true }] });
  });
  it("fitting the transcript cuts tool answers and closes their untrusted block", () => {
    const big = toolBlock("service_logs", { node: "n" }, "z".repeat(20_000));
    const fitted = fitTurns([{ role: "tool", results: [{ id: "1", name: "service_logs", content: big, isError: false }] }], 2000);
    const r = fitted[0]?.role === "tool" ? fitted[0].results[0]?.content ?? "" : "";
    expect(r.length).toBeLessThan(2200);
    expect(r).toContain(UNTRUSTED_CLOSE);
  });
});
