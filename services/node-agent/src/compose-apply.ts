import { containerCreateBody } from "./compose-container.js";
import { LABEL_SERVICE, containerName, type StackRevision } from "./compose-model.js";
import { deployOrder, engineUnsupported } from "./compose-revision.js";
import type { StackConfig } from "./compose-config.js";
import type { StackHealth } from "./compose-health.js";
import type { StackObserver } from "./compose-observe.js";
import { StackDeployError, type Stack } from "./compose-stack.js";
import type { DockerClient } from "./docker/client.js";
import type { ContainerInspect } from "./docker/types.js";

/**
 * Brings a stack's containers on the engine to a revision, and starts or stops them. This implementation speaks
 * the Engine API directly (one replica per service); the real Compose CLI takes its place in issue 10.
 */
export interface StackApplier {
  /**
   * Per service in dependency order: pull (per `pull_policy`, default only when missing), replace its container, start it, wait for its container health gate;
   * then removes the containers of services that left the files. Returns what each gate reached.
   */
  apply(s: Stack, r: StackRevision, deadline: number): Promise<string[]>;
  /** Stops and removes every container of the stack. */
  removeAll(s: Stack): Promise<void>;
  stopContainers(ids: readonly string[]): Promise<void>;
  /** Starts the containers in the order given. */
  startContainers(ids: readonly string[]): Promise<void>;
}

export interface EngineApplierDeps {
  docker: Pick<DockerClient, "imageExists" | "pullImage" | "createContainer" | "startContainer" | "stopContainer" | "removeContainer">;
  observer: Pick<StackObserver, "containers">;
  config: Pick<StackConfig, "containerEnv">;
  health: Pick<StackHealth, "waitContainer">;
  /** Grace for `stop` before the engine kills (s). */
  stopGraceS: number;
}

/** Pure: the compose service a container belongs to ("" when it carries no service label). */
export const serviceOf = (c: ContainerInspect): string => c.Config.Labels?.[LABEL_SERVICE] ?? "";

/** Pure: containers of services a revision no longer has: they go with the deploy, as `docker compose up --remove-orphans`. */
export const isOrphan = (c: ContainerInspect, r: Pick<StackRevision, "services">): boolean => !(serviceOf(c) in r.services);

/**
 * Pure: whether a deploy pulls the service's image, following Compose's `pull_policy` (default `missing`: only an
 * image the engine does not have; a local-only tag no registry knows then deploys as it does with Compose).
 */
export function shouldPull(policy: unknown, exists: boolean): boolean {
  if (policy === "always") return true;
  if (policy === "never" || policy === "build") return false;
  return !exists;
}

export function createEngineApplier(deps: EngineApplierDeps): StackApplier {
  const { docker } = deps;

  async function remove(s: Stack, which: (c: ContainerInspect) => boolean): Promise<void> {
    for (const c of await deps.observer.containers(s)) {
      if (!which(c)) continue;
      if (c.State.Running) await docker.stopContainer(c.Id, deps.stopGraceS);
      await docker.removeContainer(c.Id, { force: true });
    }
  }

  return {
    async apply(s, r, deadline) {
      const unsupported = engineUnsupported(r.services);
      if (unsupported) throw new StackDeployError(s.name, "config", unsupported);
      const steps: string[] = [];
      for (const service of deployOrder(r.services)) {
        const def = r.services[service];
        if (!def) continue;
        const env = await deps.config.containerEnv(s, r, service);
        try {
          if (shouldPull(def.other["pull_policy"], await docker.imageExists(def.image))) await docker.pullImage(def.image);
        } catch (err) {
          throw new StackDeployError(s.name, "pull", `pull ${def.image}: ${(err as Error).message}`);
        }
        let id: string;
        try {
          await remove(s, (c) => serviceOf(c) === service);
          id = (await docker.createContainer(containerName(r.project, service), containerCreateBody(r, s.name, service, env, s.checkout))).Id;
        } catch (err) {
          throw err instanceof StackDeployError ? err : new StackDeployError(s.name, "create", `${service}: ${(err as Error).message}`);
        }
        try {
          await docker.startContainer(id);
        } catch (err) {
          throw new StackDeployError(s.name, "start", `${service}: ${(err as Error).message}`);
        }
        steps.push(await deps.health.waitContainer(s, id, service, deadline));
      }
      await remove(s, (c) => isOrphan(c, r));
      return steps;
    },

    removeAll: (s) => remove(s, () => true),

    async stopContainers(ids) {
      for (const id of ids) await docker.stopContainer(id, deps.stopGraceS);
    },

    async startContainers(ids) {
      for (const id of ids) await docker.startContainer(id);
    },
  };
}
