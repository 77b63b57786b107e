import Anthropic from "@anthropic-ai/sdk";
import { Ollama } from "ollama";

/** One prompt, backend-neutral. `schema` is the JSON schema the answer must follow (structured output). */
export interface Prompt {
  system: string;
  /** Earlier turns of the conversation, oldest first. */
  history: { role: "user" | "assistant"; content: string }[];
  user: string;
  schema: Record<string, unknown>;
  schemaName: string;
}

export interface BackendAnswer {
  text: string;
  /** Set when the backend returned structured data itself (Claude's tool input). */
  json?: unknown;
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
      const messages = [{ role: "system", content: prompt.system }, ...prompt.history, { role: "user", content: prompt.user }];
      try {
        const stream = await client.chat({ model, messages, stream: true, format: prompt.schema, options: { num_ctx: numCtx, temperature: 0 } });
        let text = "";
        let inputTokens = 0;
        let outputTokens = 0;
        for await (const part of stream) {
          text += part.message?.content ?? "";
          onProgress?.(text.length);
          if (part.done) {
            inputTokens = part.prompt_eval_count ?? 0;
            outputTokens = part.eval_count ?? 0;
          }
        }
        return { text, inputTokens, outputTokens, model };
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
        const msg = await client.messages.create({
          model: opts.model,
          max_tokens: maxTokens,
          // The static part (tools, then the system prompt) is the cache prefix: marked once, read back on later calls.
          system: [{ type: "text", text: prompt.system, cache_control: { type: "ephemeral" } }],
          messages: [...prompt.history, { role: "user", content: prompt.user }],
          tools: [{ name: prompt.schemaName, description: "Report the diagnosis, the answer and the proposed actions.", input_schema: prompt.schema as Anthropic.Tool.InputSchema }],
          tool_choice: { type: "tool", name: prompt.schemaName },
        });
        let text = "";
        let json: unknown;
        for (const block of msg.content) {
          if (block.type === "tool_use" && block.name === prompt.schemaName) json = block.input;
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
        if (json !== undefined) out.json = json;
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
