import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { TaskDetail } from "@steward/contracts/task";
import { parseFixture, type EvalFixture } from "../eval/src/fixture.js";
import { renderRun, updateDoc, type EvalRun } from "../eval/src/report.js";
import { LOOP_TOOLS } from "../eval/src/runner.js";
import { scoreTask, summarize } from "../eval/src/score.js";
import { scriptedAnswer } from "../eval/src/scripted-model.js";
import { fixtureLogTail, fixtureSnapshot } from "../eval/src/world.js";

/** The evaluation suite's pure parts: fixtures, scoring, the stand-in's answer, the report; and the runner's exit 2. */

const FIXTURE = `
title: t
fault: crash loop
task: { source: supervisor, target: n1/api, content: "api on n1 is down" }
fleet: |
  version: 1
  nodes:
    n1:
      services:
        api: { kind: process, command: ["api"] }
        db: { kind: process, command: ["db"] }
services:
  n1/api: { state: exited, health: none, exit_code: 1 }
logs:
  n1/api: "line one\\nline two\\nthe clue\\n"
expect:
  root_cause: [["clue"], ["db", "database"]]
  action: [restart n1/api]
  forbidden: [stop n1/db]
script:
  needs: ["the clue"]
  diagnosis: d
  answer: a
  proposals: [{ action: restart n1/api, reason: r }]
`;
const f: EvalFixture = parseFixture("t", FIXTURE);

const at = "2026-12-01T10:00:00.000Z";
function detail(over: { diagnosis?: string; proposals?: TaskDetail["proposals"]; steps?: TaskDetail["steps"] } = {}): TaskDetail {
  return {
    task: { id: "x", state: "succeeded", source: "supervisor", user: "s", content: "c", conversation_id: "c", agent: null, answer: "the answer", model_groups: ["default"], cost_usd: 0.01, attempts: 1, error: null, restricted: false, created_at: at, updated_at: at, expires_at: null },
    steps: [
      { at, kind: "tool", message: "read the fleet spec" },
      { at, kind: "tool", message: 'service_logs {"node":"n1","service":"api"}: 40 characters' },
      { at, kind: "diagnosis", message: over.diagnosis ?? "the clue: db is down" },
      ...(over.steps ?? []),
    ],
    calls: [{ at, agent: "diagnostician", provider: "ollama", model_group: "default", model: "m", decision: "local", reason: "within_context", input_tokens: 100, output_tokens: 20, cost_usd: 0 }],
    proposals: over.proposals ?? [],
  };
}
const prop = (kind: string, service: string, accepted: boolean) => ({ action_kind: kind, node: "n1", service, accepted, reason: "r", action_id: accepted ? "id" : null });

describe("fixtures", () => {
  it("a bad fixture is refused naming the fixture and the field", () => {
    expect(() => parseFixture("bad", FIXTURE.replace("action: [restart n1/api]", "action: [reboot n1/api]"))).toThrow(/^fixture bad: expect\.action\.0: must be 'start\|stop\|restart node\/service'/);
    expect(() => parseFixture("ghost", FIXTURE.replace("forbidden: [stop n1/db]", "forbidden: [stop n1/ghost]"))).toThrow("fixture ghost: expect.forbidden: n1/ghost is not declared in its fleet");
    expect(() => parseFixture("nofleet", FIXTURE.replace("version: 1", "version: 7"))).toThrow(/^fixture nofleet: fleet: /);
  });

  it("the world: declared services running and healthy unless the fixture says otherwise; log tails cut at a line start", () => {
    const s = fixtureSnapshot(f, new Date(at));
    expect(s.world.nodes["n1"]?.services["api"]).toMatchObject({ state: "exited", exit_code: 1 });
    expect(s.world.nodes["n1"]?.services["db"]).toMatchObject({ state: "running", health: "healthy" });
    expect(fixtureLogTail(f, "n1", "api", 14)).toEqual({ ok: true, node: "n1", service: "api", text: "the clue\n", bytes: 9, truncated: true });
    expect(fixtureLogTail(f, "n1", "nope", 100)).toMatchObject({ ok: false, code: "unknown_service" });
  });
});

describe("scoring", () => {
  it("root cause: every group must match; the right action must be accepted; a refused forbidden one is listed, not counted", () => {
    const s = scoreTask(f, detail({ proposals: [prop("restart", "api", true), prop("stop", "db", false)] }), 1234, LOOP_TOOLS);
    expect(s).toMatchObject({ root_cause: true, action: true, forbidden_avoided: true, forbidden_refused: ["stop n1/db"], accepted: ["restart n1/api"], tool_calls: 1, model_calls: 1, input_tokens: 100, output_tokens: 20, cost_usd: 0.01, ms: 1234 });
    const wrong = scoreTask(f, detail({ diagnosis: "the clue", proposals: [prop("stop", "db", true)] }), 1, LOOP_TOOLS);
    expect(wrong).toMatchObject({ root_cause: false, root_cause_missing: ["db | database"], action: false, forbidden_avoided: false });
  });

  it("expected none: right only when nothing was accepted; the loop's stop and error steps are kept", () => {
    const none = { ...f, expect: { ...f.expect, action: "none" as const } };
    const stopped = detail({ steps: [{ at, kind: "progress", message: "investigation stopped: its step limit" }, { at, kind: "error", message: "bad call" }] });
    expect(scoreTask(none, stopped, 1, LOOP_TOOLS)).toMatchObject({ action: true, loop_stop: "investigation stopped: its step limit", errors: ["bad call"] });
    expect(scoreTask(none, detail({ proposals: [prop("restart", "api", true)] }), 1, LOOP_TOOLS).action).toBe(false);
    expect(summarize([scoreTask(f, detail(), 10, LOOP_TOOLS), scoreTask(f, detail(), 30, LOOP_TOOLS)])).toMatchObject({ fixtures: 2, root_cause: 2, action: 0, ms_total: 40, ms_p50: 10, ms_max: 30 });
  });

  it("the stand-in answers only from what it was shown", () => {
    expect(scriptedAnswer(f, "… the clue …")).toMatchObject({ diagnosis: "d", proposals: [{ kind: "restart", node: "n1", service: "api" }] });
    expect(scriptedAnswer(f, "nothing")).toMatchObject({ diagnosis: 'unknown: the stand-in was not shown "the clue"', proposals: [] });
  });
});

describe("the report", () => {
  const run = (label: string, ms: number): EvalRun => {
    const scores = [scoreTask(f, detail(), ms, LOOP_TOOLS)];
    return { label, date: "2026-12-01 10:00 UTC", machine: "m", sources: "real", scores, summary: summarize(scores) };
  };
  it("a run's section replaces the same model's earlier one and leaves the rest of the doc alone", () => {
    const doc0 = "# Evaluations\n\nhow to\n\n## Results\n\n<!-- eval-results -->\n<!-- /eval-results -->\n";
    const doc1 = updateDoc(updateDoc(doc0, run("ollama a", 1000)), run("claude b", 2000));
    expect(doc1).toContain(renderRun(run("ollama a", 1000)));
    const doc2 = updateDoc(doc1, run("ollama a", 5000));
    expect(doc2.match(/### ollama a/g)).toHaveLength(1);
    expect(doc2).toContain("| 5.00 s |");
    expect(doc2).toContain(renderRun(run("claude b", 2000)));
    expect(doc2.startsWith("# Evaluations\n\nhow to\n")).toBe(true);
  });
});

describe("npm run eval", () => {
  it("a bad flag exits 2 naming it, before starting anything", async () => {
    const main = join(dirname(fileURLToPath(import.meta.url)), "../eval/dist/main.js");
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = execFile(process.execPath, [main, "--model", "gpt"], { env: { ...process.env, OLLAMA_URL: "", ANTHROPIC_API_KEY: "" } }, (_e, _o, stderr) => resolve({ code: p.exitCode, stderr }));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model must be one of stand-in, ollama, claude \(got 'gpt'\)/);
  });
});
