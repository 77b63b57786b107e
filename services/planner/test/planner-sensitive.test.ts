import { beforeAll, describe, expect, it } from "vitest";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import type { FakeAnthropic, FakeOllama } from "@steward/testkit";
import { sensitivityOf } from "../src/sensitivity.js";
import type { Evidence } from "../src/evidence.js";
import { SPEC_YAML, drift, makeSources, start, post, done, envelope, answer, live, usePlannerHarness } from "./harness.js";

/** `sensitive: true` in fleet.yaml keeps every task touching it local, whoever filed it. */
usePlannerHarness();
let ollama: FakeOllama, anthropic: FakeAnthropic;
beforeAll(() => ({ ollama, anthropic } = live));

const specWith = (edit: (yaml: string) => string) => {
  const r = parseFleetSpec(edit(SPEC_YAML));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.spec;
};
const apiSensitive = specWith((y) => y.replace(`      api:\n        kind: process\n`, `      api:\n        kind: process\n        sensitive: true\n`));
const node1Sensitive = specWith((y) => y.replace(`  node1:\n    services:\n`, `  node1:\n    sensitive: true\n    services:\n`));
// The supervisor's escalation of the crash loop, as it files it.
const escalation = (id: string) => envelope(id, { source: "supervisor", user: "supervisor", content: "api on node1 is crash-looping: exited 3 times in the last hour", evidence: { drift } });

describe("sensitivityOf", () => {
  const ev = (over: Partial<Evidence>): Evidence => ({ targets: [], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: {}, attached: null, notes: [], ...over });
  it.each([
    ["a sensitive target", apiSensitive, ev({ targets: [{ node: "node1", service: "api" }] }), /touches node1\/api \(sensitive: true in fleet.yaml\)/],
    ["a drift finding of a sensitive service (a question naming no service)", apiSensitive, ev({ drifts: [drift] }), /node1\/api/],
    ["a sensitive node, by its host metrics", node1Sensitive, ev({ hosts: { node1: null } }), /node node1/],
    ["a sensitive node, by one of its services", node1Sensitive, ev({ targets: [{ node: "node1", service: "web" }] }), /node node1/],
    ["no spec: unknown is not 'not sensitive'", undefined, ev({}), /fleet spec could not be read/],
  ] as const)("%s → sensitive", (_n, spec, e, why) => {
    const s = sensitivityOf(spec, e);
    expect(s.sensitive && s.why).toMatch(why);
  });
  it("another service, node or nothing at all → not sensitive", () => {
    expect(sensitivityOf(apiSensitive, ev({ targets: [{ node: "node1", service: "web" }], hosts: { node1: null } }))).toEqual({ sensitive: false });
    expect(sensitivityOf(node1Sensitive, ev({ targets: [{ node: "node2", service: "db" }] }))).toEqual({ sensitive: false });
    expect(sensitivityOf(apiSensitive, null)).toEqual({ sensitive: false });
  });
});

describe("a sensitive service", () => {
  it("the Anthropic stand-in receives zero requests for a supervisor escalation with the local model down: the runbooks answer and say why", async () => {
    ollama.setMode("down");
    const { url } = await start({}, { sources: makeSources({ spec: async () => apiSensitive }) });
    await post(url, escalation("t-sens-down"));
    const d = await done(url, "t-sens-down");
    expect(anthropic.requests).toHaveLength(0);
    expect(d.task.state).toBe("succeeded");
    expect(d.calls).toMatchObject([{ provider: "rules", decision: "rules", reason: "sensitive", cost_usd: 0 }]);
    expect(d.steps.map((s) => s.message)).toContain("local only: the task touches node1/api (sensitive: true in fleet.yaml)");
    expect(d.task.answer).toMatch(/^No model could be used \(the local model is down, and the task touches a service or node marked sensitive in fleet\.yaml, so it stays with the local model\); this answer comes from the rule-based runbooks/);
    expect(d.proposals).toMatchObject([{ action_kind: "restart", node: "node1", service: "api", accepted: true }]);
  });

  it("a sensitive node: an operator's question, local model answering garbage: still no request to Anthropic", async () => {
    ollama.script({ content: "garbage" }, { content: "garbage" });
    const { url } = await start({}, { sources: makeSources({ spec: async () => node1Sensitive }) });
    await post(url, envelope("t-sens-node", { content: "why does web on node1 fail?" }));
    const d = await done(url, "t-sens-node");
    expect(anthropic.requests).toHaveLength(0);
    expect(d.calls).toMatchObject([{ provider: "ollama" }, { provider: "ollama" }, { provider: "rules", reason: "sensitive" }]);
    expect(d.steps.map((s) => s.message)).toContain("local only: the task touches node node1 (sensitive: true in fleet.yaml)");
  });

  it("a follow-up in a conversation about a sensitive service stays local; the same question about another service escalates", async () => {
    // No drift: only the conversation's history can make the follow-up sensitive.
    const { url } = await start({ OLLAMA_CIRCUIT_MS: "1" }, { sources: makeSources({ spec: async () => apiSensitive, drift: async () => undefined }) });
    ollama.script(answer([]));
    await post(url, envelope("s-1", { conversation_id: "conv-s", content: "why is api down?" }));
    expect((await done(url, "s-1")).calls).toMatchObject([{ provider: "ollama" }]);
    ollama.setMode("down");
    await post(url, envelope("s-2", { conversation_id: "conv-s", content: "and what should I do now?" }));
    const d2 = await done(url, "s-2");
    expect(d2.calls).toMatchObject([{ provider: "rules", reason: "restricted" }]);
    expect(d2.steps.map((x) => x.message)).toContain("local only: this conversation holds restricted turns");
    expect(anthropic.requests).toHaveLength(0);
    // The check is on the data: a task about a service that is not sensitive still escalates.
    anthropic.script({ json: { diagnosis: "d", answer: "a", proposals: [] } });
    await post(url, envelope("o-1", { conversation_id: "conv-o", content: "why is db slow?" }));
    expect((await done(url, "o-1")).calls[0]?.provider).toBe("anthropic");
  });
});
