import { hostname } from "node:os";
import { z } from "zod";
import { boolFlag, durationMs, isPlaceholderSecret, parseEnv, port, secretString } from "@steward/platform/config";
import { parseSigningKey, type CommandSigningKey } from "@steward/contracts/command-keys";

export const SERVICE_NAME = "executor";

const Env = z.object({
  DATABASE_URL: z.string({ error: "is required" }).min(1, "is required").refine((v) => /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL"),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** The bootstrap admin credential, named `admin` (the operator creates named ones with `steward token create`). */
  API_TOKEN: secretString(16),
  // The Ed25519 private key that signs node commands (and keys approval tokens); nodes hold only its public half.
  EXECUTOR_SIGNING_KEY: z.string({ error: "is required (ed25519-private:...; steward keys signing makes the pair)" }).transform((v, ctx) => {
    const r = isPlaceholderSecret(v) ? { ok: false as const, message: "is empty or a placeholder; set a real key (steward keys signing makes one)" } : parseSigningKey(v);
    if (r.ok) return r.key;
    ctx.addIssue({ code: "custom", message: r.message });
    return z.NEVER;
  }),
  /** Optional: the alerter's own credential, named `alerter`: it may only mint button tokens and relay bot decisions. */
  ALERTER_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .pipe(secretString(16).optional()),
  HTTP_PORT: port(7070),
  HTTP_HOST: z.string().min(1).default("127.0.0.1"),
  /** /metrics has a listener of its own: the API port (phones, the console, maybe the internet) does not serve it. */
  METRICS_PORT: port(9468),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  EXECUTOR_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '.', '_' or '-'")
    .optional(),
  POLL_MS: durationMs(1000),
  LEASE_MS: durationMs(15_000),
  COMMAND_TIMEOUT_MS: durationMs(10_000),
  // Must fit in the node-agents' COMMAND_MAX_LIFETIME_MS (default 5 min), or they refuse every command (lifetime_too_long).
  COMMAND_TTL_MS: durationMs(30_000),
  VERIFY_TIMEOUT_MS: durationMs(60_000),
  VERIFY_POLL_MS: durationMs(200),
  /** A started or restarted service must stay running this long after the command to be verified (0: off). */
  VERIFY_SETTLE_MS: z.coerce.number().int().min(0).max(600_000).default(1500),
  SWEEP_MS: durationMs(2000),
  /** false: serve the API (approvals) without executing anything on this instance. */
  EXECUTOR_WORKER: boolFlag(true),
  EXECUTOR_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
  /** Optional: deploy rollouts read `deploy` settings and check node placement from it. */
  FLEET_SPEC: z.string().min(1).optional(),
  DEPLOY_HEALTH_TIMEOUT_MS: durationMs(120_000),
  /** The planner's base URL: the web console then shows its tasks and cost (same bearer token). */
  PLANNER_URL: z
    .string()
    .refine((v) => v === "" || (URL.canParse(v) && /^https?:\/\//.test(v)), "must be an http(s) URL")
    .optional()
    .transform((v) => v || undefined),
  /**
   * The console's own credential on the planner (the planner's CONSOLE_TOKEN, or its API_TOKEN in older set-ups);
   * required with PLANNER_URL: the executor never sends its own admin API_TOKEN to another service.
   */
  PLANNER_TOKEN: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .pipe(secretString(16).optional()),
});

const EnvChecked = Env.refine((e) => e.ALERTER_TOKEN === undefined || e.ALERTER_TOKEN !== e.API_TOKEN, {
  path: ["ALERTER_TOKEN"],
  message: "must differ from API_TOKEN (the alerter's credential is scoped; API_TOKEN is an admin's)",
}).refine((e) => e.PLANNER_URL === undefined || e.PLANNER_TOKEN !== undefined, {
  path: ["PLANNER_TOKEN"],
  message: "is required when PLANNER_URL is set (the planner's CONSOLE_TOKEN for this executor; its own API_TOKEN is never sent to the planner)",
});

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(Env.shape)];

export interface ExecutorConfig {
  databaseUrl: string;
  natsUrl: string;
  apiToken: string;
  /** Signs node commands; approval tokens use a key derived from it. Never logged. */
  signingKey: CommandSigningKey;
  alerterToken: string | undefined;
  httpPort: number;
  httpHost: string;
  metricsPort: number;
  metricsHost: string;
  executorId: string;
  pollMs: number;
  leaseMs: number;
  commandTimeoutMs: number;
  commandTtlMs: number;
  verifyTimeoutMs: number;
  verifyPollMs: number;
  verifySettleMs: number;
  sweepMs: number;
  concurrency: number;
  worker: boolean;
  fleetSpecPath?: string | undefined;
  deployHealthTimeoutMs?: number | undefined;
  plannerUrl: string | undefined;
  plannerToken: string;
}

/** Parses the executor's settings from an env record; a ConfigError names the setting, never its value. */
export function loadConfig(env: Record<string, string | undefined>): ExecutorConfig {
  const e = parseEnv(SERVICE_NAME, EnvChecked, env);
  return {
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    apiToken: e.API_TOKEN,
    signingKey: e.EXECUTOR_SIGNING_KEY,
    alerterToken: e.ALERTER_TOKEN,
    httpPort: e.HTTP_PORT,
    httpHost: e.HTTP_HOST,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    executorId: e.EXECUTOR_ID ?? `executor-${hostname().replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 40)}-${process.pid}`,
    pollMs: e.POLL_MS,
    leaseMs: e.LEASE_MS,
    commandTimeoutMs: e.COMMAND_TIMEOUT_MS,
    commandTtlMs: e.COMMAND_TTL_MS,
    verifyTimeoutMs: e.VERIFY_TIMEOUT_MS,
    verifyPollMs: e.VERIFY_POLL_MS,
    verifySettleMs: e.VERIFY_SETTLE_MS,
    sweepMs: e.SWEEP_MS,
    concurrency: e.EXECUTOR_CONCURRENCY,
    worker: e.EXECUTOR_WORKER,
    fleetSpecPath: e.FLEET_SPEC,
    deployHealthTimeoutMs: e.DEPLOY_HEALTH_TIMEOUT_MS,
    plannerUrl: e.PLANNER_URL,
    plannerToken: e.PLANNER_TOKEN ?? "",
  };
}
