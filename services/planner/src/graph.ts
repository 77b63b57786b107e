import { Annotation, END, START, StateGraph, type BaseCheckpointSaver, type LangGraphRunnableConfig } from "@langchain/langgraph";
import type { Context } from "@opentelemetry/api";
import { traceparentOf, withSpan } from "@steward/platform/tracing";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository } from "@steward/actions/repository";
import type { TaskProposal } from "@steward/contracts/task";
import type { WorldState } from "@steward/contracts/world-state";
import { gatherEvidence, type Evidence, type EvidenceSources } from "./evidence.js";
import type { PlannerMetrics } from "./metrics.js";
import type { ModelCaller } from "./model-caller.js";
import { buildPrompt, holdsRestricted, triage, type Turn } from "./prompt.js";
import { askModels } from "./ask-models.js";
import { sensitivityOf } from "./sensitivity.js";
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
});
export type PlannerStateType = typeof PlannerState.State;

/** Per-run things that must not be checkpointed (the task row, the trace context). */
export interface RunContext {
  task: QueuedTask;
  parent: Context;
  spec: FleetSpec | undefined;
  /** Set by diagnose: the task touches a `sensitive: true` service or node. */
  sensitive?: boolean;
}

export interface GraphDeps {
  actions: ActionsRepository;
  store: TaskStore;
  sources: EvidenceSources;
  caller: ModelCaller;
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

  async function diagnoseNode(state: PlannerStateType): Promise<Partial<PlannerStateType>> {
    const run = runOf(state);
    const agent = state.agent ?? "diagnostician";
    const evidence = state.evidence;
    const earlier = state.history.filter((t) => t.task_id !== state.task_id);
    // A follow-up to a restricted question carries that question in its history: it stays local too.
    const inheritsRestricted = !run.task.restricted && holdsRestricted(earlier);
    if (inheritsRestricted) await store.addStep(state.task_id, "triage", "local only: this conversation holds restricted turns");
    const restricted = run.task.restricted || inheritsRestricted;
    // Sensitivity is the spec's, whoever filed the task: a sensitive service's data stays with the local model.
    const sens = sensitivityOf(run.spec, evidence);
    run.sensitive = sens.sensitive;
    if (sens.sensitive) await store.addStep(state.task_id, "triage", `local only: ${sens.why}`);
    const sensitive = sens.sensitive;
    const asked = await askModels(deps.caller, { taskId: state.task_id, agent, source: run.task.source, restricted, sensitive, parent: run.parent }, (max) => buildPrompt(agent, state.question, earlier, evidence, max), (kind, message) => store.addStep(state.task_id, kind, message));
    let outcome: Outcome;
    if (asked.by === "rules") {
      const r = diagnoseByRules(evidence ?? emptyEvidence(), asked.why);
      outcome = { by: "rules", why: asked.why, diagnosis: r.diagnosis, answer: r.answer, proposals: r.proposals };
      await store.addStep(state.task_id, "diagnosis", `rule-based (${asked.route.reason}): ${r.runbooks.join(", ") || "no runbook matched"}`);
    } else {
      const a = asked.answer;
      outcome = { by: "model", provider: asked.provider, group: asked.group, diagnosis: a.diagnosis, answer: a.answer, proposals: a.proposals };
      await store.addStep(state.task_id, "diagnosis", `${asked.provider} (${asked.group}, ${asked.route.reason}): ${a.diagnosis}`);
    }
    return { outcome };
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
    await store.addStep(state.task_id, "report", `answered${o ? ` by ${o.by === "model" ? `${o.provider} (${o.group})` : "the rule-based runbooks"}` : ""}`);
    // An answer drawn from restricted (or sensitive) data is restricted data, and so is a question about a sensitive
    // service: a follow-up in the same conversation stays local too.
    const run = runOf(state);
    const restricted = run.task.restricted || run.sensitive === true || holdsRestricted(state.history);
    const turns: Turn[] = [{ role: "assistant", content: answer.slice(0, 2000), task_id: state.task_id, ...(restricted ? { restricted } : {}) }];
    if (run.sensitive && !run.task.restricted) turns.unshift({ role: "user", content: run.task.content.slice(0, 4000), task_id: state.task_id, restricted: true });
    return { answer, history: turns };
  }

  return new StateGraph(PlannerState)
    .addNode("triage", triageNode)
    .addNode("gather", gatherNode)
    .addNode("diagnose", diagnoseNode)
    .addNode("propose", proposeNode)
    .addNode("report", reportNode)
    .addEdge(START, "triage")
    .addEdge("triage", "gather")
    .addEdge("gather", "diagnose")
    .addEdge("diagnose", "propose")
    .addEdge("propose", "report")
    .addEdge("report", END)
    .compile({ checkpointer: deps.checkpointer });
}

export type PlannerGraph = ReturnType<typeof buildPlannerGraph>;

export const runConfig = (task: QueuedTask): LangGraphRunnableConfig => ({ configurable: { thread_id: task.conversationId } });

export function initialState(task: QueuedTask): Partial<PlannerStateType> {
  return {
    task_id: task.id,
    question: task.content,
    agent: null,
    evidence: null,
    outcome: null,
    proposals: [],
    answer: null,
    history: [{ role: "user", content: task.content.slice(0, 4000), task_id: task.id, ...(task.restricted ? { restricted: true } : {}) }],
  };
}

function emptyEvidence(): Evidence {
  return { targets: [], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: {}, attached: null, notes: [] };
}
