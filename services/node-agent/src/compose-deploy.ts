import { DeployCommandParams, RollbackCommandParams } from "@steward/contracts/deploy";
import type { NodeCommandBody } from "@steward/contracts/node-command";
import type { Logger } from "@steward/platform/logger";
import type { StackRevision } from "./compose-model.js";
import { contentHash } from "./compose-revision.js";
import type { StackApplier } from "./compose-apply.js";
import type { StackConfig } from "./compose-config.js";
import type { StackHealth } from "./compose-health.js";
import type { StackObserver } from "./compose-observe.js";
import { recordDeploy, type StackRecord, type StackRecords } from "./compose-records.js";
import { StackDeployError, type Stack } from "./compose-stack.js";

/** Deploy and rollback of a stack: record what is deployed, apply it, hold it to Steward's health gates. */
export interface StackDeployer {
  /** Deploys the revision the spec asks for; resolves with what it reached, throws what failed. */
  deploy(s: Stack, cmd: NodeCommandBody): Promise<string>;
  /** Goes back to the recorded previous revision (or removes the stack when nothing ran before it). */
  rollback(s: Stack, cmd: NodeCommandBody): Promise<string>;
}

export interface StackDeployerDeps {
  node: string;
  config: Pick<StackConfig, "desired">;
  observer: Pick<StackObserver, "containers">;
  applier: StackApplier;
  health: Pick<StackHealth, "waitSpecChecks">;
  records: StackRecords;
  logger: Logger;
  now?: () => number;
}

export type RollbackPlan =
  | { refuse: string }
  /** Nothing ran before the failed revision: remove its containers. */
  | { remove: StackRevision; record: StackRecord }
  | { reapply: StackRevision; record: StackRecord };

/**
 * Pure: what a rollback to `want` does with this record. `want` undefined: whatever ran before; null: nothing ran
 * before. A target other than the recorded previous revision is refused, never guessed.
 */
export function planRollback(rec: StackRecord, want: string | null | undefined, stack: string, node: string): RollbackPlan {
  if (!rec.deployed) return { refuse: `nothing was deployed by Steward for ${stack} on ${node}; nothing to roll back` };
  const have = rec.previous?.hash ?? null;
  if (rec.previous_unknown) return { refuse: `the containers that ran before were not deployed by Steward; they cannot be re-created` };
  if (want !== undefined && want !== have) return { refuse: `the previous revision recorded here is ${have ?? "none"}, not ${want}; refusing to roll back to something else` };
  if (!rec.previous) return { remove: rec.deployed, record: { version: 1, deployed: null, previous: rec.deployed, previous_unknown: false } };
  return { reapply: rec.previous, record: { version: 1, deployed: rec.previous, previous: rec.deployed, previous_unknown: false } };
}

export function createStackDeployer(deps: StackDeployerDeps): StackDeployer {
  const { logger } = deps;
  const now = deps.now ?? Date.now;

  /** Applies `r` and holds it to the gates; the stack reports `starting` meanwhile. */
  async function bringTo(s: Stack, r: StackRevision, deadline: number): Promise<string> {
    s.deploying = r.hash;
    s.stoppedByCommand = false;
    try {
      const steps = await deps.applier.apply(s, r, deadline);
      steps.push(...(await deps.health.waitSpecChecks(s, deadline)));
      return steps.join(", ");
    } finally {
      s.deploying = undefined;
    }
  }

  return {
    async deploy(s, cmd) {
      const params = DeployCommandParams.safeParse(cmd.params ?? {});
      if (!params.success) throw new StackDeployError(s.name, "config", `invalid deploy params: ${params.error.issues[0]?.message ?? "invalid"}`);
      const timeout = params.data.health_timeout_ms ?? s.healthTimeoutMs;
      const deadline = now() + timeout;
      let r: StackRevision;
      try {
        r = await deps.config.desired(s);
      } catch (err) {
        throw new StackDeployError(s.name, "config", (err as Error).message);
      }
      const rec = await deps.records.load(s.name);
      const ranBefore = rec.deployed === null && (await deps.observer.containers(s)).length > 0;
      const next = recordDeploy(rec, r, ranBefore);
      // Recorded before touching containers, so a rollback knows the previous revision even if the agent dies mid-way.
      await deps.records.save(s.name, next);
      logger.info({ stack: s.name, config_hash: r.hash, previous: next.previous?.hash ?? null, timeout_ms: timeout }, "deploying stack");
      const done = await bringTo(s, r, deadline);
      // Compose (v1) hashes the image a tag points at: one pulled or built by this deploy changes the revision's
      // resolved hash. The record takes what now runs, so a later rollback names it as the world saw it.
      const after = await deps.config.desired(s).catch(() => undefined);
      if (after && after.hash !== r.hash && contentHash(after) === contentHash(r)) {
        await deps.records.save(s.name, { ...next, deployed: after });
        return `deployed ${after.hash} (${done})`;
      }
      return `deployed ${r.hash} (${done})`;
    },

    async rollback(s, cmd) {
      const params = RollbackCommandParams.safeParse(cmd.params ?? {});
      if (!params.success) throw new StackDeployError(s.name, "rollback", `invalid rollback params: ${params.error.issues[0]?.message ?? "invalid"}`);
      const plan = planRollback(await deps.records.load(s.name), params.data.to_config_hash, s.name, deps.node);
      if ("refuse" in plan) throw new StackDeployError(s.name, "rollback", plan.refuse);
      const deadline = now() + (params.data.health_timeout_ms ?? s.healthTimeoutMs);
      if ("remove" in plan) {
        logger.warn({ stack: s.name, from: plan.remove.hash, to: null }, "rolling stack back");
        await deps.applier.removeAll(s);
        await deps.records.save(s.name, plan.record);
        return `rolled back: nothing ran before ${plan.remove.hash}, its containers were removed`;
      }
      logger.warn({ stack: s.name, from: plan.record.previous?.hash, to: plan.reapply.hash }, "rolling stack back");
      await deps.records.save(s.name, plan.record);
      const done = await bringTo(s, plan.reapply, deadline);
      return `rolled back to ${plan.reapply.hash} (${done})`;
    },
  };
}
