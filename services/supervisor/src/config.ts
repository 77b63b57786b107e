import { hostname } from "node:os";
import { z } from "zod";
import { durationMs, parseEnv, port, secretString } from "@steward/platform/config";

const Schema = z.object({
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  DATABASE_URL: z.string({ error: "is required" }).min(1, "is required"),
  FLEET_SPEC: z.string({ error: "is required (path to fleet.yaml)" }).min(1, "is required (path to fleet.yaml)"),
  /** When set, the snapshot is read from this file instead of the KV bucket. */
  SNAPSHOT_PATH: z.string().min(1).optional(),
  SUPERVISOR_ID: z.string().min(1).max(128).optional(),
  RECHECK_MS: durationMs(5000),
  FULL_RECHECK_MS: durationMs(60_000),
  SNAPSHOT_MAX_AGE_MS: durationMs(30_000),
  ACTION_TTL_MS: durationMs(3_600_000),
  LEADER_RETRY_MS: durationMs(1000),
  METRICS_PORT: port(9466),
  METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  /** Optional: where to escalate drift a restart does not explain (the planner's base URL) and its bearer token. */
  PLANNER_URL: z.string().url().optional(),
  PLANNER_TOKEN: z.string().optional(),
  ESCALATE_WINDOW_MS: durationMs(600_000),
  ESCALATE_CRASH_LOOP_COUNT: z.coerce.number().int().min(2).max(100).default(3),
  ESCALATE_HEALTH_FAIL_COUNT: z.coerce.number().int().min(2).max(100).default(3),
}).superRefine((e, ctx) => {
  if (!e.PLANNER_URL) return;
  const t = secretString(16).safeParse(e.PLANNER_TOKEN);
  if (!t.success) ctx.addIssue({ code: "custom", path: ["PLANNER_TOKEN"], message: `${t.error.issues[0]?.message ?? "is invalid"} (needed because PLANNER_URL is set)` });
});

/** Every setting this service reads from its environment (`steward up` passes these through and lists them in its help). */
export const SETTINGS: readonly string[] = [...Object.keys(Schema.shape)];

export interface SupervisorConfig {
  natsUrl: string;
  databaseUrl: string;
  fleetSpecPath: string;
  snapshotPath: string | undefined;
  supervisorId: string;
  /** A cycle without world changes (snapshot age, actions); cycles otherwise follow the world store's changes. */
  recheckMs: number;
  /** Every node is diffed again this often, not only the changed ones. */
  fullRecheckMs: number;
  snapshotMaxAgeMs: number;
  actionTtlMs: number;
  leaderRetryMs: number;
  metricsPort: number;
  metricsHost: string;
  /** Escalation to the planner; undefined without PLANNER_URL. */
  escalation: { plannerUrl: string; token: string; windowMs: number; crashLoopCount: number; healthFailCount: number } | undefined;
}

/** Parses the supervisor's settings from an env record; errors name the setting, never its value. */
export function loadSupervisorConfig(env: Record<string, string | undefined>): SupervisorConfig {
  const e = parseEnv("supervisor", Schema, env);
  return {
    natsUrl: e.NATS_URL,
    databaseUrl: e.DATABASE_URL,
    fleetSpecPath: e.FLEET_SPEC,
    snapshotPath: e.SNAPSHOT_PATH,
    supervisorId: e.SUPERVISOR_ID ?? `supervisor-${hostname()}-${process.pid}`,
    recheckMs: e.RECHECK_MS,
    fullRecheckMs: e.FULL_RECHECK_MS,
    snapshotMaxAgeMs: e.SNAPSHOT_MAX_AGE_MS,
    actionTtlMs: e.ACTION_TTL_MS,
    leaderRetryMs: e.LEADER_RETRY_MS,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    escalation: e.PLANNER_URL && e.PLANNER_TOKEN ? { plannerUrl: e.PLANNER_URL, token: e.PLANNER_TOKEN, windowMs: e.ESCALATE_WINDOW_MS, crashLoopCount: e.ESCALATE_CRASH_LOOP_COUNT, healthFailCount: e.ESCALATE_HEALTH_FAIL_COUNT } : undefined,
  };
}
