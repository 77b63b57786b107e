import type { IncomingMessage, ServerResponse } from "node:http";
import { listenOnLoopback, readJsonLoose } from "./loopback-server.js";

/**
 * A local server speaking Ollama's HTTP API (`GET /api/tags`, `POST /api/chat` with streaming NDJSON or a
 * single JSON answer), driven by scripted answers. It records every request it receives.
 */

export interface OllamaChatRequest {
  model: string;
  messages: { role: string; content: string; tool_calls?: { function: { name: string; arguments: unknown } }[]; tool_name?: string }[];
  /** Tools offered (Ollama's `tools`: `{type: "function", function: {name, description, parameters}}`). */
  tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  stream?: boolean;
  format?: unknown;
  options?: Record<string, unknown>;
  [k: string]: unknown;
}

export type OllamaAnswer =
  | { content: string; promptEvalCount?: number; evalCount?: number; delayMs?: number }
  /** Native tool calling: the model asks for these calls (streamed as `message.tool_calls`), with optional text before them. */
  | { toolCalls: { name: string; arguments: unknown }[]; content?: string; promptEvalCount?: number; evalCount?: number; delayMs?: number }
  | { status: number; error: string };

export interface RecordedOllamaRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  at: number;
}

/** `up`: answers; `down`: resets every connection; `hang`: accepts and never answers (a timing-out backend). */
export type FakeOllamaMode = "up" | "down" | "hang";

export interface FakeOllamaOptions {
  /** Models `/api/tags` lists; a chat for another model answers 404 like the real server. */
  models?: string[];
  /** Answer used when the script is empty (default: `{"diagnosis":"ok","answer":"ok","proposals":[]}`). */
  defaultAnswer?: OllamaAnswer | ((req: OllamaChatRequest) => OllamaAnswer);
  /** Characters per streamed chunk. */
  chunkChars?: number;
}

export interface FakeOllama {
  url: string;
  port: number;
  /** Every request, in arrival order. */
  readonly requests: RecordedOllamaRequest[];
  /** The bodies of every `/api/chat` request. */
  chats(): OllamaChatRequest[];
  /** Queue answers for the next chat requests (first in, first out). */
  /** Answers every request the script does not cover from now on (a function can act as a model: see the request, pick an answer); `reset` restores the start's. */
  respond(answer: OllamaAnswer | ((req: OllamaChatRequest) => OllamaAnswer)): void;
  script(...answers: OllamaAnswer[]): void;
  setMode(mode: FakeOllamaMode): void;
  setModels(models: string[]): void;
  reset(): void;
  close(): Promise<void>;
}

const estimateTokens = (s: string): number => Math.ceil(s.length / 4);

export async function startFakeOllama(opts: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const requests: RecordedOllamaRequest[] = [];
  const queue: OllamaAnswer[] = [];
  let models = opts.models ?? ["llama3.1:8b"];
  let mode: FakeOllamaMode = "up";
  const hanging = new Set<ServerResponse>();
  const chunkChars = opts.chunkChars ?? 8;
  const initial = opts.defaultAnswer ?? { content: JSON.stringify({ diagnosis: "ok", answer: "ok", proposals: [] }) };
  let fallback = initial;

  const sendJson = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const body = await readJsonLoose(req);
    requests.push({ method: req.method ?? "GET", path, headers: { ...req.headers }, body, at: Date.now() });
    if (mode === "down") {
      req.socket.destroy();
      return;
    }
    if (mode === "hang") {
      hanging.add(res);
      return;
    }
    if (req.method === "GET" && path === "/api/tags") {
      sendJson(res, 200, {
        models: models.map((name) => ({
          name,
          model: name,
          modified_at: "2025-01-01T00:00:00Z",
          size: 4_700_000_000,
          digest: "0".repeat(64),
          details: { format: "gguf", family: "llama", families: ["llama"], parameter_size: "8B", quantization_level: "Q4_0" },
        })),
      });
      return;
    }
    if (req.method === "GET" && path === "/api/version") {
      sendJson(res, 200, { version: "0.6.0" });
      return;
    }
    if (req.method === "POST" && path === "/api/chat") {
      const chat = body as OllamaChatRequest | undefined;
      if (!chat || typeof chat !== "object" || typeof chat.model !== "string") {
        sendJson(res, 400, { error: "model is required" });
        return;
      }
      if (!models.includes(chat.model)) {
        sendJson(res, 404, { error: `model "${chat.model}" not found, try pulling it first` });
        return;
      }
      const answer = queue.shift() ?? (typeof fallback === "function" ? fallback(chat) : fallback);
      if ("error" in answer) {
        sendJson(res, answer.status, { error: answer.error });
        return;
      }
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      const content = answer.content ?? "";
      const toolCalls = "toolCalls" in answer ? answer.toolCalls.map((c) => ({ function: { name: c.name, arguments: c.arguments } })) : undefined;
      const promptEval = answer.promptEvalCount ?? estimateTokens((chat.messages ?? []).map((m) => m.content).join("\n"));
      const evalCount = answer.evalCount ?? estimateTokens(content + (toolCalls ? JSON.stringify(toolCalls) : ""));
      const created = new Date().toISOString();
      const final = {
        model: chat.model,
        created_at: created,
        done: true,
        done_reason: "stop",
        total_duration: 1_000_000,
        load_duration: 100_000,
        prompt_eval_count: promptEval,
        prompt_eval_duration: 400_000,
        eval_count: evalCount,
        eval_duration: 500_000,
      };
      if (chat.stream === false) {
        sendJson(res, 200, { ...final, message: { role: "assistant", content, ...(toolCalls ? { tool_calls: toolCalls } : {}) } });
        return;
      }
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      for (let i = 0; i < content.length; i += chunkChars) {
        res.write(JSON.stringify({ model: chat.model, created_at: created, message: { role: "assistant", content: content.slice(i, i + chunkChars) }, done: false }) + "\n");
      }
      // As Ollama streams them: the tool calls whole, in one message chunk before the final one.
      if (toolCalls) res.write(JSON.stringify({ model: chat.model, created_at: created, message: { role: "assistant", content: "", tool_calls: toolCalls }, done: false }) + "\n");
      res.end(JSON.stringify({ ...final, message: { role: "assistant", content: "" } }) + "\n");
      return;
    }
    sendJson(res, 404, { error: "not found" });
  }

  const { url, port, close } = await listenOnLoopback((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: String(err) });
      else res.end();
    });
  });

  return {
    url,
    port,
    requests,
    chats: () => requests.filter((r) => r.path === "/api/chat").map((r) => r.body as OllamaChatRequest),
    script: (...answers) => void queue.push(...answers),
    respond(a) {
      fallback = a;
    },
    setMode(m) {
      mode = m;
      if (m !== "hang") {
        for (const r of hanging) r.socket?.destroy();
        hanging.clear();
      }
    },
    setModels(m) {
      models = m;
    },
    reset() {
      requests.length = 0;
      queue.length = 0;
      fallback = initial;
    },
    close,
  };
}
