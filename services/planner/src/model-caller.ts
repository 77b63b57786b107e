import { performance } from "node:perf_hooks";
import { SpanKind, type Context } from "@opentelemetry/api";
import { redactSecretsInText } from "@steward/platform/redact";
import { withSpan } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import { BackendError, type BackendAnswer, type ClaudeBackend, type LocalBackend, type LoopTurn, type Prompt } from "./backends.js";
import { groupFor, type ModelGroup, type PlannerConfig } from "./config.js";
import { costUsd, utcDay, type CostLedger } from "./cost-ledger.js";
import type { PlannerMetrics } from "./metrics.js";
import { estimateTokens, scoreRoute, type Route, type RouteInput } from "./router.js";
import type { TaskStore } from "./store.js";

export interface CallContext {
  taskId: string;
  agent: string;
  source: string;
  restricted: boolean;
  /** The task touches a `sensitive: true` service or node: local only, whoever filed it. */
  sensitive: boolean;
  parent: Context;
}

export type ModelProvider = "ollama" | "anthropic";

export interface CallOptions {
  /** Providers that already answered this task with unusable output (after a repair retry): route past them. */
  avoid?: readonly ModelProvider[];
}

export type CallOutcome =
  | { served: "model"; provider: "ollama" | "anthropic"; group: string; answer: BackendAnswer; route: Route; costUsd: number }
  | { served: "rules"; route: Route; why: string };

export interface ModelCallerDeps {
  config: Pick<PlannerConfig, "modelGroups" | "claude" | "prices">;
  local: LocalBackend;
  claude: ClaudeBackend | undefined;
  ledger: CostLedger;
  store: Pick<TaskStore, "addCall" | "addStep">;
  metrics: PlannerMetrics;
  logger: Logger;
  clock?: () => Date;
}

export interface ModelCaller {
  /**
   * One model call, routed by `scoreRoute`, re-routed on a backend failure or a refused reservation.
   * `makePrompt(maxTokens)` builds the prompt, trimmed to fit when a budget is given. Never throws on model trouble:
   * when no model can be used the outcome is `rules`.
   */
  call(ctx: CallContext, makePrompt: (maxTokens?: number) => Prompt, opts?: CallOptions): Promise<CallOutcome>;
  /** What a Claude call with this prompt would reserve: the worst case the cost caps are checked against. */
  claudeWorstCaseUsd(prompt: Prompt): number;
  /** Seconds spent waiting for models on a task so far; forgets the task. */
  takeModelSeconds(taskId: string): number;
}

/** Output tokens assumed when estimating a reservation: the whole max_tokens, so the real cost can only be lower. */
const INPUT_ESTIMATE_MARGIN = 1.25;

export const promptTokens = (p: Prompt): number =>
  estimateTokens(p.system + p.history.map((h) => h.content).join("\n") + p.user + JSON.stringify(p.schema) + (p.loop ? JSON.stringify(p.loop) : "") + (p.tools ? JSON.stringify(p.tools) : ""));

/** Every string that leaves the process in a prompt is redacted once more here, whatever built it. */
function redactPrompt(p: Prompt): Prompt {
  const out: Prompt = { ...p, system: redactSecretsInText(p.system), user: redactSecretsInText(p.user), history: p.history.map((h) => ({ role: h.role, content: redactSecretsInText(h.content) })) };
  if (p.loop) out.loop = p.loop.map(redactTurn);
  return out;
}

function redactTurn(t: LoopTurn): LoopTurn {
  switch (t.role) {
    case "assistant":
      return { ...t, text: redactSecretsInText(t.text) };
    case "tool":
      return { ...t, results: t.results.map((r) => ({ ...r, content: redactSecretsInText(r.content) })) };
    case "user":
      return { ...t, content: redactSecretsInText(t.content) };
    default: {
      const never: never = t;
      return never;
    }
  }
}

/** Why the runbooks answer: the local model's trouble, then why Claude could not take over. */
const WHY: Record<string, string> = {
  restricted: "the task is restricted to the local model",
  sensitive: "the task touches a service or node marked sensitive in fleet.yaml, so it stays with the local model",
  claude_unusable: "Claude gave no usable answer either",
  claude_disabled: "Claude is disabled",
  claude_unavailable: "Claude did not answer",
  budget_exhausted: "a cost cap would be passed",
  claude_context_overflow: "the prompt is too large even for Claude",
};
const whyRules = (reason: string, local: RouteInput["local"]): string => `${local === "unusable" ? "the local model gave no usable answer" : "the local model is down"}, and ${WHY[reason] ?? reason}`;

export function createModelCaller(deps: ModelCallerDeps): ModelCaller {
  const { config, local, claude, ledger, store, metrics, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const modelMs = new Map<string, number>();
  const timed = async <T>(taskId: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      modelMs.set(taskId, (modelMs.get(taskId) ?? 0) + performance.now() - t0);
    }
  };

  async function record(ctx: CallContext, provider: "ollama" | "anthropic" | "rules", group: string, model: string, route: Route, inTok: number, outTok: number, cost: number): Promise<void> {
    await store.addCall(ctx.taskId, { agent: ctx.agent, provider, model_group: group, model, decision: route.decision, reason: route.reason, input_tokens: inTok, output_tokens: outTok, cost_usd: cost });
  }

  async function callLocal(ctx: CallContext, group: ModelGroup, route: Route, prompt: Prompt): Promise<BackendAnswer> {
    return withSpan(`chat ${group.model}`, { parent: ctx.parent, kind: SpanKind.CLIENT, attributes: genAiAttrs("ollama", group.model, group.name, route) }, async (span) => {
      let announced = false;
      const a = await local.chat(group.model, group.num_ctx, prompt, () => {
        if (announced) return;
        announced = true;
        void store.addStep(ctx.taskId, "progress", `local model ${group.model} is answering`).catch(() => undefined);
      });
      span.setAttributes({ "gen_ai.response.model": a.model, "gen_ai.usage.input_tokens": a.inputTokens, "gen_ai.usage.output_tokens": a.outputTokens, "steward.cost_usd": 0 });
      return a;
    });
  }

  async function callClaude(ctx: CallContext, c: ClaudeBackend, route: Route, prompt: Prompt): Promise<BackendAnswer & { costUsd: number }> {
    return withSpan(`chat ${config.claude.model}`, { parent: ctx.parent, kind: SpanKind.CLIENT, attributes: { ...genAiAttrs("anthropic", config.claude.model, "claude", route), "gen_ai.request.max_tokens": config.claude.maxTokens } }, async (span) => {
      const a = await c.chat(prompt, config.claude.maxTokens);
      const cost = costUsd(config.prices, a.inputTokens, a.outputTokens, a.cacheWriteTokens ?? 0, a.cacheReadTokens ?? 0);
      span.setAttributes({ "gen_ai.response.model": a.model, "gen_ai.usage.input_tokens": a.inputTokens, "gen_ai.usage.output_tokens": a.outputTokens, "gen_ai.usage.cache_creation.input_tokens": a.cacheWriteTokens ?? 0, "gen_ai.usage.cache_read.input_tokens": a.cacheReadTokens ?? 0, "steward.cost_usd": cost });
      return { ...a, costUsd: cost };
    });
  }

  const worstCase = (tokens: number): number => {
    const worstInput = { ...config.prices, inputPerMTok: Math.max(config.prices.inputPerMTok, config.prices.cacheWritePerMTok) };
    return costUsd(worstInput, Math.ceil(tokens * INPUT_ESTIMATE_MARGIN), config.claude.maxTokens);
  };

  return {
    claudeWorstCaseUsd: (prompt) => worstCase(promptTokens(redactPrompt(prompt))),
    takeModelSeconds(taskId) {
      const ms = modelMs.get(taskId) ?? 0;
      modelMs.delete(taskId);
      return ms / 1000;
    },
    async call(ctx, makePrompt, opts = {}) {
      const avoidLocal = opts.avoid?.includes("ollama") === true;
      const group = groupFor(config.modelGroups, ctx.agent);
      const full = redactPrompt(makePrompt());
      const tokens = promptTokens(full);
      let claudeState: RouteInput["claude"] = !(config.claude.enabled && claude) ? "disabled" : opts.avoid?.includes("anthropic") ? "unusable" : "enabled";
      let budget: RouteInput["budget"] = "ok";
      let localDownSeen = false;

      for (let round = 0; round < 4; round++) {
        const localHealth = avoidLocal ? "unusable" : localDownSeen ? "down" : await local.health(group.model);
        const route = scoreRoute({ agent: ctx.agent, estimatedInputTokens: tokens, group, local: localHealth, restricted: ctx.restricted, sensitive: ctx.sensitive, claude: claudeState, budget, claudeContextTokens: config.claude.contextTokens });
        metrics.routerDecisions.inc({ agent: ctx.agent, decision: route.decision, reason: route.reason });
        switch (route.decision) {
          case "local": {
            const prompt = route.trim ? redactPrompt(makePrompt(group.escalate_above_tokens)) : full;
            try {
              const a = await timed(ctx.taskId, () => callLocal(ctx, group, route, prompt));
              metrics.modelCalls.inc({ provider: "ollama", model_group: group.name, result: "ok" });
              await record(ctx, "ollama", group.name, group.model, route, a.inputTokens, a.outputTokens, 0);
              return { served: "model", provider: "ollama", group: group.name, answer: a, route, costUsd: 0 };
            } catch (err) {
              metrics.modelCalls.inc({ provider: "ollama", model_group: group.name, result: err instanceof BackendError ? err.kind : "error" });
              local.trip();
              localDownSeen = true;
              await store.addStep(ctx.taskId, "error", `local model failed: ${(err as Error).message.slice(0, 300)}; routing again`);
              continue;
            }
          }
          case "claude": {
            if (!claude) {
              claudeState = "disabled";
              continue;
            }
            // Defence in depth: the router never picks Claude for these; should it ever, nothing leaves the house.
            if (ctx.restricted || ctx.sensitive) throw new Error(`refusing to send a ${ctx.restricted ? "restricted" : "sensitive"} task to Claude`);
            // Worst case: every input token written to the cache (priced above plain input), the whole max_tokens out.
            const estimate = worstCase(tokens);
            const res = await ledger.reserve({ taskId: ctx.taskId, agent: ctx.agent, source: ctx.source, modelGroup: "claude", model: config.claude.model, usd: estimate, day: utcDay(clock()) });
            if (!res.ok) {
              metrics.capRefusals.inc({ cap: res.cap });
              budget = "exhausted";
              await store.addStep(ctx.taskId, "progress", `Claude not called: the ${res.cap.replace(/_/g, " ")} cap ($${res.capUsd}) would be passed (spent $${res.spentUsd}, this call up to $${res.wantedUsd})`);
              continue;
            }
            try {
              const a = await timed(ctx.taskId, () => callClaude(ctx, claude, route, full));
              await ledger.settle(res.id, a.costUsd, a.inputTokens, a.outputTokens);
              metrics.modelCalls.inc({ provider: "anthropic", model_group: "claude", result: "ok" });
              metrics.costUsd.inc({ agent: ctx.agent, model_group: "claude" }, a.costUsd);
              await record(ctx, "anthropic", "claude", a.model, route, a.inputTokens, a.outputTokens, a.costUsd);
              return { served: "model", provider: "anthropic", group: "claude", answer: a, route, costUsd: a.costUsd };
            } catch (err) {
              await ledger.release(res.id);
              metrics.modelCalls.inc({ provider: "anthropic", model_group: "claude", result: err instanceof BackendError ? err.kind : "error" });
              claudeState = "unavailable";
              logger.warn({ task: ctx.taskId, err: (err as Error).message }, "Claude call failed; routing again");
              await store.addStep(ctx.taskId, "error", `Claude failed: ${(err as Error).message.slice(0, 300)}; routing again`);
              continue;
            }
          }
          case "rules": {
            await withSpan("planner.rules", { parent: ctx.parent, attributes: { "steward.router.decision": route.decision, "steward.router.reason": route.reason } }, () => undefined);
            await record(ctx, "rules", "rules", "runbooks", route, 0, 0, 0);
            return { served: "rules", route, why: whyRules(route.reason, localHealth) };
          }
          default: {
            const never: never = route.decision;
            throw new Error(`unknown route ${String(never)}`);
          }
        }
      }
      const route: Route = { decision: "rules", reason: "local_down", trim: false };
      metrics.routerDecisions.inc({ agent: ctx.agent, decision: route.decision, reason: route.reason });
      await record(ctx, "rules", "rules", "runbooks", route, 0, 0, 0);
      return { served: "rules", route, why: "every model failed for this call" };
    },
  };
}

function genAiAttrs(system: "ollama" | "anthropic", model: string, group: string, route: Route): Record<string, string | number> {
  return {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": system,
    "gen_ai.provider.name": system,
    "gen_ai.request.model": model,
    "steward.model_group": group,
    "steward.router.decision": route.decision,
    "steward.router.reason": route.reason,
  };
}

