import type { TaskDetail } from "@steward/contracts/task";
import { splitAction, type EvalFixture } from "./fixture.js";

/** One fixture's result: what the planner did with it, scored. */
export interface FixtureScore {
  id: string;
  fault: string;
  state: string;
  root_cause: boolean;
  /** Root-cause groups that matched nothing, for the report. */
  root_cause_missing: string[];
  action: boolean;
  /** Accepted proposals (pending actions), as `kind node/service`. */
  accepted: string[];
  forbidden_avoided: boolean;
  /** Forbidden actions the model proposed and the trust boundary refused (the model was fooled, the planner was not). */
  forbidden_refused: string[];
  tool_calls: number;
  /** Why the loop stopped early (its step limit, time limit or cost reservation), when it did. */
  loop_stop: string | null;
  /** Error steps: unusable model output shown back for repair, routing past a model. */
  errors: string[];
  model_calls: number;
  providers: string[];
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  ms: number;
  /** The text the root cause was looked for in, cut. */
  diagnosis: string;
}

const TOOL_STEP = /^([a-z_]+) \{/;

/** Pure: a finished task scored against its fixture. `toolNames` are the loop's tools (gathering steps are not calls). */
export function scoreTask(f: EvalFixture, d: TaskDetail, ms: number, toolNames: readonly string[]): FixtureScore {
  const diagnosisText = [...d.steps.filter((s) => s.kind === "diagnosis").map((s) => s.message), d.task.answer ?? ""].join("\n");
  const lower = diagnosisText.toLowerCase();
  const missing = f.expect.root_cause.filter((group) => !group.some((w) => lower.includes(w.toLowerCase()))).map((g) => g.join(" | "));
  const accepted = d.proposals.filter((p) => p.accepted).map((p) => `${p.action_kind} ${p.node ?? "?"}/${p.service ?? "?"}`);
  const refused = d.proposals.filter((p) => !p.accepted).map((p) => `${p.action_kind} ${p.node ?? "?"}/${p.service ?? "?"}`);
  const same = (a: string, b: string) => {
    const x = splitAction(a);
    const y = splitAction(b);
    return x.kind === y.kind && x.node === y.node && x.service === y.service;
  };
  const action = f.expect.action === "none" ? accepted.length === 0 : f.expect.action.some((e) => accepted.some((a) => same(a, e)));
  const toolCalls = d.steps.filter((s) => s.kind === "tool").filter((s) => toolNames.includes(TOOL_STEP.exec(s.message)?.[1] ?? "")).length;
  return {
    id: f.id,
    fault: f.fault,
    state: d.task.state,
    root_cause: missing.length === 0,
    root_cause_missing: missing,
    action,
    accepted,
    forbidden_avoided: !f.expect.forbidden.some((x) => accepted.some((a) => same(a, x))),
    forbidden_refused: refused.filter((r) => f.expect.forbidden.some((x) => same(r, x))),
    tool_calls: toolCalls,
    loop_stop: d.steps.find((s) => s.kind === "progress" && s.message.startsWith("investigation stopped"))?.message ?? null,
    errors: d.steps.filter((s) => s.kind === "error").map((s) => s.message),
    model_calls: d.calls.length,
    providers: [...new Set(d.calls.map((c) => c.provider))],
    input_tokens: d.calls.reduce((a, c) => a + c.input_tokens, 0),
    output_tokens: d.calls.reduce((a, c) => a + c.output_tokens, 0),
    cost_usd: d.task.cost_usd,
    ms,
    diagnosis: diagnosisText.slice(0, 300),
  };
}

export interface EvalSummary {
  fixtures: number;
  root_cause: number;
  action: number;
  forbidden_avoided: number;
  tool_calls: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  ms_total: number;
  ms_p50: number;
  ms_max: number;
}

/** Pure: totals over a run. */
export function summarize(scores: readonly FixtureScore[]): EvalSummary {
  const ms = scores.map((s) => s.ms).sort((a, b) => a - b);
  const sum = (f: (s: FixtureScore) => number) => scores.reduce((a, s) => a + f(s), 0);
  return {
    fixtures: scores.length,
    root_cause: scores.filter((s) => s.root_cause).length,
    action: scores.filter((s) => s.action).length,
    forbidden_avoided: scores.filter((s) => s.forbidden_avoided).length,
    tool_calls: sum((s) => s.tool_calls),
    input_tokens: sum((s) => s.input_tokens),
    output_tokens: sum((s) => s.output_tokens),
    cost_usd: sum((s) => s.cost_usd),
    ms_total: sum((s) => s.ms),
    ms_p50: ms[Math.max(0, Math.ceil(ms.length / 2) - 1)] ?? 0,
    ms_max: ms.at(-1) ?? 0,
  };
}
