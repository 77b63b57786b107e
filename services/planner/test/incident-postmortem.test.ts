import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import type { FakeAnthropic, FakeOllama } from "@steward/testkit";
import type { Started } from "./harness.js";
import { SPEC_YAML, T0, drift, makeSources, start, post, done, envelope, get, live, usePlannerHarness } from "./harness.js";

/**
 * A post-mortem's model call goes the planner's usual way: the router (local first), the cost caps, and the spec's
 * sensitivity. Drafted from the records, saying why, whenever no model may or can write it.
 */
usePlannerHarness();
let ollama: FakeOllama, anthropic: FakeAnthropic;
beforeAll(() => ({ ollama, anthropic } = live));
beforeEach(async () => {
  await live.sql`TRUNCATE planner_incident_tasks, planner_incident_recurrences, planner_incidents`;
});

const apiSensitive = (() => {
  const r = parseFleetSpec(SPEC_YAML.replace(`      api:\n        kind: process\n`, `      api:\n        kind: process\n        sensitive: true\n`));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.spec;
})();

const PROSE = { summary: "CLAUDE SUMMARY: api crashed.", root_cause: "It could not reach its database.", what_fixed_it: "Nothing yet.", prevention: ["Alert on the database first."] };

/** The supervisor's escalation about node1/api, answered; the incident it opened. */
async function incident(s: Started): Promise<number> {
  await post(s.url, envelope("t-inc", { source: "supervisor", user: "supervisor", conversation_id: "supervisor:node1/api", content: "api on node1 is crash-looping", evidence: { signal: "crash_loop", drift, service_state: { state: "exited", health: "none", exit_code: 1, since: T0 } } }));
  await done(s.url, "t-inc");
  const [inc] = await s.planner.incidents.list({ limit: 5 });
  if (!inc) throw new Error("no incident");
  expect(inc).toMatchObject({ node: "node1", service: "api", signature: "down:exit=1" });
  return inc.id;
}

describe("post-mortem routing", () => {
  it("a sensitive service: with the local model down and Claude enabled, the Anthropic stand-in receives nothing; drafted from the timeline, saying why", async () => {
    ollama.setMode("down");
    const s = await start({}, { sources: makeSources({ spec: async () => apiSensitive }) });
    const id = await incident(s);
    const before = anthropic.requests.length;
    const r = await s.planner.incidents.postmortem(id);
    expect(anthropic.requests.length - before).toBe(0);
    expect(r).toMatchObject({ by: "timeline" });
    expect(r?.detail).toMatch(/marked sensitive in fleet\.yaml/);
    expect(r?.markdown).toMatch(/no model wrote this \(the local model is down, and the task touches a service or node marked sensitive/);
    const task = (await get(s.url, `/tasks/${r!.task_id}`)).json as unknown as { steps: { message: string }[]; calls: { provider: string; reason: string }[] };
    expect(task.steps.map((x) => x.message)).toContain("local only: the task touches node1/api (sensitive: true in fleet.yaml)");
    expect(task.calls).toMatchObject([{ provider: "rules", reason: "sensitive" }]);
  });

  it("not sensitive, local model down: Claude writes it within the caps; its cost is on the post-mortem's task", async () => {
    ollama.setMode("down");
    const s = await start();
    const id = await incident(s);
    anthropic.script({ json: PROSE, inputTokens: 3000, outputTokens: 400 });
    const r = await s.planner.incidents.postmortem(id);
    expect(r).toMatchObject({ by: "model" });
    expect(r?.detail).toMatch(/^written by Claude \(claude, /);
    expect(r?.markdown).toContain("CLAUDE SUMMARY: api crashed.");
    expect(r?.markdown).toContain("| time (UTC) | source | what |");
    const sent = JSON.stringify(anthropic.messages().at(-1));
    expect(sent).toContain("UNTRUSTED");
    expect(sent).toContain("incident writer");
    const task = (await get(s.url, `/tasks/${r!.task_id}`)).json as unknown as { task: { cost_usd: number; state: string }; calls: { provider: string }[] };
    expect(task.task.state).toBe("succeeded");
    expect(task.calls.map((c) => c.provider)).toEqual(["anthropic"]);
    expect(task.task.cost_usd).toBeGreaterThan(0);
  });

  it("over the per-task cap: Claude is not called; drafted from the timeline, saying a cap would be passed", async () => {
    ollama.setMode("down");
    const s = await start({ CAP_PER_TASK_USD: "0.000001" });
    const id = await incident(s);
    const before = anthropic.requests.length;
    const r = await s.planner.incidents.postmortem(id);
    expect(anthropic.requests.length - before).toBe(0);
    expect(r).toMatchObject({ by: "timeline" });
    expect(r?.detail).toMatch(/a cost cap would be passed/);
  });
});
