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
  const fallback = opts.defaultAnswer ?? { json: { diagnosis: "ok", answer: "ok", proposals: [] } };

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
    if ("json" in answer && forcedTool) {
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
    reset() {
      requests.length = 0;
      queue.length = 0;
    },
    close,
  };
}
