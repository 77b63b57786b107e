import { join, resolve } from "node:path";
import type { UpService } from "./settings.js";
import { alerterDefaults } from "./alerter-env.js";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { OBSERVER_NODE_FLAGS } from "@steward/observer/node-flags";

/** What the services of one stack need to find each other. Ports are 0: each service binds its own and reports it. */
export interface Wires {
  dir: string;
  natsUrl: string;
  databaseUrl: string;
  /** The operator's credential: the executor's bootstrap admin (API_TOKEN, named `admin`). */
  token: string;
  /** The planner's bootstrap admin token (its API_TOKEN): the operator's CLI uses it (`planner_token` in the stack file). */
  plannerToken: string;
  /**
   * Each component's own, narrow planner credential (the planner's SUPERVISOR_TOKEN, ALERTER_TOKEN, CONSOLE_TOKEN;
   * the supervisor's, the alerter's and the executor's PLANNER_TOKEN): docs/access.md.
   */
  plannerComponentTokens: { supervisor: string; alerter: string; console: string };
  /** The alerter's own executor credential (ALERTER_TOKEN, named `alerter`): it may only mint button tokens and relay decisions. */
  alerterToken: string;
  /** Keys the nodes' secret fingerprints (shared by the stack's agents). */
  fleetKey: string;
  /** The executor's command key pair: the private half goes to the executor only, the public half to the agents. */
  commandKeys: { privateKey: string; publicKey: string };
  fleetFile: string;
  /** The executor's API port: 0 (any) unless the operator asked for one (`--api-port`). */
  apiPort: number;
  /** Known once the executor has bound its port. */
  apiUrl: string;
  /** Known once the planner has bound its port; undefined without a planner. */
  plannerUrl: string | undefined;
  /** The node an agent runs as. */
  node?: string;
  /** The operator's STATE_DIR: node-agents keep their state in `<it>/<node>` (kept after the stack stops). */
  stateDir?: string | undefined;
  /** Each NATS identity's seed file by identity name (`node.<name>`, `observer`, ...); undefined on an open NATS. */
  natsSeedFile?: ((identity: string) => string) | undefined;
  /** The CA of the NATS server's TLS certificate; undefined without TLS. */
  natsCaFile?: string | undefined;
}

/** The settings `up` owns for each service (see WIRING in settings.ts); everything else comes from the environment. */
export function wiringFor(svc: UpService, w: Wires): Record<string, string> {
  const nats = {
    NATS_URL: w.natsUrl,
    ...(w.natsSeedFile ? { NATS_NKEY_SEED_FILE: w.natsSeedFile(svc === "node-agent" ? `node.${w.node ?? "node"}` : svc) } : {}),
    ...(w.natsCaFile ? { NATS_CA_FILE: w.natsCaFile } : {}),
  };
  const planner = (token: string): Record<string, string> => (w.plannerUrl ? { PLANNER_URL: w.plannerUrl, PLANNER_TOKEN: token } : {});
  const own = w.plannerComponentTokens;
  const metrics = { METRICS_PORT: "0", METRICS_HOST: "127.0.0.1" };
  switch (svc) {
    case "observer":
      return { ...nats, SNAPSHOT_PATH: join(w.dir, "world.json"), ...metrics };
    case "planner":
      return { ...nats, DATABASE_URL: w.databaseUrl, API_TOKEN: w.plannerToken, SUPERVISOR_TOKEN: own.supervisor, ALERTER_TOKEN: own.alerter, CONSOLE_TOKEN: own.console, FLEET_SPEC: w.fleetFile, HTTP_PORT: "0", HTTP_HOST: "127.0.0.1", ...metrics };
    case "executor":
      // The executor reads the spec for deploy rollouts and shows the planner's tasks in the console.
      return { ...nats, DATABASE_URL: w.databaseUrl, API_TOKEN: w.token, ALERTER_TOKEN: w.alerterToken, EXECUTOR_SIGNING_KEY: w.commandKeys.privateKey, FLEET_SPEC: w.fleetFile, HTTP_PORT: String(w.apiPort), HTTP_HOST: "127.0.0.1", ...metrics, ...planner(own.console) };
    case "supervisor":
      return { ...nats, DATABASE_URL: w.databaseUrl, FLEET_SPEC: w.fleetFile, ...metrics, ...planner(own.supervisor) };
    case "alerter":
      return { ...nats, DATABASE_URL: w.databaseUrl, API_TOKEN: w.alerterToken, EXECUTOR_URL: w.apiUrl, ...metrics, ...planner(own.alerter) };
    case "node-agent": {
      const node = w.node ?? "node";
      // What the agent deployed and its services' logs live with the stack (removed with it), not in a shared temp
      // dir; an operator's STATE_DIR keeps deploy records across stacks, one folder per node so agents never share one.
      return { ...nats, NODE_NAME: node, FLEET_SPEC: w.fleetFile, FLEET_KEY: w.fleetKey, NODE_COMMAND_PUBLIC_KEY: w.commandKeys.publicKey, LOG_DIR: join(w.dir, "service-logs", node), STATE_DIR: join(w.stateDir ?? join(w.dir, "node-state"), node), ...metrics };
    }
  }
}

/** Node.js flags a service runs with, before its entry point: the observer's bounded heap (its node-flags.ts says why). */
export function nodeFlagsFor(svc: UpService): readonly string[] {
  return svc === "observer" ? OBSERVER_NODE_FLAGS : [];
}

/** The services with an API port besides their metrics listener: `up` waits for the API's, and pins both. */
export const hasApiPort = (svc: UpService): boolean => svc === "executor" || svc === "planner";

/**
 * The settings that fix the ports a service binds (the API's and the metrics listener's for the executor and the
 * planner, else the metrics one): a restart asks for the ones it had.
 */
export function pinnedPort(svc: UpService, port: number, metricsPort?: number): Record<string, string> {
  return hasApiPort(svc) ? { HTTP_PORT: String(port), ...(metricsPort !== undefined ? { METRICS_PORT: String(metricsPort) } : {}) } : { METRICS_PORT: String(port) };
}

/** The operator's STATE_DIR (absolute), when set: node-agent state then outlives the stack. */
export const operatorStateDir = (env: NodeJS.ProcessEnv): string | undefined => (env["STATE_DIR"] ? resolve(env["STATE_DIR"]) : undefined);

/** `up`'s defaults for a service, which the operator's environment may override. */
export function defaultsFor(svc: UpService, w: Pick<Wires, "apiUrl">, env: NodeJS.ProcessEnv = {}): Record<string, string> {
  if (svc === "alerter") return { CONSOLE_URL: `${w.apiUrl}/console`, ...alerterDefaults(env) };
  if (svc === "node-agent") return { HEARTBEAT_MS: "2000" };
  return {};
}

/** Placeholder wiring to check settings before anything starts (the real URLs exist only once things run). */
export function placeholderWires(dir: string, fleetFile: string, apiPort: number, withPlanner: boolean, stateDir?: string): Wires {
  const secret = "wiring-is-set-at-start-3kd9f8s7a6";
  return {
    dir,
    natsUrl: "nats://127.0.0.1:4222",
    databaseUrl: "postgres://steward@127.0.0.1:5432/steward",
    token: secret,
    alerterToken: `${secret}-alerter`,
    plannerToken: `${secret}-planner`,
    plannerComponentTokens: { supervisor: `${secret}-supervisor`, alerter: `${secret}-alerter-planner`, console: `${secret}-console` },
    fleetKey: secret,
    commandKeys: generateSigningKey(),
    fleetFile,
    apiPort,
    apiUrl: "http://127.0.0.1:7070",
    plannerUrl: withPlanner ? "http://127.0.0.1:7071" : undefined,
    node: "node",
    stateDir,
  };
}

export interface Started {
  name: string;
  /** NATS and PostgreSQL: everything else needs them, so they stop last. */
  engine: boolean;
}

/** Services newest first, then the engines newest first: nothing loses its bus or database while it drains. */
export function stopOrder<T extends Started>(started: readonly T[]): T[] {
  const newestFirst = [...started].reverse();
  return [...newestFirst.filter((m) => !m.engine), ...newestFirst.filter((m) => m.engine)];
}
