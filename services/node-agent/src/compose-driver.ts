import type { FleetSpec, SecretRef } from "@steward/fleet/fleet-spec";
import type { NodeCommandReply } from "@steward/contracts/node-command";
import type { ServiceObservation } from "@steward/contracts/events";
import type { Logger } from "@steward/platform/logger";
import { withSpan } from "@steward/platform/tracing";
import { ComposeError } from "./compose-model.js";
import { createEngineApplier, type StackApplier } from "./compose-apply.js";
import { createCliApplier, createComposeHasher, detectCompose, distrustHashes, distrustedHashes, type ComposeCli } from "./compose-cli.js";
import { createStackConfig, type ComposeHasher } from "./compose-config.js";
import { createStackControl } from "./compose-control.js";
import { createStackDeployer } from "./compose-deploy.js";
import { createStackEvents } from "./compose-events.js";
import { createStackHealth } from "./compose-health.js";
import { containerEnvValue, createStackObserver } from "./compose-observe.js";
import { createStackRecords } from "./compose-records.js";
import { StackDeployError, createStackSet, exclusive, type Stack } from "./compose-stack.js";
import type { DockerClient } from "./docker/client.js";
import type { ContainerInspect } from "./docker/types.js";
import { secretEnvValues, stackLogs } from "./compose-investigate.js";
import type { ServiceOp } from "./commands.js";
import type { OpHandler, ServiceCommand, ServiceDriver } from "./driver.js";

export { StackDeployError } from "./compose-stack.js";

export interface ComposeDriverDeps {
  node: string;
  docker: DockerClient;
  fleetKey: string;
  /** Directory of the fleet spec: the deploy checkout (`repo_path` / `repo.path`) resolves against it. */
  specDir: string;
  /** Where stack records (deployed/previous revision) are kept. */
  stateDir: string;
  probeMs: number;
  logger: Logger;
  /** Publishes a `service` observation of a stack. */
  publish(o: ServiceObservation): void;
  /** Resolves `{ secret: name }` env values; without it such values fail the deploy, naming the secret. */
  resolveSecret?: (ref: SecretRef) => string | undefined;
  /** How often a deploy re-inspects containers while waiting for health (ms). */
  pollMs?: number;
  /** Grace for `stop` before the engine kills (s). */
  stopGraceS?: number;
  /** Applies stacks to the engine; replaces the choice below (tests). */
  applier?: StackApplier;
  /**
   * `auto` (default): the real Compose when a binary is found at start (`docker compose`, else `docker-compose`),
   * else the Engine API applier (a subset of Compose); `cli`: Compose or a clear deploy error; `engine-api`: never Compose.
   */
  composeApply?: ComposeApply;
  /** DOCKER_HOST for the Compose CLI (the engine the client speaks to). */
  dockerHost?: string;
  /** Finds the Compose binary (tests). */
  detect?: (env: NodeJS.ProcessEnv) => Promise<ComposeCli | undefined>;
  /**
   * How long Compose's resolved config hashes of an unchanged revision serve periodic probes (ms, default 30 s): each
   * ask is a Compose process. A changed `.env` or image behind a tag is seen within this plus `probeMs`.
   */
  resolvedMaxAgeMs?: number;
}

export type ComposeApply = "auto" | "cli" | "engine-api";

/** `compose` stacks: observed through the engine, deployed and rolled back from the deploy checkout, started and stopped. */
export interface ComposeDriver extends ServiceDriver {
  readonly kind: "compose";
  /** Every service op but `drill`: a drill kills process services only (the executor refuses to drill a stack). */
  readonly ops: { readonly [op in Exclude<ServiceOp, "drill">]: OpHandler };
  /** The spec the agent now runs with. Never throws. */
  setSpec(spec: FleetSpec): void;
  /** Probes every stack now; resolves when done. */
  probeNow(): Promise<void>;
  /** Follows the engine's events and probes every `probeMs` until stopped. */
  start(): void;
  stop(): Promise<void>;
  /** For the secret probe: one variable of a stack's running container environment; the value stays with the caller. */
  readContainerEnv(service: string, key: string): Promise<{ found: true; value: string } | { found: false; status: "missing" | "unreadable"; detail: string }>;
  /**
   * For investigations (read-only): a declared stack's containers as the engine describes them, and the values to mask
   * in anything shown of them (the spec's env values, secrets resolved, and container env values with secret-like
   * names). `undefined`: no such stack. Throws when the engine does not answer.
   */
  investigate(service: string): Promise<{ project: string; containers: ContainerInspect[]; secrets: string[] } | undefined>;
  /** The end of a stack's log (its containers' logs merged by time), not redacted: see `investigate` for what to mask. */
  readLogs(containers: readonly ContainerInspect[], opts: { maxBytes: number; since?: Date; until?: Date }): Promise<{ text: string; bytes: number; truncated: boolean }>;
}

export function createComposeDriver(deps: ComposeDriverDeps): ComposeDriver {
  const { docker, logger, node } = deps;
  const stacks = createStackSet({ node, specDir: deps.specDir });
  let viaCli = false;
  /** Set once the real Compose applies stacks: config drift is then Compose's own config hash of the resolved files. */
  let hasher: ComposeHasher | undefined;
  const config = createStackConfig({ node, fleetKey: deps.fleetKey, resolveSecret: deps.resolveSecret, lenient: () => viaCli, composeHashes: () => hasher });
  const health = createStackHealth({ docker, pollMs: deps.pollMs ?? 250 });
  const observer = createStackObserver({
    docker,
    stacks,
    config,
    health,
    publish: deps.publish,
    logger,
    resolvedKey: () => (hasher ? deps.fleetKey : undefined),
    resolvedMaxAgeMs: deps.resolvedMaxAgeMs ?? 30_000,
  });
  const engine = createEngineApplier({ docker, observer, config, health, stopGraceS: deps.stopGraceS ?? 10 });
  let chosen: Promise<StackApplier> | undefined;
  /** Which applier deploys: decided once (at start, or at the first deploy), and logged. */
  function choose(): Promise<StackApplier> {
    chosen ??= (async (): Promise<StackApplier> => {
      if (deps.applier) return deps.applier;
      const mode = deps.composeApply ?? "auto";
      if (mode === "engine-api") {
        logger.info({ compose: "engine-api" }, "compose stacks are applied through the Engine API (COMPOSE_APPLY=engine-api)");
        return engine;
      }
      const dockerHost = deps.dockerHost ?? process.env["DOCKER_HOST"] ?? "unix:///var/run/docker.sock";
      const cli = await (deps.detect ?? detectCompose)({ ...process.env, DOCKER_HOST: dockerHost });
      if (!cli) {
        if (mode === "cli") {
          logger.error({ compose: "none" }, "COMPOSE_APPLY=cli but neither `docker compose` nor `docker-compose` answers: deploys fail");
          return { ...engine, apply: (st) => Promise.reject(new StackDeployError(st.name, "config", "COMPOSE_APPLY=cli but no Compose binary (docker compose, docker-compose) was found on this node")) };
        }
        logger.warn({ compose: "engine-api" }, "no Compose binary found (docker compose, docker-compose): stacks are applied through the Engine API, a subset of Compose");
        return engine;
      }
      logger.info({ compose: cli.label }, `compose stacks are applied with ${cli.label}`);
      viaCli = true;
      const fallBack = (detail: string) => {
        if (!hasher) return;
        hasher = undefined;
        logger.warn({ compose: cli.label, detail }, "Compose's config --hash does not reproduce the labels its own up wrote: config drift uses Steward's content hash only");
        void distrustHashes(deps.stateDir, cli.label, detail).catch((err: unknown) => logger.warn({ err: (err as Error).message }, "could not record the config-hash verdict"));
      };
      const distrusted = await distrustedHashes(deps.stateDir, cli.label);
      if (distrusted) logger.warn({ compose: cli.label, detail: distrusted }, "Compose's config --hash was found not to reproduce its labels before: config drift uses Steward's content hash only");
      else {
        const ask = createComposeHasher({ cli, dockerHost, stateDir: deps.stateDir });
        hasher = async (st, r, env) => {
          const hashes = await ask(st, r, env);
          if (!hashes) fallBack("config --hash printed no hashes");
          return hashes;
        };
      }
      return createCliApplier({ cli, dockerHost, stateDir: deps.stateDir, config, observer, health, engine, resolved: { active: () => hasher !== undefined, unreliable: fallBack } });
    })();
    return chosen;
  }
  const applier: StackApplier = {
    apply: async (s, r, deadline) => (await choose()).apply(s, r, deadline),
    removeAll: async (s) => (await choose()).removeAll(s),
    stopContainers: async (ids) => (await choose()).stopContainers(ids),
    startContainers: async (ids) => (await choose()).startContainers(ids),
  };
  const deployer = createStackDeployer({ node, config, observer, applier, health, records: createStackRecords({ stateDir: deps.stateDir, logger }), logger });
  const control = createStackControl({ node, config, observer, applier });
  const events = createStackEvents({ docker, stacks, observer, logger });
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  /** Runs one op on a stack under its lock, then reports the stack. Never throws: a failure is a reply. */
  function command(op: (s: Stack, cmd: ServiceCommand) => Promise<string>): OpHandler {
    return async (cmd) => {
      const s = stacks.get(cmd.service);
      if (!s) return { ok: false, id: cmd.id, code: "unknown_service", message: `no stack '${cmd.service}' on node '${node}'` };
      return withSpan("node-agent.compose", { attributes: { "steward.service": s.name, "steward.command.op": cmd.op } }, () =>
        exclusive(s, async (): Promise<NodeCommandReply> => {
          try {
            // Which applier runs decides what the files may hold (with Compose: build, long syntax, …).
            await choose();
            const detail = await op(s, cmd);
            await observer.probe(s, true).catch(() => undefined);
            logger.info({ stack: s.name, op: cmd.op, command_id: cmd.id }, "stack command done");
            return { ok: true, id: cmd.id, node, service: s.name, pid: null, detail };
          } catch (err) {
            await observer.probe(s, true).catch(() => undefined);
            const message = err instanceof StackDeployError || err instanceof ComposeError ? err.message : `${cmd.op} failed: ${(err as Error).message}`;
            logger.warn({ stack: s.name, op: cmd.op, command_id: cmd.id, message }, "stack command failed");
            return { ok: false, id: cmd.id, code: "failed", message: message.slice(0, 2000) };
          }
        }),
      );
    };
  }

  return {
    kind: "compose",
    has: (service) => stacks.has(service),
    observe: () => stacks.all().map((s) => s.obs),

    ops: {
      start: command((s) => control.run(s, "start")),
      stop: command((s) => control.run(s, "stop")),
      restart: command((s) => control.run(s, "restart")),
      deploy: command((s, cmd) => deployer.deploy(s, cmd)),
      rollback: command((s, cmd) => deployer.rollback(s, cmd)),
    },

    setSpec(spec) {
      stacks.update(spec);
      if (!closed && timer) {
        if (stacks.all().length > 0) void choose();
        events.ensure();
        void observer.probeAll();
      }
    },

    probeNow: () => observer.probeAll(),

    start() {
      if (timer || closed) return;
      events.ensure();
      // The first probe waits for the choice: with Compose, files only it can apply are not a spec-side problem.
      if (stacks.all().length > 0) void choose().finally(() => void observer.probeAll());
      else void observer.probeAll();
      // The probe stays as the safety net: events are what make a death seen at once.
      timer = setInterval(() => void observer.probeAll(), deps.probeMs);
    },

    async stop() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await events.stop();
      await observer.idle();
    },

    async investigate(service) {
      const s = stacks.get(service);
      if (!s) return undefined;
      const containers = await observer.containers(s);
      const secrets = secretEnvValues(containers);
      for (const v of Object.values(s.spec.env)) {
        const value = typeof v === "string" ? v : deps.resolveSecret?.(v);
        if (value && value.length >= 4) secrets.push(value);
      }
      return { project: s.project, containers, secrets };
    },

    readLogs: (containers, opts) => stackLogs(containers, opts, (c, o) => docker.containerLogs(c.Id, o)),

    async readContainerEnv(service, key) {
      const s = stacks.get(service);
      if (!s) return { found: false, status: "missing", detail: `no stack '${service}' on this node` };
      try {
        return containerEnvValue((await observer.containers(s)).filter((c) => c.State.Running), service, key);
      } catch (err) {
        return { found: false, status: "unreadable", detail: `cannot read containers: ${(err as Error).message}` };
      }
    },
  };
}
