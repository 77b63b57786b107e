/**
 * The router: a pure, deterministic choice of who serves one model call. Same input, same answer, no I/O:
 * health, budget and configuration are looked up by the caller and passed in.
 */

export type RouteDecision = "local" | "claude" | "rules";

export const ROUTE_REASONS = [
  /** The prompt fits the local group's threshold and Ollama is up. */
  "within_context",
  /** The estimated prompt is above the group's escalation threshold: Claude serves it. */
  "context_overflow",
  /** Ollama is down, timing out or lacks the model: Claude serves it. */
  "local_down",
  /** The local model answered twice with output that could not be used (once with the error shown): Claude serves it. */
  "local_unusable",
  /** Restricted data never leaves the house: local if up (trimmed if needed), else the runbooks. */
  "restricted",
  /** A service or node the task touches is `sensitive: true` in fleet.yaml: local if up, else the runbooks, whoever filed it. */
  "sensitive",
  /** Claude is turned off (CLAUDE_ENABLED=false or no key): local if up, else the runbooks. */
  "claude_disabled",
  /** Claude answered errors (overloaded, rate limited) for this call: local if up, else the runbooks. */
  "claude_unavailable",
  /** Claude answered twice with output that could not be used: local if usable and up, else the runbooks. */
  "claude_unusable",
  /** The call would pass a cost cap: local if up, else the runbooks. */
  "budget_exhausted",
  /** Even Claude's context cannot hold the prompt: local (trimmed) if up, else the runbooks. */
  "claude_context_overflow",
] as const;
export type RouteReason = (typeof ROUTE_REASONS)[number];

export interface RouteInput {
  agent: string;
  estimatedInputTokens: number;
  group: { name: string; num_ctx: number; escalate_above_tokens: number };
  /** `unusable`: it answered this task with output that could not be used, even after a repair retry. */
  local: "up" | "down" | "unusable";
  restricted: boolean;
  /** The task touches a service or node declared `sensitive: true`. */
  sensitive: boolean;
  claude: "enabled" | "disabled" | "unavailable" | "unusable";
  /** `exhausted` once a reservation for this call was refused by a cap. */
  budget: "ok" | "exhausted";
  claudeContextTokens: number;
}

export interface Route {
  decision: RouteDecision;
  reason: RouteReason;
  /** True when the local model serves a prompt above its threshold: the caller trims the evidence to fit. */
  trim: boolean;
}

export function scoreRoute(input: RouteInput): Route {
  const tokens = Math.max(0, input.estimatedInputTokens);
  const fitsLocal = tokens <= input.group.escalate_above_tokens;
  const localUp = input.local === "up";
  if (localUp && fitsLocal) return { decision: "local", reason: "within_context", trim: false };

  // Escalation wanted. Every reason not to escalate falls back the same way: local if it is up, else the runbooks.
  const fallback = (reason: RouteReason): Route => (localUp ? { decision: "local", reason, trim: !fitsLocal } : { decision: "rules", reason, trim: false });
  if (input.restricted) return fallback("restricted");
  if (input.sensitive) return fallback("sensitive");
  if (input.claude === "disabled") return fallback("claude_disabled");
  if (input.claude === "unavailable") return fallback("claude_unavailable");
  if (input.claude === "unusable") return fallback("claude_unusable");
  if (input.budget === "exhausted") return fallback("budget_exhausted");
  if (tokens > input.claudeContextTokens) return fallback("claude_context_overflow");
  return { decision: "claude", reason: localUp ? "context_overflow" : input.local === "unusable" ? "local_unusable" : "local_down", trim: false };
}

/** A rough token estimate (about four characters per token), the same for every backend so routing is stable. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
