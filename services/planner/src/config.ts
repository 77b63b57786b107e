import { hostname } from "node:os";
import { z } from "zod";
import type { LoopLimits } from "./investigation.js";
import type { SettingCredential } from "@steward/platform/credentials";
import type { PlannerRole } from "./access.js";
import { ConfigError, boolFlag, durationMs, parseEnv, port, secretString } from "@steward/platform/config";

export const SERVICE_NAME = "planner";

/** The agents the planner knows; an envelope's `target_agent` must be one of them. */
export const AGENTS = ["diagnostician", "operator-answerer"] as const;
export type AgentName = (typeof AGENTS)[number];

/**
 * An Ollama model group: one local model with its context window (`num_ctx`) and the estimated prompt size
 * above which the router escalates (`escalate_above_tokens`, at most `num_ctx`).
 */
export const ModelGroup = z.strictObject({
  model: z.string().min(1),
  num_ctx: z.number().int().positive(),
  escalate_above_tokens: z.number().int().positive(),
  /** Agents this group serves; the first group without `agents` serves everyone else. */
  agents: z.array(z.enum(AGENTS)).optional(),
});
export type ModelGroup = z.infer<typeof ModelGroup> & { name: string };

const DEFAULT_MODEL_GROUPS = JSON.stringify({ default: { model: "llama3.1:8b", num_ctx: 8192, escalate_above_tokens: 6000 } });

const usd = (def: number) => z.coerce.number().nonnegative().default(def);

const Env = z.object({
  DATABASE_URL: z.string({ error: "is required" }).min(1, "is required").refine((v) => /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL"),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  /** The bootstrap credential, named `admin` (role admin): what every component and the CLI used before issue 13. */
  API_TOKEN: secretString(16),
  /** Component credentials (optional): each component's own, narrow token on this API (docs/access.md). */
  SUPERVISOR_TOKEN: secretString(16).optional(),
  ALERTER_TOKEN: secretString(16).optional(),
  CONSOLE_TOKEN: secretString(16).optional(),
  HTTP_PORT: port(7071),
  HTTP_HOST: z.string().min(1).default("127.0.0.1"),
  /** /metrics has a listener of its own: the API port does not serve it. */
  METRICS_PORT: port(9469),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  FLEET_SPEC: z.string({ error: "is required (path to fleet.yaml)" }).min(1, "is required (path to fleet.yaml)"),
  PLANNER_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1-64 letters, digits, '.', '_' or '-'").optional(),
  OLLAMA_URL: z.string().url().default("http://127.0.0.1:11434"),
  OLLAMA_TIMEOUT_MS: durationMs(120_000),
  OLLAMA_HEALTH_TIMEOUT_MS: durationMs(1500),
  /** After a failed health check or call, Ollama counts as down for this long without being asked again. */
  OLLAMA_CIRCUIT_MS: durationMs(15_000),
  MODEL_GROUPS: z.string().min(1).default(DEFAULT_MODEL_GROUPS),
  CLAUDE_ENABLED: boolFlag(true),
  ANTHROPIC_BASE_URL: z.string().url().optional(),
  ANTHROPIC_API_KEY: z.string().optional(),
  CLAUDE_MODEL: z.string().min(1).default("claude-sonnet-4-6"),
  CLAUDE_MAX_TOKENS: z.coerce.number().int().min(64).max(64_000).default(2048),
  CLAUDE_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  CLAUDE_TIMEOUT_MS: durationMs(120_000),
  /** Prompts larger than this are refused even by Claude (trimmed evidence is used instead). */
  CLAUDE_CONTEXT_TOKENS: z.coerce.number().int().positive().default(180_000),
  /** Overrides of the configured model's input/output price (USD per million tokens); the table is MODEL_PRICES. */
  CLAUDE_PRICE_INPUT_PER_MTOK: z.coerce.number().nonnegative().optional(),
  CLAUDE_PRICE_OUTPUT_PER_MTOK: z.coerce.number().nonnegative().optional(),
  /** Prices per model, merged over DEFAULT_MODEL_PRICES: {"model": {"input", "output", "cache_write", "cache_read"}} in USD per million tokens. */
  MODEL_PRICES: z.string().min(1).optional(),
  CAP_PER_TASK_USD: usd(5),
  CAP_PER_AGENT_DAY_USD: usd(10),
  CAP_GLOBAL_DAY_USD: usd(30),
  WORKERS: z.coerce.number().int().min(0).max(64).default(2),
  POLL_MS: durationMs(500),
  LEASE_MS: durationMs(300_000),
  MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  BACKOFF_BASE_MS: durationMs(2000),
  BACKOFF_MAX_MS: durationMs(120_000),
  TASK_TTL_S: z.coerce.number().int().positive().default(3600),
  LOG_TAIL_BYTES: z.coerce.number().int().min(256).max(65_536).default(4096),
  LOG_TAIL_TIMEOUT_MS: durationMs(2000),
  EVENTS_WINDOW_MS: durationMs(3_600_000),
  /** How long a proposed action waits for approval before it expires. */
  ACTION_TTL_MS: durationMs(3_600_000),
  /** An incident ends once its service has been running (and healthy) this long with nothing about it open. */
  INCIDENT_QUIET_MS: durationMs(600_000),
  /** How often open incidents are checked against the world. */
  INCIDENT_CHECK_MS: durationMs(15_000),
  /** The same failure signature on the same service this many times within INCIDENT_RECUR_WINDOW_MS is a recurrence. */
  INCIDENT_RECUR_COUNT: z.coerce.number().int().min(2).max(100).default(3),
  INCIDENT_RECUR_WINDOW_MS: durationMs(30 * 86_400_000),
  /** Tool calls the investigation may make per task; 0 turns the tools off (one model call over the gathered evidence). */
  LOOP_MAX_STEPS: z.coerce.number().int().min(0).max(50).default(8),
  /** Wall time of a task's investigation (model calls included); past it the model must answer with what it has. */
  LOOP_MAX_MS: durationMs(180_000),
  /** How long one tool call may take before it is abandoned and the model told so. */
  TOOL_TIMEOUT_MS: durationMs(10_000),
  /** Characters of one tool answer the model sees (the rest is cut, and says so). */
  TOOL_OUTPUT_CHARS: z.coerce.number().int().min(500).max(100_000).default(6000),
  /** Bytes of log the service_logs tool reads from the node-agent to search and tail. */
  TOOL_LOG_BYTES: z.coerce.number().int().min(256).max(65_536).default(32_768),
});

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(Env.shape)];

/** One model's prices in USD per million tokens, as Anthropic bills them: input, output, cache writes and cache reads. */
export interface Prices {
  inputPerMTok: number;
  outputPerMTok: number;
  cacheWritePerMTok: number;
  cacheReadPerMTok: number;
}

export const ModelPrice = z.strictObject({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  cache_write: z.number().nonnegative(),
  cache_read: z.number().nonnegative(),
});
export type ModelPrice = z.infer<typeof ModelPrice>;

/**
 * Anthropic's list prices (USD per million tokens; 5-minute cache writes) for the models Steward is used with,
 * as published when this was written: check them against anthropic.com/pricing and override with MODEL_PRICES.
 */
export const DEFAULT_MODEL_PRICES: Readonly<Record<string, ModelPrice>> = {
  "claude-sonnet-4-6": { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 },
  "claude-sonnet-4-5": { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 },
  "claude-sonnet-4-0": { input: 3, output: 15, cache_write: 3.75, cache_read: 0.3 },
  "claude-opus-4-1": { input: 15, output: 75, cache_write: 18.75, cache_read: 1.5 },
  "claude-haiku-4-5": { input: 1, output: 5, cache_write: 1.25, cache_read: 0.1 },
};

/** Parses MODEL_PRICES over the defaults. Throws ConfigError naming the setting (and the model and field). */
export function parseModelPrices(raw: string | undefined): Record<string, ModelPrice> {
  if (raw === undefined) return { ...DEFAULT_MODEL_PRICES };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ConfigError(SERVICE_NAME, [{ setting: "MODEL_PRICES", message: 'is not valid JSON (expected {"model": {"input", "output", "cache_write", "cache_read"}})' }]);
  }
  const r = z.record(z.string().min(1), ModelPrice).safeParse(json);
  if (!r.success) throw new ConfigError(SERVICE_NAME, r.error.issues.map((i) => ({ setting: ["MODEL_PRICES", ...i.path.map(String)].join("."), message: i.message })));
  return { ...DEFAULT_MODEL_PRICES, ...r.data };
}

export interface Caps {
  perTaskUsd: number;
  perAgentDayUsd: number;
  globalDayUsd: number;
}

export interface PlannerConfig {
  databaseUrl: string;
  natsUrl: string;
  apiToken: string;
  /** The planner's setting credentials: API_TOKEN as `admin`, then each component token that is set. */
  settingCredentials: SettingCredential<PlannerRole>[];
  httpPort: number;
  httpHost: string;
  metricsPort: number;
  metricsHost: string;
  fleetSpecPath: string;
  plannerId: string;
  ollama: { url: string; timeoutMs: number; healthTimeoutMs: number; circuitMs: number };
  modelGroups: ModelGroup[];
  claude: {
    enabled: boolean;
    /** Why Claude is off, when it is. */
    disabledBecause: "config" | "no_key" | null;
    baseUrl: string | undefined;
    apiKey: string | undefined;
    model: string;
    maxTokens: number;
    maxRetries: number;
    timeoutMs: number;
    contextTokens: number;
  };
  /** The configured Claude model's prices (from the table, with the CLAUDE_PRICE_* overrides). */
  prices: Prices;
  caps: Caps;
  workers: number;
  pollMs: number;
  leaseMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  taskTtlS: number;
  logTailBytes: number;
  logTailTimeoutMs: number;
  eventsWindowMs: number;
  actionTtlMs: number;
  incidents: { quietMs: number; checkMs: number; recurCount: number; recurWindowMs: number };
  /** The investigation loop's limits. */
  loop: LoopLimits;
}

/** Parses MODEL_GROUPS and checks each group's escalation threshold fits its context window. Throws ConfigError naming the setting. */
export function parseModelGroups(raw: string): ModelGroup[] {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ConfigError(SERVICE_NAME, [{ setting: "MODEL_GROUPS", message: "is not valid JSON (expected {\"group\": {\"model\", \"num_ctx\", \"escalate_above_tokens\"}})" }]);
  }
  const r = z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "group names are lower-case letters, digits, '-' or '_'"), ModelGroup).safeParse(json);
  if (!r.success) {
    throw new ConfigError(SERVICE_NAME, r.error.issues.map((i) => ({ setting: ["MODEL_GROUPS", ...i.path.map(String)].join("."), message: i.message })));
  }
  const groups = Object.entries(r.data).map(([name, g]) => ({ name, ...g }));
  if (groups.length === 0) throw new ConfigError(SERVICE_NAME, [{ setting: "MODEL_GROUPS", message: "declare at least one model group" }]);
  const problems = groups
    .filter((g) => g.escalate_above_tokens > g.num_ctx)
    .map((g) => ({ setting: `MODEL_GROUPS.${g.name}.escalate_above_tokens`, message: `is ${g.escalate_above_tokens}, above the group's num_ctx ${g.num_ctx}; it must be <= num_ctx` }));
  for (const reserved of ["claude", "rules"]) {
    if (groups.some((g) => g.name === reserved)) problems.push({ setting: `MODEL_GROUPS.${reserved}`, message: `'${reserved}' is reserved for ${reserved === "claude" ? "Claude calls" : "rule-based answers"}` });
  }
  if (problems.length > 0) throw new ConfigError(SERVICE_NAME, problems);
  return groups;
}

/** The group that serves an agent: the first that lists it, else the first that lists no agents, else the first. */
export function groupFor(groups: readonly ModelGroup[], agent: string): ModelGroup {
  const g = groups.find((x) => x.agents?.includes(agent as AgentName)) ?? groups.find((x) => !x.agents) ?? groups[0];
  if (!g) throw new Error("no model group configured");
  return g;
}

/**
 * API_TOKEN is `admin`; SUPERVISOR_TOKEN, ALERTER_TOKEN, CONSOLE_TOKEN (when set) are `supervisor`, `alerter`,
 * `console` with those roles. Two settings holding the same token would make one credential two: refused.
 */
function plannerSettingCredentials(e: { API_TOKEN: string; SUPERVISOR_TOKEN?: string | undefined; ALERTER_TOKEN?: string | undefined; CONSOLE_TOKEN?: string | undefined }): SettingCredential<PlannerRole>[] {
  const all: SettingCredential<PlannerRole>[] = [{ name: "admin", role: "admin", token: e.API_TOKEN, setting: "API_TOKEN" }];
  const components = [
    ["SUPERVISOR_TOKEN", "supervisor", e.SUPERVISOR_TOKEN],
    ["ALERTER_TOKEN", "alerter", e.ALERTER_TOKEN],
    ["CONSOLE_TOKEN", "console", e.CONSOLE_TOKEN],
  ] as const;
  for (const [setting, role, token] of components) {
    if (token === undefined) continue;
    const same = all.find((c) => c.token === token);
    if (same) throw new ConfigError(SERVICE_NAME, [{ setting, message: `must differ from ${same.setting} (each credential is its own token)` }]);
    all.push({ name: role, role, token, setting });
  }
  return all;
}

/** Parses the planner's settings from an env record; a ConfigError names the setting, never its value. */
export function loadConfig(env: Record<string, string | undefined>): PlannerConfig {
  const e = parseEnv(SERVICE_NAME, Env, env);
  const settingCredentials = plannerSettingCredentials(e);
  const modelGroups = parseModelGroups(e.MODEL_GROUPS);
  const key = e.ANTHROPIC_API_KEY;
  const hasKey = key !== undefined && key.trim() !== "";
  // The key is a secret only when Claude is enabled: a placeholder key must not start a planner that would send it.
  if (e.CLAUDE_ENABLED && hasKey) {
    const k = secretString(16).safeParse(key);
    if (!k.success) throw new ConfigError(SERVICE_NAME, [{ setting: "ANTHROPIC_API_KEY", message: k.error.issues[0]?.message ?? "is invalid" }]);
  }
  const enabled = e.CLAUDE_ENABLED && hasKey;
  const table = parseModelPrices(e.MODEL_PRICES);
  const row = table[e.CLAUDE_MODEL];
  // A Claude call with no price could not be held to the caps: refuse to start rather than count it as free.
  if (enabled && !row && (e.CLAUDE_PRICE_INPUT_PER_MTOK === undefined || e.CLAUDE_PRICE_OUTPUT_PER_MTOK === undefined)) {
    throw new ConfigError(SERVICE_NAME, [{ setting: "MODEL_PRICES", message: `has no prices for CLAUDE_MODEL '${e.CLAUDE_MODEL}' (known: ${Object.keys(table).join(", ")}); add {"${e.CLAUDE_MODEL}": {"input", "output", "cache_write", "cache_read"}}` }]);
  }
  const input = e.CLAUDE_PRICE_INPUT_PER_MTOK ?? row?.input ?? 0;
  const prices: Prices = {
    inputPerMTok: input,
    outputPerMTok: e.CLAUDE_PRICE_OUTPUT_PER_MTOK ?? row?.output ?? 0,
    // Without a row, Anthropic's usual ratios to the input price (cache writes 1.25x, reads 0.1x).
    cacheWritePerMTok: row?.cache_write ?? input * 1.25,
    cacheReadPerMTok: row?.cache_read ?? input * 0.1,
  };
  return {
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    apiToken: e.API_TOKEN,
    settingCredentials,
    httpPort: e.HTTP_PORT,
    httpHost: e.HTTP_HOST,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    fleetSpecPath: e.FLEET_SPEC,
    plannerId: e.PLANNER_ID ?? `planner-${hostname().replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 40)}-${process.pid}`,
    ollama: { url: e.OLLAMA_URL, timeoutMs: e.OLLAMA_TIMEOUT_MS, healthTimeoutMs: e.OLLAMA_HEALTH_TIMEOUT_MS, circuitMs: e.OLLAMA_CIRCUIT_MS },
    modelGroups,
    claude: {
      enabled,
      disabledBecause: enabled ? null : !e.CLAUDE_ENABLED ? "config" : "no_key",
      baseUrl: e.ANTHROPIC_BASE_URL,
      apiKey: enabled ? key : undefined,
      model: e.CLAUDE_MODEL,
      maxTokens: e.CLAUDE_MAX_TOKENS,
      maxRetries: e.CLAUDE_MAX_RETRIES,
      timeoutMs: e.CLAUDE_TIMEOUT_MS,
      contextTokens: e.CLAUDE_CONTEXT_TOKENS,
    },
    prices,
    caps: { perTaskUsd: e.CAP_PER_TASK_USD, perAgentDayUsd: e.CAP_PER_AGENT_DAY_USD, globalDayUsd: e.CAP_GLOBAL_DAY_USD },
    workers: e.WORKERS,
    pollMs: e.POLL_MS,
    leaseMs: e.LEASE_MS,
    maxAttempts: e.MAX_ATTEMPTS,
    backoffBaseMs: e.BACKOFF_BASE_MS,
    backoffMaxMs: e.BACKOFF_MAX_MS,
    taskTtlS: e.TASK_TTL_S,
    logTailBytes: e.LOG_TAIL_BYTES,
    logTailTimeoutMs: e.LOG_TAIL_TIMEOUT_MS,
    eventsWindowMs: e.EVENTS_WINDOW_MS,
    actionTtlMs: e.ACTION_TTL_MS,
    incidents: { quietMs: e.INCIDENT_QUIET_MS, checkMs: e.INCIDENT_CHECK_MS, recurCount: e.INCIDENT_RECUR_COUNT, recurWindowMs: e.INCIDENT_RECUR_WINDOW_MS },
    loop: { maxSteps: e.LOOP_MAX_STEPS, maxMs: e.LOOP_MAX_MS, toolTimeoutMs: e.TOOL_TIMEOUT_MS, toolOutputChars: e.TOOL_OUTPUT_CHARS, toolLogBytes: e.TOOL_LOG_BYTES },
  };
}
