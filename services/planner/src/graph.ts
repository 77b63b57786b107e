import { Annotation, END, START, StateGraph, type BaseCheckpointSaver, type LangGraphRunnableConfig } from "@langchain/langgraph";
import { SpanStatusCode, type Context } from "@opentelemetry/api";
import { traceparentOf, withSpan } from "@steward/platform/tracing";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository } from "@steward/actions/repository";
import type { TaskProposal, TaskStep } from "@steward/contracts/task";
import type { WorldState } from "@steward/contracts/world-state";
import { gatherEvidence, type Evidence, type EvidenceSources } from "./evidence.js";
import type { PlannerMetrics } from "./metrics.js";
import type { ModelCaller } from "./model-caller.js";
import { answerNowNote, buildPrompt, holdsRestricted, toolBlock, triage, withoutToolsRule, type Turn } from "./prompt.js";
import { sensitivityOf, sensitivityOfReads } from "./sensitivity.js";
import type { LoopTurn, Prompt } from "./backends.js";
import type { Caps } from "./config.js";
import type { CostLedger } from "./cost-ledger.js";
import { checkCall, runTool, toolSpecs, undeclared, type ToolDef, type ToolResult } from "./tools.js";
import { fitTurns, label, newLoop, readAnswer, repairTurns, type LoopLimits, type LoopState, type LoopStop } from "./investigation.js";
import { insertProposedAction, type RawProposal } from "./proposals.js";
import { judgeProposal, requestedIntent } from "./trust-boundary.js";
import { diagnoseByRules } from "./rules.js";
import type { QueuedTask, TaskStore } from "./store.js";

/** What the diagnose node concluded, and who said it. */
export type Outcome =
  | { by: "model"; provider: string; group: string; diagnosis: string; answer: string; proposals: RawProposal[] }
  | { by: "rules"; why: string; diagnosis: string; answer: string; proposals: RawProposal[] };

const MAX_TURNS = 20;

/** Turns of one task replace that task's earlier turns (a retried attempt does not repeat the question). */
export function mergeTurns(a: Turn[], b: Turn[]): Turn[] {
  const replaced = new Set(b.map((t) => `${t.task_id}:${t.role}`));
  return [...a.filter((t) => !replaced.has(`${t.task_id}:${t.role}`)), ...b].slice(-MAX_TURNS);
}

export const PlannerState = Annotation.Root({
  /** The conversation, carried across tasks by the checkpointer (thread_id = conversation_id). */
  history: Annotation<Turn[]>({ reducer: mergeTurns, default: () => [] }),
  task_id: Annotation<string>(),
  question: Annotation<string>(),
  agent: Annotation<string | null>(),
  evidence: Annotation<Evidence | null>(),
  outcome: Annotation<Outcome | null>(),
  proposals: Annotation<TaskProposal[]>(),
  answer: Annotation<string | null>(),
  /** The investigation of this task (tool calls and answers, counters); cleared when the task ends. */
  loop: Annotation<LoopState | null>(),
});
export type PlannerStateType = typeof PlannerState.State;

/** Per-run things that must not be checkpointed (the task row, the trace context). */
export interface RunContext {
  task: QueuedTask;
  parent: Context;
  spec: FleetSpec | undefined;
  /** Set by diagnose (and the tools): the task touches a `sensitive: true` service or node. */
  sensitive?: boolean;
  /** Set by diagnose: the task is restricted, or its conversation holds restricted turns. */
  restricted?: boolean;
}

export interface GraphDeps {
  actions: ActionsRepository;
  store: TaskStore;
  sources: EvidenceSources;
  caller: ModelCaller;
  ledger: Pick<CostLedger, "taskSpentUsd">;
  caps: Caps;
  /** The investigation's tools (`TOOLS`, plus any the process adds). */
  tools: readonly ToolDef[];
  loop: LoopLimits;
  checkpointer: BaseCheckpointSaver;
  metrics: PlannerMetrics;
  logger: Logger;
  actionTtlMs: number;
  eventsWindowMs: number;
  actor: string;
  clock: () => Date;
}

export function buildPlannerGraph(deps: GraphDeps, runs: Map<string, RunContext>) {
  const { store } = deps;
  const runOf = (state: PlannerStateType): RunContext => {
    const r = runs.get(state.task_id);
    if (!r) throw new Error(`no run context for task ${state.task_id}`);
    return r;
  };

  async function triageNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const agent = triage(run.task.targetAgent, run.task.source, run.task.content, run.task.evidence);
    await store.setAgent(state.task_id, agent);
    await store.addStep(state.task_id, "triage", `agent: ${agent}${run.task.targetAgent ? " (asked for)" : ""}`);
    return { agent };
  }

  async function gatherNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const evidence = await withSpan("planner.gather", { parent: run.parent }, () =>
      gatherEvidence(
        { ...deps.sources, spec: async () => (run.spec = await deps.sources.spec()) },
        { question: state.question, agent: state.agent ?? "diagnostician", attached: run.task.evidence, now: deps.clock(), eventsWindowMs: deps.eventsWindowMs },
        (kind, message) => store.addStep(state.task_id, kind, message),
      ),
    );
    return { evidence };
  }

  const tools = deps.tools;
  const specs = toolSpecs(tools);
  const limits = deps.loop;
  const maxRounds = limits.maxSteps + 6;
  const step = (taskId: string) => (kind: TaskStep["kind"], message: string) => store.addStep(taskId, kind, message);

  /** Why the investigation must end now, if it must: its step, wall-time or round limit, or the task's cost reservation. */
  async function limitReached(state: PlannerStateType, loop: LoopState, prompt: () => Prompt): Promise<{ reason: LoopStop; why: string } | null> {
    if (limits.maxSteps === 0) return null;
    if (loop.toolCalls >= limits.maxSteps) return { reason: "steps", why: `its step limit of ${limits.maxSteps} tool call(s) is reached` };
    const elapsed = deps.clock().getTime() - loop.startedAt;
    if (elapsed >= limits.maxMs) return { reason: "time", why: `its wall-time limit of ${duration(limits.maxMs)} is reached (${duration(elapsed)} spent)` };
    if (loop.rounds >= maxRounds) return { reason: "rounds", why: `${loop.rounds} model rounds were made` };
    // Investigating with Claude: one more round and then the answer must both still fit the task's cap.
    if (loop.lastProvider === "anthropic") {
      const spent = await deps.ledger.taskSpentUsd(state.task_id);
      const need = 2 * deps.caller.claudeWorstCaseUsd(prompt());
      if (spent + need > deps.caps.perTaskUsd + 1e-9) return { reason: "cost", why: `the task's cost reservation: $${spent.toFixed(4)} of its $${deps.caps.perTaskUsd} cap is spent, and one more round and the answer could need $${need.toFixed(4)}` };
    }
    return null;
  }

  /**
   * One round of the investigation: the model (routed, within the caps) either asks for read-only tools, which the
   * `tools` node runs, or answers. A malformed call or answer is shown to the same model once with the error; a
   * second routes past it (the next route within the caps, then the runbooks). Limits end the investigation with an
   * answer from what was gathered.
   */
  async function diagnoseNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const agent = state.agent ?? "diagnostician";
    const evidence = state.evidence;
    const earlier = state.history.filter((t) => t.task_id !== state.task_id);
    const write = step(state.task_id);
    const loop: LoopState = state.loop ? { ...state.loop } : newLoop(deps.clock());
    if (loop.rounds === 0) {
      // A follow-up to a restricted question carries that question in its history: it stays local too.
      const inheritsRestricted = !run.task.restricted && holdsRestricted(earlier);
      if (inheritsRestricted) await write("triage", "local only: this conversation holds restricted turns");
      run.restricted = run.task.restricted || inheritsRestricted;
      // Sensitivity is the spec's, whoever filed the task: a sensitive service's data stays with the local model.
      const sens = sensitivityOf(run.spec, evidence);
      if (sens.sensitive) {
        run.sensitive = true;
        await write("triage", `local only: ${sens.why}`);
      }
    }
    const repair = loop.repair;
    const makePrompt = (max?: number): Prompt => {
      const base = buildPrompt(agent, state.question, earlier, evidence, max);
      const turns = [...loop.turns, ...(loop.stop ? [{ role: "user" as const, content: answerNowNote(loop.stop) }] : []), ...(repair?.turns ?? [])];
      const p: Prompt = { ...base, loop: max !== undefined ? fitTurns(turns, Math.max(800, max * 2)) : turns };
      if (specs.length > 0 && limits.maxSteps > 0) p.tools = specs;
      else p.system = withoutToolsRule(p.system);
      if (loop.stop !== null || repair?.answerNow === true || limits.maxSteps === 0) p.answerNow = true;
      return p;
    };
    if (loop.stop === null && repair === null) {
      const hit = await limitReached(state, loop, makePrompt);
      if (hit) {
        loop.stop = hit.why;
        deps.metrics.loopStops.inc({ reason: hit.reason });
        await write("progress", `investigation stopped: ${hit.why}; asking for the answer from what was gathered`);
      }
    }
    loop.rounds += 1;
    const ctx = { taskId: state.task_id, agent, source: run.task.source, restricted: run.restricted === true, sensitive: run.sensitive === true, parent: run.parent };
    const got = await deps.caller.call(ctx, makePrompt, { avoid: loop.avoid });
    if (got.served === "rules") {
      const r = diagnoseByRules(evidence ?? emptyEvidence(), got.why);
      await write("diagnosis", `rule-based (${got.route.reason}): ${r.runbooks.join(", ") || "no runbook matched"}`);
      return { loop: { ...loop, pending: [], repair: null }, outcome: { by: "rules", why: got.why, diagnosis: r.diagnosis, answer: r.answer, proposals: r.proposals } };
    }
    loop.lastProvider = got.provider;
    const a = got.answer;
    const verdict = readAnswer(a, tools, loop.stop !== null || repair?.answerNow === true || limits.maxSteps === 0);
    if (verdict.kind === "answer") {
      if (repair) await write("progress", `${label(got)} answered usably after the repair retry`);
      await write("diagnosis", `${got.provider} (${got.group}, ${got.route.reason}): ${verdict.answer.diagnosis}`);
      return { loop: { ...loop, pending: [], repair: null }, outcome: { by: "model", provider: got.provider, group: got.group, diagnosis: verdict.answer.diagnosis, answer: verdict.answer.answer, proposals: verdict.answer.proposals } };
    }
    if (verdict.kind === "calls") {
      if (repair) await write("progress", `${label(got)} made a usable call after the repair retry`);
      const turn: LoopTurn = { role: "assistant", text: a.text.slice(0, 2000), calls: verdict.calls };
      return { loop: { ...loop, repair: null, turns: [...loop.turns, turn], pending: verdict.calls } };
    }
    // Unusable: shown once to the same model with the error; a second time routes past it.
    if (repair === null || repair.provider !== got.provider) {
      await write("error", `${label(got)} answered unusable output (${verdict.reason}); asking it once more with the error`);
      return { loop: { ...loop, pending: [], repair: { provider: got.provider, turns: repairTurns(a, verdict), answerNow: verdict.answerNow } } };
    }
    const avoid = [...new Set([...loop.avoid, repair.provider, got.provider])];
    await write("error", `${label(got)} answered unusable output again (${verdict.reason}); routing past ${avoid.map((p) => (p === "ollama" ? "the local model" : "Claude")).join(" and ")}`);
    return { loop: { ...loop, pending: [], repair: null, avoid } };
  }

  /** Runs the calls the model asked for, each a step of the task and a span of the trace, under the step limit. */
  async function toolsNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const loop = state.loop ?? newLoop(deps.clock());
    const write = step(state.task_id);
    let spec: FleetSpec | undefined = run.spec;
    if (!spec) {
      try {
        spec = run.spec = await deps.sources.spec();
      } catch {
        spec = undefined;
      }
    }
    // Decide each call in order (limits, declared, sensitivity), run the allowed ones together, record them in order.
    type Planned = { id: string; name: string; shown: string } & ({ run: false; text: string; result: string; tool: string } | { run: true; tool: ToolDef; args: unknown; answer: Promise<ToolResult> });
    const planned: Planned[] = [];
    let used = loop.toolCalls;
    for (const call of loop.pending) {
      const checked = checkCall(tools, call.name, call.input);
      const shown = `${call.name} ${JSON.stringify(checked.ok ? checked.args : call.input).slice(0, 300)}`;
      const fail = (text: string, result: string) => planned.push({ id: call.id, name: call.name, shown, run: false, text, result, tool: checked.ok ? checked.tool.name : "unknown" });
      if (!checked.ok) {
        fail(`not run: ${checked.reason}`, "invalid");
        continue;
      }
      if (used >= limits.maxSteps) {
        fail("not run: the investigation's step limit is reached", "limit");
        continue;
      }
      used += 1;
      if (!spec) {
        fail("not run: the fleet spec could not be read", "error");
        continue;
      }
      const reads = checked.tool.reads(checked.args, spec);
      const missing = undeclared(reads, spec);
      if (missing) {
        fail(`not run: ${missing}`, "undeclared");
        continue;
      }
      // What a tool reads from a sensitive service or node keeps the rest of the task local, before any model sees it.
      const sens = sensitivityOfReads(spec, reads);
      if (sens.sensitive && run.sensitive !== true) {
        run.sensitive = true;
        await write("triage", `local only: ${sens.why}`);
      }
      const toolCtx = { sources: deps.sources, actions: deps.actions, spec, now: deps.clock(), eventsWindowMs: deps.eventsWindowMs, logBytes: limits.toolLogBytes };
      const answer = withSpan(`execute_tool ${checked.tool.name}`, { parent: run.parent, attributes: { "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": checked.tool.name, "gen_ai.tool.call.id": call.id, "steward.task_id": state.task_id } }, async (span) => {
        const r = await runTool(checked.tool, checked.args, toolCtx, { timeoutMs: limits.toolTimeoutMs, maxChars: limits.toolOutputChars });
        span.setAttribute("steward.tool.result", r.ok ? "ok" : r.kind);
        if (!r.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: r.text.slice(0, 200) });
        return r;
      });
      answer.catch(() => undefined); // awaited below, in order; a rejection meanwhile is not unhandled
      planned.push({ id: call.id, name: call.name, shown, run: true, tool: checked.tool, args: checked.args, answer });
    }
    const results: Extract<LoopTurn, { role: "tool" }>["results"] = [];
    for (const p of planned) {
      if (!p.run) {
        deps.metrics.toolCalls.inc({ tool: p.tool, result: p.result });
        await write("tool", `${p.shown}: ${p.text}`);
        results.push({ id: p.id, name: p.name, content: p.text, isError: true });
        continue;
      }
      const res = await p.answer;
      deps.metrics.toolCalls.inc({ tool: p.tool.name, result: res.ok ? "ok" : res.kind });
      await write("tool", res.ok ? `${p.shown}: ${res.chars} characters${res.truncated ? ` (cut to ${limits.toolOutputChars})` : ""}` : `${p.shown}: ${res.kind === "timeout" ? "timed out" : "failed"}: ${res.text}`);
      results.push({ id: p.id, name: p.name, content: toolBlock(p.tool.name, p.args, res.text), isError: !res.ok });
    }
    return { loop: { ...loop, turns: [...loop.turns, { role: "tool", results }], pending: [], toolCalls: used } };
  }

  /** Every proposal crosses the trust boundary (trust-boundary.ts); a refused one is recorded with its reason, never dropped silently. */
  async function proposeNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const outcome = state.outcome;
    const proposals: TaskProposal[] = [];
    if (!outcome || outcome.proposals.length === 0) return { proposals };
    const spec = run.spec ?? (await deps.sources.spec());
    const targets = state.evidence?.targets ?? [];
    const nodes = [...new Set(targets.map((t) => t.node))];
    let world: WorldState | undefined;
    try {
      world = nodes.length > 0 ? (await deps.sources.world(nodes))?.world : undefined;
    } catch (err) {
      await store.addStep(state.task_id, "error", `world state unreadable for the proposals: ${(err as Error).message.slice(0, 200)}`);
    }
    const requested = requestedIntent(run.task.source, run.task.content);
    const seen = new Set<string>();
    for (const raw of outcome.proposals) {
      const c = judgeProposal({ targets, spec, world, requested, recentExits: state.evidence?.crashes ?? {}, proposal: raw });
      let p: TaskProposal;
      if (!c.ok) {
        deps.metrics.refusals.inc({ rule: c.rule });
        p = { action_kind: c.kind, node: c.node, service: c.service, accepted: false, reason: c.reason, action_id: null };
      } else if (seen.has(`${c.proposal.node}/${c.proposal.service}/${c.proposal.kind}`)) {
        p = { action_kind: c.proposal.kind, node: c.proposal.node, service: c.proposal.service, accepted: false, reason: "duplicate of an earlier proposal in the same answer", action_id: null };
      } else {
        const v = c.proposal;
        seen.add(`${v.node}/${v.service}/${v.kind}`);
        const res = await withSpan("planner.propose_action", { parent: run.parent, attributes: { "steward.node": v.node, "steward.service": v.service, "steward.action_kind": v.kind, "steward.task_id": state.task_id } }, async (span) => {
          const r = await insertProposedAction(deps.actions, v, { taskId: state.task_id, diagnosis: outcome.diagnosis, traceparent: traceparentOf() ?? null, now: deps.clock(), ttlMs: deps.actionTtlMs, actor: deps.actor, modelWritten: outcome.by === "model" });
          span.setAttribute("steward.proposed", r.inserted);
          if (r.actionId) span.setAttribute("steward.action_id", r.actionId);
          return r;
        });
        p = res.inserted
          ? { action_kind: v.kind, node: v.node, service: v.service, accepted: true, reason: v.reason, action_id: res.actionId }
          : { action_kind: v.kind, node: v.node, service: v.service, accepted: true, reason: `already open as action ${res.actionId ?? "?"} (${res.state ?? "?"}), left as it was: ${v.reason}`, action_id: res.actionId };
      }
      deps.metrics.proposals.inc({ accepted: String(p.accepted) });
      await store.addProposal(state.task_id, p);
      await store.addStep(state.task_id, "proposal", p.accepted ? `${p.action_kind} ${p.service} on ${p.node}: pending approval${p.action_id ? ` (action ${p.action_id})` : ""}` : `refused ${p.action_kind} ${p.service ?? "?"} on ${p.node ?? "?"}: ${p.reason}`);
      proposals.push(p);
    }
    return { proposals };
  }

  async function reportNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const o = state.outcome;
    const lines = [o?.answer ?? "No answer."];
    if (o && o.diagnosis && !o.answer.includes(o.diagnosis)) lines.push("", `Diagnosis: ${o.diagnosis}`);
    const accepted = (state.proposals ?? []).filter((p) => p.accepted);
    const dropped = (state.proposals ?? []).filter((p) => !p.accepted);
    if (accepted.length > 0) lines.push("", "Proposed actions (pending your approval):", ...accepted.map((p) => `- ${p.action_kind} ${p.service} on ${p.node}${p.action_id ? ` (action ${p.action_id})` : ""}`));
    if (dropped.length > 0) lines.push("", "Refused proposals (never executed):", ...dropped.map((p) => `- ${p.action_kind} ${p.service ?? "?"} on ${p.node ?? "?"}: ${p.reason}`));
    const answer = lines.join("\n");
    const loop = state.loop;
    if (loop && loop.toolCalls > 0) deps.metrics.loopToolCalls.observe(loop.toolCalls);
    await store.addStep(state.task_id, "report", `answered${o ? ` by ${o.by === "model" ? `${o.provider} (${o.group})` : "the rule-based runbooks"}` : ""}`);
    // An answer drawn from restricted (or sensitive) data is restricted data, and so is a question about a sensitive
    // service: a follow-up in the same conversation stays local too.
    const run = runOf(state);
    const restricted = run.task.restricted || run.sensitive === true || holdsRestricted(state.history);
    const turns: Turn[] = [{ role: "assistant", content: answer.slice(0, 2000), task_id: state.task_id, ...(restricted ? { restricted } : {}) }];
    if (run.sensitive && !run.task.restricted) turns.unshift({ role: "user", content: run.task.content.slice(0, 4000), task_id: state.task_id, restricted: true });
    // The investigation's transcript holds tool output: it is not kept in the conversation's checkpoint.
    return { answer, history: turns, loop: null };
  }

  return new StateGraph(PlannerState)
    .addNode("triage", triageNode)
    .addNode("gather", gatherNode)
    .addNode("diagnose", diagnoseNode)
    .addNode("propose", proposeNode)
    .addNode("report", reportNode)
    .addEdge(START, "triage")
    .addEdge("triage", "gather")
    .addNode("tools", toolsNode)
    .addEdge("gather", "diagnose")
    .addConditionalEdges("diagnose", (state: PlannerStateType) => (state.outcome ? "propose" : (state.loop?.pending.length ?? 0) > 0 ? "tools" : "diagnose"), ["propose", "tools", "diagnose"])
    .addEdge("tools", "diagnose")
    .addEdge("propose", "report")
    .addEdge("report", END)
    .compile({ checkpointer: deps.checkpointer });
}

export type PlannerGraph = ReturnType<typeof buildPlannerGraph>;

/** `recursionLimit` bounds the graph's steps: each round of the investigation is up to two (diagnose, tools). */
export const runConfig = (task: QueuedTask, maxSteps = 8): LangGraphRunnableConfig => ({ configurable: { thread_id: task.conversationId }, recursionLimit: 2 * (maxSteps + 6) + 20 });

export function initialState(task: QueuedTask): Partial<PlannerStateType> {
  return {
    task_id: task.id,
    question: task.content,
    agent: null,
    evidence: null,
    outcome: null,
    proposals: [],
    answer: null,
    loop: null,
    history: [{ role: "user", content: task.content.slice(0, 4000), task_id: task.id, ...(task.restricted ? { restricted: true } : {}) }],
  };
}

const duration = (ms: number): string => (ms < 10_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`);

function emptyEvidence(): Evidence {
  return { targets: [], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: {}, attached: null, notes: [] };
}
