import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { z } from "zod";
import { boolFlag, ConfigError, durationMs, isPlaceholderSecret, port } from "@steward/platform/config";
import { defaultRules, Rules, type Rule } from "./rules.js";

export const SERVICE_NAME = "alerter";

const msOrZero = (def: number) => z.coerce.number({ error: "must be a number of milliseconds" }).int("must be a whole number of milliseconds").min(0, "must be 0 or more milliseconds").default(def);

const Base = z.object({
  DATABASE_URL: z.string({ error: "is required" }).min(1, "is required").refine((v) => /^postgres(ql)?:\/\//.test(v), "must be a postgres:// URL"),
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  EXECUTOR_URL: z.string().url("must be an http(s) URL").default("http://127.0.0.1:7070"),
  /** Where a phone reaches the executor's /approvals route (ntfy buttons); defaults to EXECUTOR_URL. */
  EXECUTOR_PUBLIC_URL: z.string().url("must be an http(s) URL").optional(),
  API_TOKEN: z.string({ error: "is required (the executor's API token)" }),
  PLANNER_URL: z.string().url("must be an http(s) URL").optional(),
  PLANNER_TOKEN: z.string().optional(),
  CONSOLE_URL: z.string().url("must be an http(s) URL").optional(),
  METRICS_PORT: port(9467),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  ALERTER_ID: z.string().min(1).max(128).optional(),
  ALERT_RULES_FILE: z.string().min(1).optional(),
  ALERT_EVAL_MS: durationMs(1000),
  /** Alertmanager's group_wait, group_interval and repeat_interval (ms; 0 = at once, or never for the repeat). */
  ALERT_GROUP_WAIT_MS: msOrZero(5_000),
  ALERT_GROUP_INTERVAL_MS: msOrZero(30_000),
  ALERT_REPEAT_INTERVAL_MS: msOrZero(3_600_000),
  /** An alert that fired this many times within ALERT_FLAP_WINDOW_MS is flapping (one alert until stable that long). */
  ALERT_FLAP_COUNT: z.coerce.number({ error: "must be a whole number from 2 to 100" }).int("must be a whole number from 2 to 100").min(2, "must be a whole number from 2 to 100").max(100, "must be a whole number from 2 to 100").default(3),
  ALERT_FLAP_WINDOW_MS: durationMs(300_000),
  /** How long a new node or service may go unreported before its drift alerts. */
  ALERT_NEW_GRACE_MS: msOrZero(60_000),
  /** How often the executor's and the planner's health checks are polled for the dead-man. */
  ALERT_LIVENESS_POLL_MS: durationMs(5_000),
  /** Print alerts as readable lines on stdout (`steward up` turns it on when no push sink is set). */
  ALERT_CONSOLE: boolFlag(false),
  ALERT_DRIFT_PERSIST_MIN: z.coerce.number().positive().default(15),
  ALERT_DEADMAN_S: z.coerce.number().positive().default(60),
  /** How often the planner's cost report and recurring incidents are read. */
  COST_POLL_MS: durationMs(60_000),
  RETRY_BASE_MS: durationMs(1000),
  RETRY_MAX_MS: durationMs(300_000),
  RETRY_QUICK_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(6),
  SEND_TIMEOUT_MS: durationMs(10_000),
  TELEGRAM_MODE: z.enum(["polling", "webhook"]).default("polling"),
  TELEGRAM_API_URL: z.string().url("must be an http(s) URL").default("https://api.telegram.org"),
  TELEGRAM_POLL_TIMEOUT_S: z.coerce.number().int().min(0).max(50).default(25),
  TASK_WAIT_MS: durationMs(600_000),
});

type Problems = { setting: string; message: string }[];

export interface NtfySinkConfig {
  url: string;
  topic: string;
  token: string | undefined;
  /**
   * Whether only the operators can read the topic. Only then do Approve/Reject buttons decide by themselves; on an
   * open topic they open a confirmation page in the console, where a signed-in operator decides.
   */
  protectedTopic: boolean;
}

/** The public ntfy server: a topic there is readable by anyone who knows its name unless reserved for an account. */
export const PUBLIC_NTFY_HOSTS: readonly string[] = ["ntfy.sh"];

/**
 * Pure: is the topic access-controlled? NTFY_TOPIC_PROTECTED says so explicitly; without it, a topic on a server of
 * your own that needs NTFY_TOKEN to publish counts as protected (set up read access alike), anything else as open.
 */
export function ntfyTopicProtected(o: { url: string; token: string | undefined; explicit: boolean | undefined }): boolean {
  if (o.explicit !== undefined) return o.explicit;
  let host = "";
  try {
    host = new URL(o.url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return o.token !== undefined && !PUBLIC_NTFY_HOSTS.includes(host);
}
export interface TelegramSinkConfig {
  apiUrl: string;
  token: string;
  chatId: string;
  allowedUsers: Set<string>;
  allowedChats: Set<string>;
  mode: "polling" | "webhook";
  webhookUrl: string | undefined;
  webhookSecret: string | undefined;
  pollTimeoutS: number;
}
export interface WebhookSinkConfig {
  url: string;
  token: string | undefined;
}

export interface AlerterConfig {
  databaseUrl: string;
  natsUrl: string;
  executorUrl: string;
  executorPublicUrl: string;
  apiToken: string;
  plannerUrl: string | undefined;
  plannerToken: string | undefined;
  consoleUrl: string | undefined;
  metricsPort: number;
  metricsHost: string;
  alerterId: string;
  rules: Rule[];
  evalMs: number;
  /** group_wait, group_interval, repeat_interval. */
  grouping: { waitMs: number; intervalMs: number; repeatMs: number };
  flap: { count: number; windowMs: number };
  graceMs: number;
  livenessPollMs: number;
  /** Print alerts on stdout (the console sink). */
  console: boolean;
  costPollMs: number;
  retry: { baseMs: number; maxMs: number; quickAttempts: number };
  sendTimeoutMs: number;
  taskWaitMs: number;
  ntfy: NtfySinkConfig | undefined;
  telegram: TelegramSinkConfig | undefined;
  webhook: WebhookSinkConfig | undefined;
}

export const SINK_SETTINGS = {
  ntfy: ["NTFY_URL", "NTFY_TOPIC", "NTFY_TOKEN", "NTFY_TOPIC_PROTECTED"],
  telegram: ["TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "TELEGRAM_ALLOWED_USERS", "TELEGRAM_ALLOWED_CHATS", "TELEGRAM_WEBHOOK_URL", "TELEGRAM_WEBHOOK_SECRET"],
  webhook: ["WEBHOOK_URL", "WEBHOOK_TOKEN"],
} as const;

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(Base.shape), ...Object.values(SINK_SETTINGS).flat()];

/**
 * Settings this service read once, each with what replaced it. Set, they refuse to start, naming the replacement:
 * an operator who tuned one must not run on the default without knowing. (`steward up` passes them through so that
 * its check sees them too; they are not listed in its help.)
 */
export const REMOVED_SETTINGS: Readonly<Record<string, string>> = {
  ALERT_RENOTIFY_MS: "was replaced by ALERT_REPEAT_INTERVAL_MS (how often an unchanged alert group is sent again, in ms; 0 = never): rename it",
};

/** Pure: one problem for each removed setting present in `env`, even empty (it was meant to mean something). */
export function removedSettingProblems(env: Record<string, string | undefined>): Problems {
  return Object.entries(REMOVED_SETTINGS)
    .filter(([k]) => env[k] !== undefined)
    .map(([setting, message]) => ({ setting, message }));
}

/** A sink counts as configured when any of its settings is present in the environment, even empty: then it must be right. */
export function configuredSinks(env: Record<string, string | undefined>): ("ntfy" | "telegram" | "webhook")[] {
  return (Object.keys(SINK_SETTINGS) as (keyof typeof SINK_SETTINGS)[]).filter((s) => SINK_SETTINGS[s].some((k) => env[k] !== undefined));
}

/** Hosts and words that mean "copied from the docs, never filled in". */
const PLACEHOLDER_URL = /(^|\.)example\.(com|org|net)$|\.example$|\.invalid$|changeme|change-me|placeholder|your[-_.]/i;


function sinkUrl(env: Record<string, string | undefined>, key: string, p: Problems): string | undefined {
  const v = env[key];
  if (v === undefined || isPlaceholderSecret(v)) {
    p.push({ setting: key, message: "is empty or a placeholder; set the sink's real URL" });
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(v.trim());
  } catch {
    p.push({ setting: key, message: "must be an http(s) URL" });
    return undefined;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    p.push({ setting: key, message: "must be an http(s) URL" });
    return undefined;
  }
  if (PLACEHOLDER_URL.test(u.hostname) || PLACEHOLDER_URL.test(u.pathname)) {
    p.push({ setting: key, message: "is a placeholder URL; set the sink's real URL" });
    return undefined;
  }
  return v.trim().replace(/\/+$/, "");
}

function secret(env: Record<string, string | undefined>, key: string, p: Problems, opts: { required: boolean; min?: number; pattern?: RegExp; patternMessage?: string }): string | undefined {
  const v = env[key];
  if (v === undefined && !opts.required) return undefined;
  if (v === undefined || isPlaceholderSecret(v)) {
    p.push({ setting: key, message: "is empty or a placeholder; set a real secret" });
    return undefined;
  }
  if (opts.min && v.length < opts.min) {
    p.push({ setting: key, message: `must be at least ${opts.min} characters` });
    return undefined;
  }
  if (opts.pattern && !opts.pattern.test(v)) {
    p.push({ setting: key, message: opts.patternMessage ?? "has the wrong format" });
    return undefined;
  }
  return v;
}

const idList = (v: string | undefined): Set<string> =>
  new Set(
    (v ?? "")
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter(Boolean),
  );

/** Parses the alerter's settings; every problem is collected, each naming its setting, never its value. */
export function loadConfig(env: Record<string, string | undefined>, readFile: (p: string) => string = (p) => readFileSync(p, "utf8")): AlerterConfig {
  const p: Problems = removedSettingProblems(env);
  const parsed = Base.safeParse(env);
  if (!parsed.success) for (const i of parsed.error.issues) p.push({ setting: i.path.join(".") || "(env)", message: i.message });
  const apiToken = secret(env, "API_TOKEN", p, { required: true, min: 16 });

  const sinks = configuredSinks(env);
  if (sinks.length === 0 && !["true", "1", "yes"].includes(env["ALERT_CONSOLE"] ?? "")) p.push({ setting: "NTFY_URL", message: "no alert sink configured: set NTFY_URL and NTFY_TOPIC, TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID, or WEBHOOK_URL (or ALERT_CONSOLE=true to print alerts on stdout)" });
  if (parsed.success) {
    const e = parsed.data;
    if (e.ALERT_REPEAT_INTERVAL_MS > 0 && e.ALERT_REPEAT_INTERVAL_MS < e.ALERT_GROUP_INTERVAL_MS) p.push({ setting: "ALERT_REPEAT_INTERVAL_MS", message: "must be 0 (never repeat) or at least ALERT_GROUP_INTERVAL_MS" });
  }

  let ntfy: NtfySinkConfig | undefined;
  if (sinks.includes("ntfy")) {
    const url = sinkUrl(env, "NTFY_URL", p);
    const topicRaw = env["NTFY_TOPIC"];
    let topic: string | undefined;
    if (topicRaw === undefined || isPlaceholderSecret(topicRaw)) p.push({ setting: "NTFY_TOPIC", message: "is empty or a placeholder; set the topic to publish to" });
    else if (!/^[-_A-Za-z0-9]{1,64}$/.test(topicRaw)) p.push({ setting: "NTFY_TOPIC", message: "must be 1-64 letters, digits, '-' or '_'" });
    else topic = topicRaw;
    const token = secret(env, "NTFY_TOKEN", p, { required: false, min: 8 });
    const flag = env["NTFY_TOPIC_PROTECTED"]?.trim().toLowerCase();
    let explicit: boolean | undefined;
    if (flag === "true" || flag === "1" || flag === "yes") explicit = true;
    else if (flag === "false" || flag === "0" || flag === "no") explicit = false;
    else if (flag !== undefined) p.push({ setting: "NTFY_TOPIC_PROTECTED", message: "must be true or false (whether only your operators can read the topic)" });
    if (url && topic) ntfy = { url, topic, token, protectedTopic: ntfyTopicProtected({ url, token, explicit }) };
  }

  let telegram: TelegramSinkConfig | undefined;
  if (sinks.includes("telegram")) {
    const token = secret(env, "TELEGRAM_BOT_TOKEN", p, { required: true, pattern: /^\d{3,}:[A-Za-z0-9_-]{20,}$/, patternMessage: "must look like <bot id>:<secret> as BotFather gives it" });
    const chat = env["TELEGRAM_CHAT_ID"];
    let chatId: string | undefined;
    if (chat === undefined || isPlaceholderSecret(chat)) p.push({ setting: "TELEGRAM_CHAT_ID", message: "is empty or a placeholder; set the chat id alerts go to" });
    else if (!/^(-?\d+|@[A-Za-z0-9_]{5,})$/.test(chat.trim())) p.push({ setting: "TELEGRAM_CHAT_ID", message: "must be a numeric chat id or @channelname" });
    else chatId = chat.trim();
    const allowedUsers = idList(env["TELEGRAM_ALLOWED_USERS"]);
    const allowedChats = idList(env["TELEGRAM_ALLOWED_CHATS"]);
    for (const [k, set] of [["TELEGRAM_ALLOWED_USERS", allowedUsers], ["TELEGRAM_ALLOWED_CHATS", allowedChats]] as const) {
      if ([...set].some((x) => !/^-?\d+$/.test(x))) p.push({ setting: k, message: "must be a comma-separated list of numeric ids" });
    }
    if (allowedUsers.size === 0 && allowedChats.size === 0) p.push({ setting: "TELEGRAM_ALLOWED_USERS", message: "is empty: allow-list at least one user id (or chat id in TELEGRAM_ALLOWED_CHATS), or nobody can approve" });
    const mode = parsed.success ? parsed.data.TELEGRAM_MODE : "polling";
    let webhookUrl: string | undefined;
    let webhookSecret: string | undefined;
    if (mode === "webhook") {
      webhookUrl = sinkUrl(env, "TELEGRAM_WEBHOOK_URL", p);
      webhookSecret = secret(env, "TELEGRAM_WEBHOOK_SECRET", p, { required: true, min: 16, pattern: /^[A-Za-z0-9_-]{16,256}$/, patternMessage: "must be 16-256 letters, digits, '_' or '-' (Telegram's rule for secret_token)" });
    }
    if (token && chatId && parsed.success) {
      telegram = { apiUrl: parsed.data.TELEGRAM_API_URL.replace(/\/+$/, ""), token, chatId, allowedUsers, allowedChats, mode, webhookUrl, webhookSecret, pollTimeoutS: parsed.data.TELEGRAM_POLL_TIMEOUT_S };
    }
  }

  let webhook: WebhookSinkConfig | undefined;
  if (sinks.includes("webhook")) {
    const url = sinkUrl(env, "WEBHOOK_URL", p);
    const token = secret(env, "WEBHOOK_TOKEN", p, { required: false, min: 8 });
    if (url) webhook = { url, token };
  }

  // Its own credential on the planner (the planner's ALERTER_TOKEN), required with PLANNER_URL: its executor
  // credential (API_TOKEN) is never sent to the planner.
  const plannerWanted = env["PLANNER_URL"] !== undefined && env["PLANNER_URL"] !== "";
  if (plannerWanted && env["PLANNER_TOKEN"] === undefined) p.push({ setting: "PLANNER_TOKEN", message: "is required when PLANNER_URL is set (the planner's ALERTER_TOKEN for this alerter; its API_TOKEN is the executor's credential and is never sent to the planner)" });
  const plannerToken = env["PLANNER_TOKEN"] === undefined ? undefined : secret(env, "PLANNER_TOKEN", p, { required: true, min: 16 });

  let rules: Rule[] = [];
  if (parsed.success) {
    const e = parsed.data;
    if (e.ALERT_RULES_FILE) {
      let raw: unknown;
      try {
        raw = JSON.parse(readFile(e.ALERT_RULES_FILE));
      } catch (err) {
        p.push({ setting: "ALERT_RULES_FILE", message: `cannot read it as JSON: ${(err as Error).message.split("\n")[0]}` });
      }
      if (raw !== undefined) {
        const r = Rules.safeParse(raw);
        if (r.success) rules = r.data;
        else for (const i of r.error.issues) p.push({ setting: "ALERT_RULES_FILE", message: `${i.path.join(".") || "(rules)"}: ${i.message}` });
      }
    } else {
      rules = defaultRules({ driftPersistMin: e.ALERT_DRIFT_PERSIST_MIN, deadmanS: e.ALERT_DEADMAN_S });
    }
  }

  if (p.length > 0 || !parsed.success || !apiToken) throw new ConfigError(SERVICE_NAME, p);
  const e = parsed.data;
  return {
    databaseUrl: e.DATABASE_URL,
    natsUrl: e.NATS_URL,
    executorUrl: e.EXECUTOR_URL.replace(/\/+$/, ""),
    executorPublicUrl: (e.EXECUTOR_PUBLIC_URL ?? e.EXECUTOR_URL).replace(/\/+$/, ""),
    apiToken,
    plannerUrl: e.PLANNER_URL?.replace(/\/+$/, ""),
    plannerToken,
    consoleUrl: e.CONSOLE_URL?.replace(/\/+$/, ""),
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    alerterId: e.ALERTER_ID ?? `alerter-${hostname()}-${process.pid}`,
    rules,
    evalMs: e.ALERT_EVAL_MS,
    grouping: { waitMs: e.ALERT_GROUP_WAIT_MS, intervalMs: e.ALERT_GROUP_INTERVAL_MS, repeatMs: e.ALERT_REPEAT_INTERVAL_MS },
    flap: { count: e.ALERT_FLAP_COUNT, windowMs: e.ALERT_FLAP_WINDOW_MS },
    graceMs: e.ALERT_NEW_GRACE_MS,
    livenessPollMs: e.ALERT_LIVENESS_POLL_MS,
    console: e.ALERT_CONSOLE,
    costPollMs: e.COST_POLL_MS,
    retry: { baseMs: e.RETRY_BASE_MS, maxMs: e.RETRY_MAX_MS, quickAttempts: e.RETRY_QUICK_ATTEMPTS },
    sendTimeoutMs: e.SEND_TIMEOUT_MS,
    taskWaitMs: e.TASK_WAIT_MS,
    ntfy,
    telegram,
    webhook,
  };
}
