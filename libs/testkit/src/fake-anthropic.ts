import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { listenOnLoopback, readJsonLoose } from "./loopback-server.js";

/**
 * A local server speaking Anthropic's Messages API (`POST /v1/messages`), driven by scripted answers:
 * usage fields as the real API reports them, and the real error bodies for overloaded (529) and rate-limited (429).
 * It records every request it receives, so a test can assert it received nothing.
 */

export interface AnthropicMessagesRequest {
  model: string;
  max_tokens: number;
  system?: unknown;
  messages: { role: string; content: unknown }[];
  tools?: { name: string; input_schema: unknown }[];
  tool_choice?: { type: string; name?: string };
  stream?: boolean;
  [k: string]: unknown;
}

export type AnthropicAnswer =
  /** A text answer. */
  | ({ text: string } & AnswerUsage)
  /** A structured answer: a tool_use block when the request offered tools, the JSON as text otherwise. */
  | ({ json: unknown } & AnswerUsage)
  /** Tool calls by name (stop_reason `tool_use`), with optional text before them; ids are made up unless given. */
  | ({ toolUse: { name: string; input: unknown; id?: string }[]; text?: string } & AnswerUsage)
  | { error: "overloaded" | "rate_limit" | "api_error" | "invalid_request" }
  | { status: number; body: unknown };

/** Usage as the API reports it; cache tokens are counted apart from `input_tokens`, as Anthropic does. */
export interface AnswerUsage {
  inputTokens?: number;
  outputTokens?: number;
  cacheWriteTokens?: number;
  cacheReadTokens?: number;
  delayMs?: number;
}

export interface RecordedAnthropicRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  at: number;
}

export interface FakeAnthropicOptions {
  defaultAnswer?: AnthropicAnswer | ((req: AnthropicMessagesRequest) => AnthropicAnswer);
}

export interface FakeAnthropic {
  /** Base URL for the SDK's `baseURL` (it appends `/v1/messages`). */
  url: string;
  port: number;
  readonly requests: RecordedAnthropicRequest[];
  /** The bodies of every `POST /v1/messages`. */
  messages(): AnthropicMessagesRequest[];
  /** Answers every request the script does not cover from now on (a function can act as a model: see the request, pick an answer); `reset` restores the start's. */
  respond(answer: AnthropicAnswer | ((req: AnthropicMessagesRequest) => AnthropicAnswer)): void;
  script(...answers: AnthropicAnswer[]): void;
  reset(): void;
  close(): Promise<void>;
}

const ERRORS = {
  overloaded: { status: 529, type: "overloaded_error", message: "Overloaded" },
  rate_limit: { status: 429, type: "rate_limit_error", message: "Number of request tokens has exceeded your per-minute rate limit" },
  api_error: { status: 500, type: "api_error", message: "Internal server error" },
  invalid_request: { status: 400, type: "invalid_request_error", message: "invalid request" },
} as const;

const estimateTokens = (s: string): number => Math.ceil(s.length / 4);
const requestId = (): string => `req_${randomBytes(12).toString("hex")}`;

export async function startFakeAnthropic(opts: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  const requests: RecordedAnthropicRequest[] = [];
  const queue: AnthropicAnswer[] = [];
  const initial = opts.defaultAnswer ?? { json: { diagnosis: "ok", answer: "ok", proposals: [] } };
  let fallback = initial;

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "request-id": requestId(), ...headers });
    res.end(text);
  };
  const sendError = (res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void =>
    sendJson(res, status, { type: "error", error: { type, message }, request_id: requestId() }, headers);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const body = await readJsonLoose(req);
    requests.push({ method: req.method ?? "GET", path, headers: { ...req.headers }, body, at: Date.now() });
    if (req.method !== "POST" || path !== "/v1/messages") {
      sendError(res, 404, "not_found_error", `Not found: ${req.method} ${path}`);
      return;
    }
    if (!req.headers["x-api-key"] && !req.headers.authorization) {
      sendError(res, 401, "authentication_error", "x-api-key header is required");
      return;
    }
    const m = body as AnthropicMessagesRequest | undefined;
    if (!m || typeof m !== "object" || typeof m.model !== "string" || typeof m.max_tokens !== "number" || !Array.isArray(m.messages)) {
      sendError(res, 400, "invalid_request_error", "model, max_tokens and messages are required");
      return;
    }
    if (m.stream) {
      sendError(res, 400, "invalid_request_error", "this fake server does not stream");
      return;
    }
    const problem = toolProtocolProblem(m);
    if (problem) {
      sendError(res, 400, "invalid_request_error", problem);
      return;
    }
    const answer = queue.shift() ?? (typeof fallback === "function" ? fallback(m) : fallback);
    if ("error" in answer) {
      const e = ERRORS[answer.error];
      sendError(res, e.status, e.type, e.message, answer.error === "rate_limit" ? { "retry-after": "1" } : {});
      return;
    }
    if ("status" in answer) {
      sendJson(res, answer.status, answer.body);
      return;
    }
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    const promptText = JSON.stringify(m.system ?? "") + JSON.stringify(m.messages);
    const forcedTool = m.tools?.find((t) => m.tool_choice?.type === "tool" && t.name === m.tool_choice.name) ?? m.tools?.[0];
    let content: unknown[];
    let outText: string;
    let stopReason: string;
    if ("toolUse" in answer) {
      const blocks = answer.toolUse.map((c) => ({ type: "tool_use", id: c.id ?? `toolu_${randomBytes(10).toString("hex")}`, name: c.name, input: c.input }));
      content = [...(answer.text ? [{ type: "text", text: answer.text }] : []), ...blocks];
      outText = (answer.text ?? "") + JSON.stringify(answer.toolUse);
      stopReason = "tool_use";
    } else if ("json" in answer && forcedTool) {
      content = [{ type: "tool_use", id: `toolu_${randomBytes(10).toString("hex")}`, name: forcedTool.name, input: answer.json }];
      outText = JSON.stringify(answer.json);
      stopReason = "tool_use";
    } else {
      outText = "json" in answer ? JSON.stringify(answer.json) : answer.text;
      content = [{ type: "text", text: outText }];
      stopReason = "end_turn";
    }
    sendJson(res, 200, {
      id: `msg_${randomBytes(12).toString("hex")}`,
      type: "message",
      role: "assistant",
      model: m.model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: {
        input_tokens: answer.inputTokens ?? estimateTokens(promptText),
        output_tokens: Math.min(m.max_tokens, answer.outputTokens ?? estimateTokens(outText)),
        cache_creation_input_tokens: answer.cacheWriteTokens ?? 0,
        cache_read_input_tokens: answer.cacheReadTokens ?? 0,
      },
    });
  }

  const { url, port, close } = await listenOnLoopback((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, "api_error", String(err));
      else res.end();
    });
  });
  return {
    url,
    port,
    requests,
    messages: () => requests.filter((r) => r.path === "/v1/messages").map((r) => r.body as AnthropicMessagesRequest),
    script: (...answers) => void queue.push(...answers),
    respond(a) {
      fallback = a;
    },
    reset() {
      requests.length = 0;
      queue.length = 0;
      fallback = initial;
    },
    close,
  };
}

type Block = { type?: string; id?: string; tool_use_id?: string; text?: string };

/** The Messages API's rules for tool use, as the real API enforces them (400 invalid_request_error). */
function toolProtocolProblem(m: AnthropicMessagesRequest): string | undefined {
  const blocks = (c: unknown): Block[] => (Array.isArray(c) ? (c as Block[]) : []);
  const all = m.messages.flatMap((x) => blocks(x.content));
  if (all.some((b) => b.type === "tool_use" || b.type === "tool_result") && !(m.tools && m.tools.length > 0)) return "Requests which include `tool_use` or `tool_result` blocks must define tools.";
  for (const [i, msg] of m.messages.entries()) {
    if (Array.isArray(msg.content) && msg.content.length === 0) return `messages.${i}: all messages must have non-empty content`;
    if (blocks(msg.content).some((b) => b.type === "text" && !b.text)) return `messages.${i}: text content blocks must be non-empty`;
    const uses = blocks(msg.content).filter((b) => b.type === "tool_use").map((b) => b.id);
    if (msg.role !== "assistant" || uses.length === 0) continue;
    const next = m.messages[i + 1];
    const answered = new Set(next?.role === "user" ? blocks(next.content).filter((b) => b.type === "tool_result").map((b) => b.tool_use_id) : []);
    const missing = uses.filter((id) => !answered.has(id));
    if (missing.length > 0) return `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
  }
  return undefined;
}
