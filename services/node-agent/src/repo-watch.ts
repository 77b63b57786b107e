import { dirname, resolve } from "node:path";
import { REPO_SERVICE } from "@steward/contracts/drift";
import { loadFleetSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { NodeCommandBody, NodeCommandReply } from "@steward/contracts/node-command";
import type { NodeEvent } from "@steward/contracts/events";
import { newEventId } from "./publisher.js";
import { probeRepo, repoTargetFor, type RepoReport, type RepoTarget } from "./repo-probe.js";
import { PullRefusedError, describePull, pullRepo } from "./repo-pull.js";

export interface RepoWatcherDeps {
  node: string;
  /** fleet.yaml: the checkout is `nodes.<node>.repo_path` or `repo.path`, re-read on every probe. */
  fleetSpec: string;
  publish: (e: NodeEvent) => void;
  logger: Logger;
  clock: () => Date;
  fetchTimeoutMs: number;
  gitTimeoutMs: number;
}

export interface RepoWatcher {
  /** Fetches, reads the checkout and publishes a `repo` event (nothing when the spec names no checkout). */
  probe(): Promise<void>;
  /** Executes a verified `pull` command; publishes the checkout afterwards, whatever happened. */
  pull(cmd: NodeCommandBody): Promise<NodeCommandReply>;
}

/** Probes and pulls never overlap: a probe's fetch must not race the pull's merge. */
export function createRepoWatcher(deps: RepoWatcherDeps): RepoWatcher {
  const { node, logger } = deps;
  const baseDir = dirname(resolve(deps.fleetSpec));
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = chain.then(fn, fn);
    chain = run.catch(() => undefined);
    return run;
  };

  async function target(): Promise<RepoTarget | undefined> {
    try {
      return repoTargetFor(await loadFleetSpec(deps.fleetSpec), node, baseDir);
    } catch {
      return undefined; // an unreadable spec is reported by the spec poll
    }
  }

  function publish(r: RepoReport): void {
    deps.publish({ type: "repo", id: newEventId(node), node, ts: deps.clock().toISOString(), ...r });
  }

  const opts = () => ({ fetchTimeoutMs: deps.fetchTimeoutMs, timeoutMs: deps.gitTimeoutMs });

  return {
    probe: () =>
      serial(async () => {
        const t = await target();
        if (!t) return;
        const r = await probeRepo(t, { ...opts(), fetch: true });
        if (r.error) logger.warn({ path: t.path, error: r.error }, "deploy checkout probe reported a problem");
        publish(r);
      }),

    pull: (cmd) =>
      serial(async (): Promise<NodeCommandReply> => {
        if (cmd.service !== REPO_SERVICE) {
          return { ok: false, id: cmd.id, code: "unknown_service", message: `pull applies to the deploy checkout (service '${REPO_SERVICE}'), not '${cmd.service}'` };
        }
        const t = await target();
        if (!t) return { ok: false, id: cmd.id, code: "failed", message: `node '${node}' has no deploy checkout in the fleet spec (repo.path or nodes.${node}.repo_path)` };
        try {
          // A short fetch deadline: the executor waits COMMAND_TIMEOUT_MS (10 s by default) for this reply.
          const r = await pullRepo(t, { ...opts(), fetchTimeoutMs: Math.min(deps.fetchTimeoutMs, 5000), fetch: true, now: deps.clock() });
          const detail = describePull(t, r);
          logger.info({ command_id: cmd.id, action_id: cmd.action_id, path: t.path, from: r.from, to: r.to, quarantined: r.quarantined.map((q) => q.path), quarantine_dir: r.quarantineDir }, "pulled the deploy checkout");
          publish(r.after);
          return { ok: true, id: cmd.id, node, service: cmd.service, pid: null, detail };
        } catch (err) {
          const message = err instanceof PullRefusedError ? err.message : `pull failed: ${(err as Error).message}`;
          logger.warn({ command_id: cmd.id, path: t.path, reason: err instanceof PullRefusedError ? err.reason : "error", message }, "pull refused");
          // The checkout as it is now, so the supervisor and executor see the truth at once.
          publish(await probeRepo(t, { ...opts(), fetch: false }));
          return { ok: false, id: cmd.id, code: "failed", message };
        }
      }),
  };
}
