import type { ServiceObservation } from "@steward/contracts/events";
import type { Logger } from "@steward/platform/logger";
import { withSpan } from "@steward/platform/tracing";
import { observeContainers, worst } from "./compose-status.js";
import type { StackConfig } from "./compose-config.js";
import type { StackHealth } from "./compose-health.js";
import type { Stack, StackSet } from "./compose-stack.js";
import { DockerError, type DockerClient } from "./docker/client.js";
import type { ContainerInspect } from "./docker/types.js";

/** What the node sees of its stacks: their containers on the engine, folded into `service` observations. */
export interface StackObserver {
  /** Inspect data of every container of the stack's project (one removed meanwhile is skipped); throws when the engine does not answer. */
  containers(s: Stack): Promise<ContainerInspect[]>;
  /**
   * Observes one stack and publishes the observation when it changed (always with `force`). Compose's resolved hashes
   * of the wanted revision are asked again unless `fresh` is false, when the last ones for the same content serve
   * (probes on engine events: a death is reported without waiting for a Compose process).
   */
  probe(s: Stack, force?: boolean, fresh?: boolean): Promise<void>;
  /** Probes one stack soon: calls while a probe of it runs fold into one more probe after it (events come in bursts). */
  probeSoon(s: Stack): Promise<void>;
  /** The engine is gone or going away: every stack is `unknown` at once (never `down`: nothing was seen to die). */
  engineLost(detail: string): void;
  /** Probes every stack; a call during a pass joins that pass. */
  probeAll(): Promise<void>;
  /** Resolves when no pass runs. */
  idle(): Promise<void>;
}

export interface StackObserverDeps {
  docker: Pick<DockerClient, "listProjectContainers" | "inspectContainer" | "engineGone">;
  stacks: StackSet;
  config: StackConfig;
  health: StackHealth;
  /** Publishes a `service` observation of a stack. */
  publish(o: ServiceObservation): void;
  logger: Logger;
  /** The key the running revision's Compose hashes are folded with, once Compose applies stacks (see `observedHash`). */
  resolvedKey?: () => string | undefined;
  /** How long Compose's resolved hashes of an unchanged revision serve a periodic probe (ms). */
  resolvedMaxAgeMs?: number;
}

/** Pure: a stack the engine did not answer for. Not seeing it is not the same as it being down. */
export function unreadableStack(name: string, starts: number, error: string, desiredHash: string | undefined): ServiceObservation {
  const o: ServiceObservation = { service: name, state: "unknown", health: "none", starts, declared: true, detail: `cannot read containers: ${error}`.slice(0, 2000) };
  if (desiredHash) o.desired_config_hash = desiredHash;
  return o;
}

/** Pure: while a deploy runs the stack is reported starting, naming the revision. */
export function deployingView(o: ServiceObservation, deploying: string | undefined): ServiceObservation {
  return deploying === undefined ? o : { ...o, state: "starting", health: "starting", detail: `deploying ${deploying}` };
}

/** Pure: one variable of the running containers' environment, for the secret probe. The value stays with the caller. */
export function containerEnvValue(running: readonly ContainerInspect[], service: string, key: string): { found: true; value: string } | { found: false; status: "missing"; detail: string } {
  for (const c of running) {
    const line = (c.Config.Env ?? []).find((e) => e.startsWith(`${key}=`));
    if (line !== undefined) return { found: true, value: line.slice(key.length + 1) };
  }
  return { found: false, status: "missing", detail: running.length ? `no ${key} in the environment of stack ${service}` : `stack ${service} has no running container` };
}

/** Said of every stack while the engine's socket is gone: dockerd removes it as it starts shutting down. */
export const ENGINE_GONE = "the engine is shutting down or gone (its socket was removed)";

export function createStackObserver(deps: StackObserverDeps): StackObserver {
  const { docker, logger } = deps;
  let probing: Promise<void> | undefined;
  const soon = new Map<Stack, Promise<void>>();
  const dirty = new Set<Stack>();

  async function containers(s: Stack): Promise<ContainerInspect[]> {
    const list = await docker.listProjectContainers(s.project);
    const out: ContainerInspect[] = [];
    for (const c of list) {
      try {
        out.push(await docker.inspectContainer(c.Id));
      } catch (err) {
        if (!(err instanceof DockerError && err.status === 404)) throw err; // removed meanwhile
      }
    }
    return out;
  }

  function emit(s: Stack, o: ServiceObservation, force: boolean): void {
    s.obs = o;
    const key = JSON.stringify(o);
    if (!force && key === s.lastKey) return;
    s.lastKey = key;
    deps.publish(o);
  }

  async function probe(s: Stack, force = false, fresh = true): Promise<void> {
    await withSpan("probe.compose", { attributes: { "steward.service": s.name } }, async () => {
      let desiredHash: string | undefined;
      let desiredError: string | undefined;
      try {
        desiredHash = (await deps.config.desired(s, { maxAgeMs: fresh ? (deps.resolvedMaxAgeMs ?? 0) : Number.POSITIVE_INFINITY })).hash;
      } catch (err) {
        desiredError = (err as Error).message;
      }
      let o: ServiceObservation;
      try {
        o = observeContainers(s.name, await containers(s), { desiredHash, desiredError, stoppedByCommand: s.stoppedByCommand, resolvedKey: deps.resolvedKey?.() });
      } catch (err) {
        o = unreadableStack(s.name, s.obs.starts, (err as Error).message, desiredHash);
      }
      if (o.state === "running") o.health = worst([o.health, await deps.health.specHealth(s)]);
      else s.checks = [];
      // Checked last: a daemon shutting down still answers on open connections while it stops the containers.
      if (docker.engineGone()) o = unreadableStack(s.name, s.obs.starts, ENGINE_GONE, desiredHash);
      emit(s, deployingView(o, s.deploying), force);
    });
  }

  function probeSoon(s: Stack): Promise<void> {
    const cur = soon.get(s);
    if (cur) {
      dirty.add(s);
      return cur;
    }
    const run = (async () => {
      do {
        dirty.delete(s);
        await probe(s, false, false).catch((err: unknown) => logger.warn({ stack: s.name, err: (err as Error).message }, "stack probe failed"));
      } while (dirty.has(s));
    })().finally(() => soon.delete(s));
    soon.set(s, run);
    return run;
  }

  return {
    containers,
    probe,
    probeSoon,
    engineLost(detail) {
      for (const s of deps.stacks.all()) emit(s, unreadableStack(s.name, s.obs.starts, detail, s.obs.desired_config_hash), false);
    },
    probeAll() {
      probing ??= (async () => {
        for (const s of deps.stacks.all()) await probe(s).catch((err: unknown) => logger.warn({ stack: s.name, err: (err as Error).message }, "stack probe failed"));
      })().finally(() => (probing = undefined));
      return probing;
    },
    idle: async () => {
      await probing;
    },
  };
}
