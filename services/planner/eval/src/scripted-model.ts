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

/** Pure: Ollama's next answer for this request. */
export function ollamaTurn(f: EvalFixture, req: OllamaChatRequest): OllamaAnswer {
  const round = req.messages.filter((m) => m.role === "assistant" && (m.tool_calls?.length ?? 0) > 0).length;
  const next = f.script.rounds[round];
  if (req.tools && req.tools.length > 0 && next) return { toolCalls: next.map((c) => ({ name: c.tool, arguments: c.args })) };
  return { content: JSON.stringify(scriptedAnswer(f, req.messages.map((m) => m.content).join("\n"))) };
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

/** Pure: Claude's next answer for this request (the answer as the `report_diagnosis` tool when tools are offered). */
export function anthropicTurn(f: EvalFixture, req: AnthropicMessagesRequest): AnthropicAnswer {
  const round = req.messages.filter((m) => m.role === "assistant" && Array.isArray(m.content) && (m.content as Block[]).some((b) => b.type === "tool_use" && b.name !== "report_diagnosis")).length;
  const next = f.script.rounds[round];
  const forced = req.tool_choice?.type === "tool";
  if (!forced && req.tools && req.tools.length > 0 && next) return { toolUse: next.map((c) => ({ name: c.tool, input: c.args })) };
  const answer = scriptedAnswer(f, anthropicText(req));
  if (!forced && req.tools?.some((t) => t.name === "report_diagnosis")) return { toolUse: [{ name: "report_diagnosis", input: answer }] };
  return { json: answer };
}
