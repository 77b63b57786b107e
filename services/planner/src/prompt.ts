import type { Prompt } from "./backends.js";
import type { Evidence } from "./evidence.js";
import { ANSWER_JSON_SCHEMA, PLANNER_ACTION_KINDS } from "./proposals.js";

export interface Turn {
  role: "user" | "assistant";
  content: string;
  task_id: string;
  /** Said in (or answered from) a restricted task: while this turn is in the history, every call stays local. */
  restricted?: boolean;
}

/** Restricted is a property of the data: a conversation holding a restricted turn is restricted as a whole. */
export const holdsRestricted = (turns: readonly Turn[]): boolean => turns.some((t) => t.restricted === true);

const SHAPE = `Answer ONLY with a JSON object {"diagnosis": string, "answer": string, "proposals": [{"kind", "node", "service", "reason"}]}.
Proposals may only use the kinds ${PLANNER_ACTION_KINDS.join(", ")} on a node and service named in the evidence; they wait for the operator's approval.
Propose nothing when the evidence does not support an action. Never propose shell commands or anything outside this catalog.`;

const SYSTEM: Record<string, string> = {
  diagnostician: `You are Steward's diagnostician. You find out why services in a small fleet misbehave, from the evidence given: drift findings, world state, recent events, the tail of a service's log and an excerpt of the declared fleet spec. Say what is wrong, why, and what would fix it.\n${SHAPE}`,
  "operator-answerer": `You are Steward's operator assistant. You answer the operator's questions about the fleet from the evidence given, briefly and truthfully; say when the evidence does not tell.\n${SHAPE}`,
};

export const TRIM_NOTE = "\n…(evidence trimmed to fit the local model's context)";

/**
 * Builds the prompt for a task: earlier turns of the conversation, the question and the evidence as JSON.
 * With `maxTokens` the evidence (then the history) is cut so the estimate fits.
 */
export function buildPrompt(agent: string, question: string, history: readonly Turn[], evidence: Evidence | null, maxTokens?: number): Prompt {
  const system = SYSTEM[agent] ?? SYSTEM["diagnostician"] ?? "";
  let turns = history.map((t) => ({ role: t.role, content: t.content }));
  let evidenceJson = JSON.stringify(evidence ?? {}, null, 1);
  if (maxTokens !== undefined) {
    turns = turns.slice(-4).map((t) => ({ role: t.role, content: t.content.slice(0, 1000) }));
    const fixed = system.length + turns.reduce((a, t) => a + t.content.length, 0) + question.length + JSON.stringify(ANSWER_JSON_SCHEMA).length + 200;
    const allowed = Math.max(400, maxTokens * 4 - fixed);
    if (evidenceJson.length > allowed) evidenceJson = evidenceJson.slice(0, allowed - TRIM_NOTE.length) + TRIM_NOTE;
  }
  return {
    system,
    history: turns,
    user: `Question: ${question}\n\nEvidence (JSON):\n${evidenceJson}`,
    schema: ANSWER_JSON_SCHEMA,
    schemaName: "report_diagnosis",
  };
}

const DIAGNOSE_WORDS = /\b(why|restart\w*|crash\w*|down|fail\w*|error\w*|unhealthy|broken|stopp?ed|exit\w*|dead|dying|slow|disk|fix\w*|drift)\b|not (running|working|starting|responding)/i;

/** Deterministic triage: the envelope's target agent, else drift-like work to the diagnostician, questions to the answerer. */
export function triage(targetAgent: string | null, source: string, content: string, attached: Record<string, unknown> | null): "diagnostician" | "operator-answerer" {
  if (targetAgent === "diagnostician" || targetAgent === "operator-answerer") return targetAgent;
  if (source === "supervisor" || (attached && "drift" in attached)) return "diagnostician";
  return DIAGNOSE_WORDS.test(content) ? "diagnostician" : "operator-answerer";
}
