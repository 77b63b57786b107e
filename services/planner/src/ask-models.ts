import type { Prompt } from "./backends.js";
import type { CallContext, CallOutcome, ModelCaller, ModelProvider } from "./model-caller.js";
import { parseModelAnswer, type ModelAnswer } from "./proposals.js";
import type { Route } from "./router.js";

/** What asking the models for one answer came to: a usable answer from a model, or the runbooks and why. */
export type Asked =
  | { by: "model"; provider: ModelProvider; group: string; route: Route; answer: ModelAnswer }
  | { by: "rules"; route: Route; why: string };

export type StepWriter = (kind: "error" | "progress", message: string) => Promise<void>;

/** The model's unusable output goes back to it as its own turn, with what was wrong, and the same request again. */
export function repairPrompt(p: Prompt, unusable: string, reason: string): Prompt {
  return {
    ...p,
    history: [...p.history, { role: "user", content: p.user }, { role: "assistant", content: unusable.slice(0, 2000) || "(empty answer)" }],
    user: `Your answer could not be used: ${reason}. Answer the same request again with ONLY the JSON object described in the instructions (keys diagnosis, answer, proposals), nothing before or after it.`,
  };
}

const label = (o: Extract<CallOutcome, { served: "model" }>): string => `${o.provider === "ollama" ? "the local model" : "Claude"} (${o.group})`;

/**
 * Asks for an answer the way the fail-over says: a route's unusable answer is retried once with the error
 * shown to the model; a second unusable answer routes past that provider (the next route, within the cost caps the
 * caller enforces), and when none is left the runbooks answer. Every call is recorded by the caller (so cost is
 * counted only for calls made) and every turn of this is a step of the task.
 */
export async function askModels(caller: ModelCaller, ctx: CallContext, makePrompt: (maxTokens?: number) => Prompt, step: StepWriter): Promise<Asked> {
  const avoid: ModelProvider[] = [];
  // At most one round per provider: each round ends with an answer, the runbooks, or one more provider avoided.
  for (let round = 0; round < 3; round++) {
    const first = await caller.call(ctx, makePrompt, { avoid });
    if (first.served === "rules") return { by: "rules", route: first.route, why: first.why };
    const parsed = parseModelAnswer(first.answer.text, first.answer.json);
    if (parsed.ok) return { by: "model", provider: first.provider, group: first.group, route: first.route, answer: parsed.value };
    await step("error", `${label(first)} answered unusable output (${parsed.reason}); asking it once more with the error`);

    const again = await caller.call(ctx, (max) => repairPrompt(makePrompt(max), first.answer.text, parsed.reason), { avoid });
    if (again.served === "rules") return { by: "rules", route: again.route, why: again.why };
    const repaired = parseModelAnswer(again.answer.text, again.answer.json);
    if (repaired.ok) {
      await step("progress", `${label(again)} answered usably after the repair retry`);
      return { by: "model", provider: again.provider, group: again.group, route: again.route, answer: repaired.value };
    }
    for (const p of new Set([first.provider, again.provider])) avoid.push(p);
    await step("error", `${label(again)} answered unusable output again (${repaired.reason}); routing past ${[...new Set(avoid)].map((p) => (p === "ollama" ? "the local model" : "Claude")).join(" and ")}`);
  }
  const last = await caller.call(ctx, makePrompt, { avoid: ["ollama", "anthropic"] });
  if (last.served === "rules") return { by: "rules", route: last.route, why: last.why };
  // Unreachable: with both providers avoided the router can only answer with the runbooks.
  throw new Error("a model served a call that avoided every model");
}
