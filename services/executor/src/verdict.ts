import type { ActionKind } from "@steward/contracts/action";
import type { CommandOutcome } from "./node-command-client.js";
import type { RunOutcome } from "@steward/actions/repository";

/**
 * How running an action ended, for single actions and rollouts alike: `abandoned` (the executor stopped, the
 * outcome is unknown) and `lost` (another party already ended it after the lease ran out) are not store outcomes.
 */
export type Ending = { outcome: RunOutcome | "abandoned" | "lost"; result: string };

/**
 * What the world shows about an action's effect: done (and how it looks), or not yet (and what was seen).
 * `final` marks a "not" that waiting cannot change (the service exited or turned unhealthy after the command):
 * the action fails at once instead of at the verification timeout.
 */
export type Verdict = { ok: true; detail: string } | { ok: false; seen: string; final?: true };

/** A rollout step on one node: what the node (or the world) said. */
export type Step = { ok: true; detail: string } | { ok: false; detail: string };

/** Pure: what a single action's command came to, as the first half of its result. */
export function commandStep(outcome: CommandOutcome, kind: ActionKind, service: string): Step {
  if (!outcome.ok) return { ok: false, detail: outcome.message };
  return { ok: true, detail: `node-agent ran ${kind} ${service}${outcome.pid !== null ? ` (pid ${outcome.pid})` : ""}: ${outcome.detail}` };
}

/**
 * Pure: what a deploy or rollback command came to on one node. A `failed` refusal means the node ran the command
 * and it failed (its health gate, usually): the node's own words are the story then.
 */
export function gateStep(outcome: CommandOutcome): Step {
  if (outcome.ok) return { ok: true, detail: outcome.detail };
  if (outcome.failure === "refused" && outcome.code === "failed") return { ok: false, detail: outcome.nodeMessage };
  return { ok: false, detail: outcome.message };
}
