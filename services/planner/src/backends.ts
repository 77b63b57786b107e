import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";

/** A read-only tool the model may call, as both APIs describe one: a name, what it does, a JSON schema of its input. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** One tool call a model asked for. `id` is the API's (Anthropic) or the planner's own (Ollama gives none). */
export interface ToolCallRequest {
  id: string;
  name: string;
  input: unknown;
}

/** A turn of the investigation after the operator's request: the model's tool calls, the tools' answers, a note from the planner. */
export type LoopTurn =
  | { role: "assistant"; text: string; calls: ToolCallRequest[] }
  | { role: "tool"; results: { id: string; name: string; content: string; isError: boolean }[] }
  | { role: "user"; content: string };

/** One prompt, backend-neutral. `schema` is the JSON schema the answer must follow (structured output). */
export interface Prompt {
  system: string;
  /** Earlier turns of the conversation, oldest first. */
  history: { role: "user" | "assistant"; content: string }[];
  user: string;
  schema: Record<string, unknown>;
  schemaName: string;
  /** The investigation so far (tool calls and their answers), after `user`. */
  loop?: LoopTurn[];
  /** The read-only tools of the investigation. Without them (or with `answerNow`) the model must answer with `schema`. */
  tools?: ToolSpec[];
  /** The model must answer now: Ollama gets no tools and `format`; Claude is forced to the answer tool. */
  answerNow?: boolean;
}

export interface BackendAnswer {
  text: string;
  /** Set when the model answered through the answer tool (its input) rather than as text. */
  json?: unknown;
  /** Read-only tool calls the model asked for instead of answering (never the answer tool). */
  toolCalls?: ToolCallRequest[];
  inputTokens: number;
  outputTokens: number;
  /** Prompt-cache tokens Anthropic reports apart from `inputTokens` (0 elsewhere). */
  cacheWriteTokens?: number;
  cacheReadTokens?: number;
  model: string;
}

/** A backend error with the kind the router cares about. */
export class BackendError extends Error {
  constructor(
    readonly provider: "ollama" | "anthropic",
    readonly kind: "unreachable" | "timeout" | "overloaded" | "rate_limited" | "rejected" | "error",
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "BackendError";
  }
}

export interface LocalBackend {
  /** Up when `/api/tags` answered within the health timeout and lists the model; a circuit avoids asking again while down. */
  health(model: string): Promise<"up" | "down">;
  chat(model: string, numCtx: number, prompt: Prompt, onProgress?: (chars: number) => void): Promise<BackendAnswer>;
  /** A call failed: count the backend as down for the circuit's duration. */
  trip(): void;
}

export interface ClaudeBackend {
  chat(prompt: Prompt, maxTokens: number): Promise<BackendAnswer>;
}

const withTimeout = (ms: number): typeof fetch => (input, init) => {
  const signals = [AbortSignal.timeout(ms)];
  if (init?.signal) signals.push(init.signal);
  return fetch(input, { ...init, signal: AbortSignal.any(signals) });
};

const isTimeout = (err: unknown): boolean => {
  const e = err as { name?: string; cause?: { name?: string } };
  return e?.name === "TimeoutError" || e?.cause?.name === "TimeoutError" || e?.name === "AbortError";
};

export interface OllamaOptions {
  url: string;
  timeoutMs: number;
  healthTimeoutMs: number;
  circuitMs: number;
  /** How long a good health answer is trusted. */
  healthTtlMs?: number;
  clock?: () => number;
}

/** Ollama gives tool calls no id; the planner numbers them (ids only pair a call with its answer in the transcript). */
let callSeq = 0;

/** Ollama through the `ollama` npm client: streaming chat (NDJSON), `format` = the JSON schema, `num_ctx` per group. */
export function createOllamaBackend(opts: OllamaOptions): LocalBackend {
  const clock = opts.clock ?? Date.now;
  const probe = new Ollama({ host: opts.url, fetch: withTimeout(opts.healthTimeoutMs) });
  const client = new Ollama({ host: opts.url, fetch: withTimeout(opts.timeoutMs) });
  const ttl = opts.healthTtlMs ?? 5000;
  let downUntil = 0;
  let known: { at: number; models: Set<string> } | undefined;
  let inflight: Promise<Set<string> | undefined> | undefined;

  const hasModel = (models: Set<string>, model: string): boolean => models.has(model) || (!model.includes(":") && models.has(`${model}:latest`));

  async function listModels(): Promise<Set<string> | undefined> {
    try {
      const r = await probe.list();
      const models = new Set(r.models.flatMap((m) => [m.name, m.model]));
      known = { at: clock(), models };
      return models;
    } catch {
      known = undefined;
      downUntil = clock() + opts.circuitMs;
      return undefined;
    }
  }

  return {
    async health(model) {
      const now = clock();
      if (now < downUntil) return "down";
      let models = known && now - known.at < ttl ? known.models : undefined;
      if (!models) {
        inflight ??= listModels().finally(() => (inflight = undefined));
        models = await inflight;
      }
      return models && hasModel(models, model) ? "up" : "down";
    },

    async chat(model, numCtx, prompt, onProgress) {
      const offered = prompt.tools && !prompt.answerNow ? [answerTool(prompt), ...prompt.tools] : undefined;
      const messages = [{ role: "system", content: prompt.system }, ...prompt.history, { role: "user", content: prompt.user }, ...ollamaTurns(prompt.loop ?? [])];
      try {
        // With tools offered the answer comes as the answer tool's call (or JSON text); `format` would forbid tool calls.
        const stream = await client.chat({ model, messages, stream: true, ...(offered ? { tools: offered.map((t) => ({ type: "function", function: t })) } : { format: prompt.schema }), options: { num_ctx: numCtx, temperature: 0 } });
        let text = "";
        let inputTokens = 0;
        let outputTokens = 0;
        const calls: { name: string; arguments: unknown }[] = [];
        for await (const part of stream) {
          text += part.message?.content ?? "";
          for (const c of part.message?.tool_calls ?? []) calls.push({ name: c.function?.name ?? "", arguments: c.function?.arguments });
          onProgress?.(text.length);
          if (part.done) {
            inputTokens = part.prompt_eval_count ?? 0;
            outputTokens = part.eval_count ?? 0;
          }
        }
        const out: BackendAnswer = { text, inputTokens, outputTokens, model };
        const answer = calls.find((c) => c.name === prompt.schemaName);
        const others = calls.filter((c) => c.name !== prompt.schemaName);
        if (others.length > 0) out.toolCalls = others.map((c) => ({ id: `call_${(++callSeq).toString(36)}`, name: c.name, input: c.arguments }));
        else if (answer) {
          out.json = answer.arguments;
          out.text = JSON.stringify(answer.arguments ?? null);
        }
        return out;
      } catch (err) {
        const status = (err as { status_code?: number }).status_code;
        if (isTimeout(err)) throw new BackendError("ollama", "timeout", `ollama did not answer within ${opts.timeoutMs} ms`);
        if (status !== undefined) throw new BackendError("ollama", "rejected", `ollama answered ${status}: ${(err as Error).message}`, status);
        throw new BackendError("ollama", "unreachable", `ollama unreachable: ${(err as Error).message}`);
      }
    },

    trip() {
      downUntil = clock() + opts.circuitMs;
      known = undefined;
    },
  };
}

export interface ClaudeOptions {
  apiKey: string;
  baseUrl: string | undefined;
  model: string;
  maxRetries: number;
  timeoutMs: number;
}

/** Claude through `@anthropic-ai/sdk`; structured output by a forced tool whose input schema is the answer's. */
export function createClaudeBackend(opts: ClaudeOptions): ClaudeBackend {
  const client = new Anthropic({ apiKey: opts.apiKey, baseURL: opts.baseUrl ?? null, maxRetries: opts.maxRetries, timeout: opts.timeoutMs });
  return {
    async chat(prompt, maxTokens) {
      try {
        const tools = [answerTool(prompt), ...(prompt.tools ?? [])];
        // Investigating, the model must call a tool (a read-only one, or the answer tool when it knows enough).
        const choice: Anthropic.ToolChoice = prompt.tools && !prompt.answerNow ? { type: "any" } : { type: "tool", name: prompt.schemaName };
        const msg = await client.messages.create({
          model: opts.model,
          max_tokens: maxTokens,
          // The static part (tools, then the system prompt) is the cache prefix: marked once, read back on later calls.
          system: [{ type: "text", text: prompt.system, cache_control: { type: "ephemeral" } }],
          messages: anthropicMessages(prompt),
          tools: tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters as Anthropic.Tool.InputSchema })),
          tool_choice: choice,
        });
        let text = "";
        let json: unknown;
        const calls: ToolCallRequest[] = [];
        for (const block of msg.content) {
          if (block.type === "tool_use" && block.name === prompt.schemaName) json = block.input;
          else if (block.type === "tool_use") calls.push({ id: block.id, name: block.name, input: block.input });
          else if (block.type === "text") text += block.text;
        }
        const out: BackendAnswer = {
          text: json !== undefined ? JSON.stringify(json) : text,
          inputTokens: msg.usage.input_tokens,
          outputTokens: msg.usage.output_tokens,
          cacheWriteTokens: msg.usage.cache_creation_input_tokens ?? 0,
          cacheReadTokens: msg.usage.cache_read_input_tokens ?? 0,
          model: msg.model,
        };
        // An answer ends the investigation: tool calls beside it are not run.
        if (json !== undefined) out.json = json;
        else if (calls.length > 0) out.toolCalls = calls;
        return out;
      } catch (err) {
        if (err instanceof Anthropic.APIError) {
          const status = err.status;
          const kind = status === 529 ? "overloaded" : status === 429 ? "rate_limited" : status === undefined ? "unreachable" : "error";
          throw new BackendError("anthropic", isTimeout(err) || err instanceof Anthropic.APIConnectionTimeoutError ? "timeout" : kind, `anthropic: ${status ?? "no answer"} ${err.message.slice(0, 300)}`, status);
        }
        throw new BackendError("anthropic", "error", `anthropic: ${(err as Error).message}`);
      }
    },
  };
}

/** The answer as a tool: the model calls it when it knows enough (Claude is forced to it when it must answer now). */
function answerTool(p: Prompt): ToolSpec {
  return { name: p.schemaName, description: "Report the diagnosis, the answer and the proposed actions. Call this when you know enough.", parameters: p.schema };
}

/** The investigation as Ollama's messages: assistant turns with `tool_calls`, one `tool` message per answer. */
type OllamaMessage = { role: string; content: string; tool_calls?: { function: { name: string; arguments: Record<string, unknown> } }[]; tool_name?: string };

function ollamaTurns(turns: readonly LoopTurn[]): OllamaMessage[] {
  return turns.flatMap((t): OllamaMessage[] => {
    switch (t.role) {
      case "assistant":
        return [{ role: "assistant", content: t.text, ...(t.calls.length > 0 ? { tool_calls: t.calls.map((c) => ({ function: { name: c.name, arguments: (c.input && typeof c.input === "object" ? c.input : {}) as Record<string, unknown> } })) } : {}) }];
      case "tool":
        return t.results.map((r) => ({ role: "tool", content: r.content, tool_name: r.name }));
      case "user":
        return [{ role: "user", content: t.content }];
      default: {
        const never: never = t;
        return never;
      }
    }
  });
}

/** The conversation as Anthropic's messages: tool_use blocks, tool_result blocks; consecutive user turns merged into one. */
function anthropicMessages(p: Prompt): Anthropic.MessageParam[] {
  const out: Anthropic.MessageParam[] = [...p.history.map((h) => ({ role: h.role, content: h.content }) as Anthropic.MessageParam), { role: "user", content: p.user }];
  const push = (role: "user" | "assistant", blocks: Anthropic.ContentBlockParam[]) => {
    const last = out[out.length - 1];
    if (last && last.role === role) {
      const prev: Anthropic.ContentBlockParam[] = typeof last.content === "string" ? [{ type: "text", text: last.content }] : [...last.content];
      last.content = [...prev, ...blocks];
    } else out.push({ role, content: blocks });
  };
  for (const t of p.loop ?? []) {
    switch (t.role) {
      case "assistant":
        push("assistant", [...(t.text.trim() ? [{ type: "text" as const, text: t.text }] : []), ...t.calls.map((c) => ({ type: "tool_use" as const, id: c.id, name: c.name, input: c.input ?? {} }))]);
        break;
      case "tool":
        push("user", t.results.map((r) => ({ type: "tool_result" as const, tool_use_id: r.id, content: r.content, ...(r.isError ? { is_error: true } : {}) })));
        break;
      case "user":
        push("user", [{ type: "text", text: t.content }]);
        break;
      default: {
        const never: never = t;
        return never;
      }
    }
  }
  return out;
}
