import type { BackendAnswer, LoopTurn, ToolCallRequest } from "./backends.js";
import type { CallOutcome, ModelProvider } from "./model-caller.js";
import { TRIM_NOTE, UNTRUSTED_CLOSE, UNTRUSTED_OPEN, badCallNote, repairNote } from "./prompt.js";
import { parseModelAnswer, type ModelAnswer } from "./proposals.js";
import { checkCall, type ToolDef } from "./tools.js";

/** The investigation's limits (config: LOOP_MAX_STEPS, LOOP_MAX_MS, TOOL_TIMEOUT_MS, TOOL_OUTPUT_CHARS, TOOL_LOG_BYTES). */
export interface LoopLimits {
  /** Tool calls per task; 0 turns the tools off (one call over the gathered evidence). */
  maxSteps: number;
  /** Wall time of the investigation, model calls included, after which the model must answer. */
  maxMs: number;
  toolTimeoutMs: number;
  toolOutputChars: number;
  toolLogBytes: number;
}

/** Why an investigation ended before the model said it knew enough: the `reason` label of `steward_planner_loop_stops_total`. */
export type LoopStop = "steps" | "time" | "rounds" | "cost";

/** The investigation of one task, carried from round to round in the graph's state. */
export interface LoopState {
  /** The model's tool calls and the tools' answers so far (malformed turns are not kept). */
  turns: LoopTurn[];
  /** Calls the model asked for in its last turn, checked, waiting for the `tools` node. */
  pending: ToolCallRequest[];
  /** A malformed answer or call waiting for its one repair: shown to the same model with the error. */
  repair: { provider: ModelProvider; turns: LoopTurn[]; answerNow: boolean } | null;
  /** Providers that answered unusably twice: routed past. */
  avoid: ModelProvider[];
  toolCalls: number;
  rounds: number;
  startedAt: number;
  /** Set once a limit is reached: why the model must answer now. */
  stop: string | null;
  lastProvider: ModelProvider | null;
}

export const newLoop = (now: Date): LoopState => ({ turns: [], pending: [], repair: null, avoid: [], toolCalls: 0, rounds: 0, startedAt: now.getTime(), stop: null, lastProvider: null });

export type Verdict =
  | { kind: "answer"; answer: ModelAnswer }
  | { kind: "calls"; calls: ToolCallRequest[] }
  /** `answerNow`: the repair asks for the answer (no tools); otherwise it may call tools again. */
  | { kind: "unusable"; reason: string; calls: ToolCallRequest[]; answerNow: boolean };

/**
 * Pure: what a model's turn is. The answer tool's input (or JSON text) is the answer; read-only tool calls are
 * checked against the tools' zod schemas, one bad call making the whole turn unusable (shown back with the error).
 */
export function readAnswer(a: BackendAnswer, tools: readonly ToolDef[], mustAnswer: boolean): Verdict {
  const calls = a.toolCalls ?? [];
  if (a.json === undefined && calls.length > 0) {
    if (mustAnswer) return { kind: "unusable", reason: "it called a tool after the investigation ended instead of answering", calls, answerNow: true };
    const checked: ToolCallRequest[] = [];
    for (const c of calls) {
      const r = checkCall(tools, c.name, jsonish(c.input));
      if (!r.ok) return { kind: "unusable", reason: `tool call ${String(c.name).slice(0, 60)}: ${r.reason}`, calls, answerNow: false };
      checked.push({ id: c.id, name: c.name, input: r.args });
    }
    return { kind: "calls", calls: checked };
  }
  const parsed = parseModelAnswer(a.text, a.json === undefined ? undefined : jsonish(a.json));
  return parsed.ok ? { kind: "answer", answer: parsed.value } : { kind: "unusable", reason: parsed.reason, calls: [], answerNow: true };
}

/** Some models send a call's arguments as a JSON string instead of an object: read it as the object it holds. */
function jsonish(v: unknown): unknown {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
}

/** The unusable turn as the model will see it once more: its own output, then the error (as the calls' results, or as a note). */
export function repairTurns(a: BackendAnswer, v: Extract<Verdict, { kind: "unusable" }>): LoopTurn[] {
  const text = a.json !== undefined ? a.text : a.text.slice(0, 2000);
  if (v.calls.length > 0) {
    const turns: LoopTurn[] = [
      { role: "assistant", text: a.text.slice(0, 2000), calls: v.calls.map((c) => ({ ...c, input: c.input && typeof c.input === "object" ? c.input : {} })) },
      { role: "tool", results: v.calls.map((c) => ({ id: c.id, name: c.name, content: badCallNote(v.reason), isError: true })) },
    ];
    if (v.answerNow) turns.push({ role: "user", content: repairNote(v.reason) });
    return turns;
  }
  return [
    { role: "assistant", text: text || "(empty answer)", calls: [] },
    { role: "user", content: repairNote(v.reason) },
  ];
}

/** Cuts the tools' answers (oldest first, each to an equal share) so the transcript fits `maxChars`; a cut block is closed again. */
export function fitTurns(turns: readonly LoopTurn[], maxChars: number): LoopTurn[] {
  const size = (ts: readonly LoopTurn[]) => JSON.stringify(ts).length;
  if (size(turns) <= maxChars) return [...turns];
  const results = turns.reduce((n, t) => n + (t.role === "tool" ? t.results.length : 0), 0);
  const share = Math.max(400, Math.floor(maxChars / Math.max(1, results)));
  return turns.map((t) =>
    t.role !== "tool"
      ? t
      : {
          ...t,
          results: t.results.map((r) => {
            if (r.content.length <= share) return r;
            const cut = r.content.slice(0, share);
            const open = cut.lastIndexOf(UNTRUSTED_OPEN) > cut.lastIndexOf(UNTRUSTED_CLOSE);
            return { ...r, content: `${cut}${open ? `\n${UNTRUSTED_CLOSE}` : ""}${TRIM_NOTE}` };
          }),
        },
  );
}

export const label = (o: Extract<CallOutcome, { served: "model" }>): string => `${o.provider === "ollama" ? "the local model" : "Claude"} (${o.group})`;
