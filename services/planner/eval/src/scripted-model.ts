import type { AnthropicAnswer, AnthropicMessagesRequest, OllamaAnswer, OllamaChatRequest } from "@steward/testkit";
import { splitAction, type EvalFixture } from "./fixture.js";

/**
 * The stand-in model for CI: per fixture, it asks for the fixture's rounds of tool calls through each API's native
 * tool calling (Ollama `tool_calls`, Anthropic `tool_use`), then answers with the fixture's diagnosis and proposals —
 * but only if what it was shown (the gathered evidence and the tools' answers, as the planner sent them) contains the
 * fixture's `needs`; otherwise it says what it did not see and proposes nothing. So a score under the stand-in says
 * the plumbing works (sources → tools → wire protocol → trust boundary → actions), never that a model is good.
 */

export interface ScriptedAnswer {
  diagnosis: string;
  answer: string;
  proposals: { kind: string; node: string; service: string; reason: string }[];
}

/** Pure: the stand-in's answer given everything it was shown. */
export function scriptedAnswer(f: EvalFixture, shown: string): ScriptedAnswer {
  const missing = f.script.needs.filter((n) => !shown.includes(n));
  if (missing.length > 0) return { diagnosis: `unknown: the stand-in was not shown ${missing.map((m) => JSON.stringify(m)).join(", ")}`, answer: "I could not find the cause.", proposals: [] };
  return { diagnosis: f.script.diagnosis, answer: f.script.answer, proposals: f.script.proposals.map((p) => ({ ...splitAction(p.action), reason: p.reason })) };
}

/**
 * One fixture's stand-in: it gives the fixture's rounds of tool calls in order (counting what it has asked for, since
 * the planner may leave a repaired turn out of later requests), then the answer; a request without tools (or forcing
 * the answer) gets the answer at once.
 */
export interface ScriptedModel {
  ollama(req: OllamaChatRequest): OllamaAnswer;
  anthropic(req: AnthropicMessagesRequest): AnthropicAnswer;
}

type Block = { type: string; text?: string; content?: unknown; name?: string };

function anthropicText(req: AnthropicMessagesRequest): string {
  const parts: string[] = [typeof req.system === "string" ? req.system : JSON.stringify(req.system ?? "")];
  for (const m of req.messages) {
    if (typeof m.content === "string") parts.push(m.content);
    else for (const b of m.content as Block[]) parts.push(typeof b.text === "string" ? b.text : typeof b.content === "string" ? b.content : JSON.stringify(b.content ?? ""));
  }
  return parts.join("\n");
}

export function scriptedModel(f: EvalFixture): ScriptedModel {
  let round = 0;
  return {
    ollama(req) {
      const next = f.script.rounds[round];
      if (req.tools && req.tools.length > 0 && next) {
        round += 1;
        return { toolCalls: next.map((c) => ({ name: c.tool, arguments: c.args })) };
      }
      return { content: JSON.stringify(scriptedAnswer(f, req.messages.map((m) => m.content).join("\n"))) };
    },
    anthropic(req) {
      const next = f.script.rounds[round];
      const forced = req.tool_choice?.type === "tool";
      if (!forced && req.tools && req.tools.length > 0 && next) {
        round += 1;
        return { toolUse: next.map((c) => ({ name: c.tool, input: c.args })) };
      }
      const answer = scriptedAnswer(f, anthropicText(req));
      // With tools offered the answer is the report_diagnosis tool, as a model would give it.
      if (!forced && req.tools?.some((t) => t.name === "report_diagnosis")) return { toolUse: [{ name: "report_diagnosis", input: answer }] };
      return { json: answer };
    },
  };
}
