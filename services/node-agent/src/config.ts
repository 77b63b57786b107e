import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { durationMs, parseEnv, port, secretString } from "@steward/platform/config";
import { parseVerifyKeys, type CommandVerifyKey } from "@steward/contracts/command-keys";
import { DEFAULT_COMMAND_MAX_LIFETIME_MS, DEFAULT_COMMAND_SKEW_MS } from "@steward/contracts/node-command";

const count = (def: number, max: number) => z.coerce.number().int().positive().max(max).default(def);

export const NodeAgentEnv = z.object({
  NODE_NAME: z
    .string({ error: "is required" })
    .regex(/^[A-Za-z0-9_-]{1,63}$/, "must be a single NATS subject token: letters, digits, '-' or '_' (max 63)"),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  FLEET_SPEC: z.string({ error: "is required (path to fleet.yaml)" }).min(1, "is required (path to fleet.yaml)"),
  // Keys the fingerprints of secrets and env files (secret and compose drift compare them across nodes); it signs nothing.
  FLEET_KEY: secretString(),
  // The executor's public command key(s), comma-separated during a rotation: the only keys a command may be signed with.
  NODE_COMMAND_PUBLIC_KEY: z.string({ error: "is required (the executor's public command key, ed25519-public:...; steward keys signing makes the pair)" }).transform((v, ctx) => {
    const r = parseVerifyKeys(v);
    if (r.ok) return r.key;
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  }),
  // Clock-skew allowance between the executor and this node, for "issued before the agent started" and "issued in the future".
  COMMAND_SKEW_MS: z.coerce.number().int().min(0).max(600_000).default(DEFAULT_COMMAND_SKEW_MS),
  // Longest lifetime (expiry - issue time) of a command this agent accepts; the executor's COMMAND_TTL_MS must fit in it.
  COMMAND_MAX_LIFETIME_MS: z.coerce.number().int().positive().max(3_600_000).default(DEFAULT_COMMAND_MAX_LIFETIME_MS),
  HEARTBEAT_MS: durationMs(5000),
  HOST_PROBE_MS: durationMs(15_000),
  SPEC_POLL_MS: durationMs(2000),
  MAX_IN_FLIGHT: count(256, 100_000),
  BACKLOG_MAX: count(10_000, 10_000_000),
  METRICS_PORT: port(9464),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  LOG_DIR: z.string().min(1).optional(),
  STOP_GRACE_MS: durationMs(5000),
  PUBLISH_TIMEOUT_MS: durationMs(5000),
  SECRET_PROBE_MS: durationMs(60_000),
  SECRET_POLL_MS: durationMs(5000),
  DOCKER_HOST: z.string().regex(/^(unix:\/\/\/|tcp:\/\/|http:\/\/)/, "must be unix:///path or tcp://host:port").default("unix:///var/run/docker.sock"),
  // Unset: negotiated with the engine (the lower of its and the agent's maximum), as the Docker CLI does.
  DOCKER_API_VERSION: z.string().regex(/^v?1\.\d+$/, "must look like v1.43").optional(),
  DOCKER_PROBE_MS: durationMs(5000),
  // auto: the real Compose (`docker compose`, else `docker-compose`) when found at start, else the Engine API subset.
  COMPOSE_APPLY: z.enum(["auto", "cli", "engine-api"]).default("auto"),
  STATE_DIR: z.string().min(1).optional(),
  REPO_PROBE_MS: durationMs(60_000),
  REPO_FETCH_TIMEOUT_MS: durationMs(30_000),
});

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(NodeAgentEnv.shape)];

export interface NodeAgentConfig {
  nodeName: string;
  natsUrl: string;
  /** Path to fleet.yaml; relative service `cwd`s resolve against its directory. */
  fleetSpec: string;
  /** Keys secret and env-file fingerprints; not a command key. */
  fleetKey: string;
  /** The executor's public key(s): commands signed by anything else are refused. */
  commandKeys: CommandVerifyKey[];
  /** Clock-skew allowance for command issue times (default 30 s). */
  commandSkewMs?: number;
  /** Longest command lifetime accepted (default 5 min). */
  commandMaxLifetimeMs?: number;
  heartbeatMs: number;
  hostProbeMs: number;
  specPollMs: number;
  /** Bound on JetStream publishes awaiting their ack. */
  maxInFlight: number;
  /** Events kept while NATS is unreachable; the oldest are dropped first. */
  backlogMax: number;
  /** 0 picks a free port. */
  metricsPort: number;
  metricsHost: string;
  /** Where supervised processes' stdout/stderr go (`<service>.log`). */
  logDir: string;
  /** SIGTERM → SIGKILL grace when stopping a supervised process. */
  stopGraceMs: number;
  publishTimeoutMs: number;
  /** Restate every secret store's fingerprint this often (default 60 s). */
  secretProbeMs?: number;
  /** Look for changed secret stores this often; only changes are published (default 5 s). */
  secretPollMs?: number;
  /** Docker Engine API endpoint for compose stacks (touched only when the node declares one). */
  dockerHost?: string;
  /** A fixed Engine API version; unset: negotiated. */
  dockerApiVersion?: string | undefined;
  /** How stacks are applied: the real Compose CLI (auto/cli) or the Engine API subset. */
  composeApply?: "auto" | "cli" | "engine-api";
  /** How often compose stacks are probed (containers, health, config hash). */
  dockerProbeMs?: number;
  /** Where the agent keeps what it deployed (stack revisions for rollback). */
  stateDir?: string;
  /** How often the deploy checkout is fetched and reported (default 60 s). */
  repoProbeMs?: number;
  /** Deadline for `git fetch` of the deploy checkout (default 30 s). */
  repoFetchTimeoutMs?: number;
}

export function defaultLogDir(nodeName: string): string {
  return join(tmpdir(), `steward-node-agent-${nodeName}`, "logs");
}

/** Parses the agent's settings from an env record; throws ConfigError naming each bad setting (never its value). */
export function loadConfig(env: Record<string, string | undefined>): NodeAgentConfig {
  const e = parseEnv("node-agent", NodeAgentEnv, env);
  return {
    nodeName: e.NODE_NAME,
    natsUrl: e.NATS_URL,
    fleetSpec: e.FLEET_SPEC,
    fleetKey: e.FLEET_KEY,
    commandKeys: e.NODE_COMMAND_PUBLIC_KEY,
    commandSkewMs: e.COMMAND_SKEW_MS,
    commandMaxLifetimeMs: e.COMMAND_MAX_LIFETIME_MS,
    heartbeatMs: e.HEARTBEAT_MS,
    hostProbeMs: e.HOST_PROBE_MS,
    specPollMs: e.SPEC_POLL_MS,
    maxInFlight: e.MAX_IN_FLIGHT,
    backlogMax: e.BACKLOG_MAX,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    logDir: e.LOG_DIR ?? defaultLogDir(e.NODE_NAME),
    stopGraceMs: e.STOP_GRACE_MS,
    publishTimeoutMs: e.PUBLISH_TIMEOUT_MS,
    secretProbeMs: e.SECRET_PROBE_MS,
    secretPollMs: e.SECRET_POLL_MS,
    dockerHost: e.DOCKER_HOST,
    dockerApiVersion: e.DOCKER_API_VERSION,
    dockerProbeMs: e.DOCKER_PROBE_MS,
    composeApply: e.COMPOSE_APPLY,
    stateDir: e.STATE_DIR ?? join(tmpdir(), `steward-node-agent-${e.NODE_NAME}`, "state"),
    repoProbeMs: e.REPO_PROBE_MS,
    repoFetchTimeoutMs: e.REPO_FETCH_TIMEOUT_MS,
  };
}
