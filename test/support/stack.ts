/**
 * A Steward stack in this process for end-to-end tests: a real nats-server, a throwaway PostgreSQL database and the
 * services a test asks for, wired the way their main.ts wires them. It lives here and not in the testkit because the
 * testkit must not depend on the services.
 *
 * NATS is secure as in a deployment (test/support/secure-nats.ts): TLS, and every service and node-agent connects as
 * its own nkey user with the contracts' permissions, the way its main.ts connects (seed file and CA from its
 * settings). The test's own connection `nc` is the harness identity.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry, type Registry } from "@steward/platform/metrics";
import { silentLogger, type Logger } from "@steward/platform/logger";
import { createNodeAgent, loadConfig as loadAgentConfig, type NodeAgent } from "@steward/node-agent";
import { createObserver, loadConfig as loadObserverConfig, type Observer } from "@steward/observer";
import { createSupervisor, loadSupervisorConfig, type Supervisor } from "@steward/supervisor";
import { createExecutor, loadConfig as loadExecutorConfig, type Executor } from "@steward/executor";
import { createPlanner, loadConfig as loadPlannerConfig, type Planner } from "@steward/planner";
import { createAlerter, loadConfig as loadAlerterConfig, type Alerter } from "@steward/alerter";
import { createTestDatabase, startNats, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { newCommandKeyPair, type CommandSigningKey } from "@steward/contracts/command-keys";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./secure-nats.js";

/** Settings a test adds to (or overrides in) a service's defaults, as the service reads them from its environment. */
export type Env = Record<string, string>;

export interface StackOptions {
  /** fleet.yaml, written to `<dir>/fleet.yaml` (a function gets the stack's dir, for paths inside it). */
  fleet?: string | ((dir: string) => string);
  /** An existing fleet spec to use instead of `fleet`. */
  fleetPath?: string;
  /** The working directory (snapshot, logs); a fresh temp dir, removed on stop, when not given. */
  dir?: string;
  /**
   * NATS the test started and stops itself (e.g. `startNatsCluster().url`, every server's URL): the services connect
   * to it, the stack neither creates the streams (their owner, the observer, does, with its STREAM_REPLICAS) nor stops
   * it. A fresh single nats-server, stopped with the stack, when not given.
   */
  natsUrl?: string;
  /** The identities `natsUrl`'s servers run with (`natsSecurity(...)`); without it the services connect to it open. */
  natsSecurity?: NatsSecurity;
  /**
   * Nodes that get a NATS identity besides those in `agents` (agents the test runs itself, e.g. as processes, with
   * `natsEnv("node.<name>")`): the server's users are fixed when it starts.
   */
  nodes?: string[];
  /** Prefix of the throwaway database's name. */
  dbPrefix?: string;
  /** Connections in the shared pool (postgres.js default when not given). */
  sqlMax?: number;
  /** The services to run, each with its settings on top of the defaults. Started in this order; agents by node. */
  observer?: Env | true;
  supervisor?: Env | true;
  executor?: Env | true;
  /** The executor gets a pool of its own with this many connections instead of the shared one. */
  executorSqlMax?: number;
  agents?: Record<string, Env>;
  planner?: Env | true;
  alerter?: Env | true;
  /** The logger each service gets (silent when not given). */
  logger?: (service: string) => Logger;
  /** Runs once NATS and Postgres are up, before any service starts (tap subjects, write files that need the URLs). */
  beforeServices?: (stack: Pick<Stack, "nats" | "db" | "nc" | "sql" | "dir" | "connectAs">) => Promise<void>;
}

export interface Stack {
  /** The stack's own nats-server, or only the URL of the one given as `natsUrl`. */
  nats: Pick<NatsServerHandle, "url">;
  db: TestDatabase;
  /** The test's own connection, as the harness identity (every subject; see secure-nats.ts). Each service has its own. */
  nc: NatsConnection;
  /** The identities and CA NATS runs with; undefined when the stack was given an open `natsUrl`. */
  natsSecurity?: NatsSecurity;
  /** An identity's NATS settings (NATS_NKEY_SEED_FILE, NATS_CA_FILE) for a service the test starts itself; {} when open. */
  natsEnv(identity: string): Env;
  /** Each in-process service's own connection, by service name (`node-agent-<node>` for agents). */
  connections: Record<string, NatsConnection>;
  /** A connection as `identity` (`observer`, `node.n1`, …), closed with the stack, for a service the test runs in-process. */
  connectAs(identity: string): Promise<NatsConnection>;
  sql: Sql;
  dir: string;
  fleetPath: string;
  /** The executor's bootstrap admin token (credential `admin`) and the planner's API token; the fleet key keys the nodes' secret fingerprints. */
  token: string;
  /** The alerter's scoped executor credential (ALERTER_TOKEN, named `alerter`). */
  alerterToken: string;
  fleetKey: string;
  /** The executor's command key pair: the executor signs with `signing` (EXECUTOR_SIGNING_KEY), agents verify with its public half. */
  commandKeys: { signing: CommandSigningKey; privateKey: string; publicKey: string };
  /** A node-agent's key settings: FLEET_KEY and NODE_COMMAND_PUBLIC_KEY. */
  agentKeys: Env;
  observer?: Observer;
  supervisor?: Supervisor;
  executor?: Executor;
  planner?: Planner;
  alerter?: Alerter;
  agents: Record<string, NodeAgent>;
  /** Each service's metrics registry, by service name (`node-agent-<node>` for agents). */
  registries: Record<string, Registry>;
  executorUrl: string;
  plannerUrl: string;
  alerterUrl: string;
  /** Stops the services newest first, then closes connections, drops the database, stops NATS, removes the temp dir. */
  stop(): Promise<void>;
}

const settings = (over: Env | true | undefined): Env => (over === true || over === undefined ? {} : over);

export async function startStack(opts: StackOptions): Promise<Stack> {
  const stops: (() => Promise<unknown>)[] = [];
  const ownDir = opts.dir === undefined;
  const security = opts.natsUrl === undefined ? await natsSecurity([...Object.keys(opts.agents ?? {}), ...(opts.nodes ?? [])]) : opts.natsSecurity;
  const [ownNats, db, dir] = await Promise.all([opts.natsUrl === undefined ? startNats({ config: security!.config }) : undefined, createTestDatabase(opts.dbPrefix), opts.dir ?? mkdtemp(join(tmpdir(), "steward-stack-"))]);
  const nats = ownNats ?? { url: opts.natsUrl! };
  const conns: NatsConnection[] = [];
  // Every in-process connection tries the listed servers in order (the first while it runs), so a cluster test knows
  // which server the services talk through; a service's own process picks one at random.
  const order = { noRandomize: true };
  const connectAs = async (identity: string, connectionName = `${identity}-stack`): Promise<NatsConnection> => {
    const c = security ? await security.connect(nats.url, identity, connectionName, order) : await connectNats(nats.url, connectionName, order, null);
    conns.push(c);
    return c;
  };
  const nc = await connectAs(TEST_HARNESS_IDENTITY, "stack-test");
  const sql = connectDb(db.url, opts.sqlMax === undefined ? undefined : { max: opts.sqlMax });
  const registries: Record<string, Registry> = {};
  const stack: Stack = {
    nats,
    db,
    nc,
    ...(security ? { natsSecurity: security } : {}),
    natsEnv: (identity) => security?.env(identity) ?? {},
    connections: {},
    connectAs: (identity) => connectAs(identity),
    sql,
    dir,
    fleetPath: opts.fleetPath ?? join(dir, "fleet.yaml"),
    token: randomBytes(24).toString("hex"),
    alerterToken: randomBytes(24).toString("hex"),
    fleetKey: randomBytes(24).toString("hex"),
    commandKeys: newCommandKeyPair(),
    agentKeys: {},
    agents: {},
    registries,
    executorUrl: "",
    plannerUrl: "",
    alerterUrl: "",
    async stop() {
      for (const s of stops.reverse()) await s().catch(() => undefined);
      await sql.end({ timeout: 2 }).catch(() => undefined);
      for (const c of conns) await c.close().catch(() => undefined);
      await db.drop().catch(() => undefined);
      await ownNats?.stop();
      if (ownNats) await security?.remove();
      if (ownDir) await rm(dir, { recursive: true, force: true });
    },
  };
  stack.agentKeys = { FLEET_KEY: stack.fleetKey, NODE_COMMAND_PUBLIC_KEY: stack.commandKeys.publicKey };
  try {
    await Promise.all([ownNats ? ensureStreams(nc) : undefined, migrate(sql)]);
    if (opts.fleet !== undefined && opts.fleetPath === undefined) await writeFile(stack.fleetPath, typeof opts.fleet === "string" ? opts.fleet : opts.fleet(dir));
    await opts.beforeServices?.(stack);
    const logger = (service: string) => opts.logger?.(service) ?? silentLogger();
    const registry = (service: string) => (registries[service] = createRegistry(service, false));
    const common = { NATS_URL: nats.url, LOG_LEVEL: "silent", METRICS_PORT: "0" };
    const withDb = { ...common, DATABASE_URL: db.url };

    if (opts.observer) {
      const observer = createObserver({ config: loadObserverConfig({ ...common, SNAPSHOT_PATH: join(dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", ...settings(opts.observer) }), nc: (stack.connections["observer"] = await connectAs("observer")), logger: logger("observer"), registry: registry("observer") });
      await observer.start();
      stops.push(() => observer.stop());
      stack.observer = observer;
    }
    if (opts.supervisor) {
      const supervisor = createSupervisor({ config: loadSupervisorConfig({ ...withDb, FLEET_SPEC: stack.fleetPath, RECHECK_MS: "1000", ...settings(opts.supervisor) }), nc: (stack.connections["supervisor"] = await connectAs("supervisor")), sql, logger: logger("supervisor"), registry: registry("supervisor") });
      await supervisor.start();
      stops.push(() => supervisor.stop());
      stack.supervisor = supervisor;
    }
    if (opts.executor) {
      const execSql = opts.executorSqlMax === undefined ? sql : connectDb(db.url, { max: opts.executorSqlMax });
      const executor = createExecutor({
        config: loadExecutorConfig({ ...withDb, API_TOKEN: stack.token, ALERTER_TOKEN: stack.alerterToken, EXECUTOR_SIGNING_KEY: stack.commandKeys.privateKey, HTTP_PORT: "0", VERIFY_TIMEOUT_MS: "20000", ...settings(opts.executor) }),
        nc: (stack.connections["executor"] = await connectAs("executor")),
        sql: execSql,
        logger: logger("executor"),
        registry: registry("executor"),
      });
      stack.executorUrl = (await executor.start()).url;
      stops.push(async () => {
        await executor.stop();
        if (execSql !== sql) await execSql.end({ timeout: 1 });
      });
      stack.executor = executor;
    }
    for (const [node, env] of Object.entries(opts.agents ?? {})) {
      const name = `node-agent-${node}`;
      // Its own state directory: the default (in /tmp, by node name) is shared by every stack with a node of that
      // name, and an agent starting in one test file stopped the processes another file's agent had recorded there
      // ("left running by an earlier agent of this node"): a SIGTERM from nowhere, seen in CI.
      const agent = createNodeAgent({
        config: loadAgentConfig({ ...common, NODE_NAME: node, FLEET_SPEC: stack.fleetPath, ...stack.agentKeys, HEARTBEAT_MS: "500", LOG_DIR: join(dir, `logs-${node}`), STATE_DIR: join(dir, `state-${node}`), ...env }),
        nc: (stack.connections[name] = await connectAs(`node.${node}`)),
        logger: logger(name),
        registry: registry(name),
      });
      await agent.start();
      stops.push(() => agent.stop());
      stack.agents[node] = agent;
    }
    if (opts.planner) {
      const planner = createPlanner({
        config: loadPlannerConfig({ ...withDb, API_TOKEN: stack.token, FLEET_SPEC: stack.fleetPath, HTTP_PORT: "0", CLAUDE_ENABLED: "false", ...settings(opts.planner) }),
        sql,
        nc: (stack.connections["planner"] = await connectAs("planner")),
        logger: logger("planner"),
        registry: registry("planner"),
      });
      stack.plannerUrl = `http://127.0.0.1:${(await planner.start()).port}`;
      stops.push(() => planner.stop());
      stack.planner = planner;
    }
    if (opts.alerter) {
      const alerter = createAlerter({
        config: loadAlerterConfig({ ...withDb, API_TOKEN: stack.alerterToken, PLANNER_TOKEN: stack.token, EXECUTOR_URL: stack.executorUrl, CONSOLE_URL: `${stack.executorUrl}/console`, ...settings(opts.alerter) }),
        nc: (stack.connections["alerter"] = await connectAs("alerter")),
        sql,
        logger: logger("alerter"),
        registry: registry("alerter"),
      });
      stack.alerterUrl = (await alerter.start()).url;
      stops.push(() => alerter.stop());
      stack.alerter = alerter;
    }
    return stack;
  } catch (err) {
    await stack.stop().catch(() => undefined);
    throw err;
  }
}
