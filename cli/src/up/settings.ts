import { ConfigError } from "@steward/platform/config";
import { OTEL_SETTINGS, tracingSettings } from "@steward/platform/otel-settings";
import { STACK_ID_ENV } from "@steward/platform/stack-member";
import * as alerter from "@steward/alerter/config";
import * as executor from "@steward/executor/config";
import * as nodeAgent from "@steward/node-agent/config";
import * as observer from "@steward/observer/config";
import * as planner from "@steward/planner/config";
import * as supervisor from "@steward/supervisor/config";

/** The services `steward up` runs, in start order. */
export const UP_SERVICES = ["observer", "planner", "executor", "supervisor", "alerter", "node-agent"] as const;
export type UpService = (typeof UP_SERVICES)[number];

interface ServiceConfig {
  /** Every setting the service reads, from its own config module. */
  settings: readonly string[];
  /** The service's own settings parser: throws ConfigError naming the setting. */
  load(env: Record<string, string | undefined>): unknown;
  /** Settings the service no longer reads and refuses by name (passed through so its check sees them; not in help). */
  removed?: readonly string[];
}

/**
 * The planner's own parser, plus what only a stack with one planner makes wrong: WORKERS=0 is an API-only planner
 * (one beside others that run the tasks); as the stack's only planner it would accept tasks and never run them.
 */
function loadStackPlanner(env: Record<string, string | undefined>): unknown {
  const c = planner.loadConfig(env);
  if (c.workers === 0) throw new ConfigError(planner.SERVICE_NAME, [{ setting: "WORKERS", message: "is 0: this stack's only planner would accept tasks and never run them; set 1 or more" }]);
  return c;
}

const CONFIGS: Record<UpService, ServiceConfig> = {
  observer: { settings: observer.SETTINGS, load: observer.loadConfig },
  planner: { settings: planner.SETTINGS, load: loadStackPlanner },
  executor: { settings: executor.SETTINGS, load: executor.loadConfig },
  supervisor: { settings: supervisor.SETTINGS, load: supervisor.loadSupervisorConfig },
  alerter: { settings: alerter.SETTINGS, load: (env) => alerter.loadConfig(env), removed: Object.keys(alerter.REMOVED_SETTINGS) },
  "node-agent": { settings: nodeAgent.SETTINGS, load: nodeAgent.loadConfig },
};

/**
 * The wiring `up` owns: where each service listens, how they find each other and the engines, their secrets and
 * paths. These are never taken from the environment (a stray HTTP_PORT must not put two stacks on one port).
 */
export const WIRING = new Set([
  "NATS_URL", "DATABASE_URL", "HTTP_PORT", "HTTP_HOST", "METRICS_PORT", "METRICS_HOST", "API_TOKEN", "ALERTER_TOKEN", "SUPERVISOR_TOKEN", "CONSOLE_TOKEN", "FLEET_KEY", "EXECUTOR_SIGNING_KEY", "NODE_COMMAND_PUBLIC_KEY", "FLEET_SPEC",
  "PLANNER_URL", "PLANNER_TOKEN", "EXECUTOR_URL", "SNAPSHOT_PATH", "NODE_NAME", "LOG_DIR", "STATE_DIR", "NATS_NKEY_SEED_FILE", "NATS_NKEY_SEED", "NATS_CA_FILE",
]);

/**
 * Read by every service (logger, tracing) outside their config schemas. Not OTEL_SERVICE_NAME: every service of the
 * stack would take that one name; each is `steward-<service>` (OTEL_RESOURCE_ATTRIBUTES can still add to all).
 */
const COMMON = ["LOG_LEVEL", ...OTEL_SETTINGS.filter((k) => k !== "OTEL_SERVICE_NAME")];

/** The settings of a service that `up` passes through from its own environment, in the service's order. */
export function passThroughSettings(svc: UpService): string[] {
  return [...CONFIGS[svc].settings.filter((k) => !WIRING.has(k)), ...COMMON.filter((k) => !CONFIGS[svc].settings.includes(k))];
}

/**
 * The environment a service gets: `up`'s defaults, then what the operator set (only the service's own settings, set
 * even when empty: an empty secret must refuse loudly, not be skipped), then the wiring, which always wins.
 */
export function serviceEnv(
  svc: UpService,
  o: { env: NodeJS.ProcessEnv; stackId: string; wiring: Record<string, string>; defaults?: Record<string, string> },
): Record<string, string> {
  const out: Record<string, string> = { PATH: o.env["PATH"] ?? "/usr/bin:/bin", ...(o.env["HOME"] ? { HOME: o.env["HOME"] } : {}), ...o.defaults };
  for (const k of [...passThroughSettings(svc), ...(CONFIGS[svc].removed ?? [])]) {
    const v = o.env[k];
    if (v !== undefined) out[k] = v;
  }
  return { ...out, ...o.wiring, [STACK_ID_ENV]: o.stackId };
}

/** Checks a service's environment with the service's own parser, before anything starts. */
export function checkSettings(svc: UpService, env: Record<string, string>): ConfigError | undefined {
  try {
    CONFIGS[svc].load(env);
    tracingSettings(svc, env);
    return undefined;
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
}

/** For `steward up --help`: each service and the settings it takes from the environment. */
export function renderSettingsHelp(width = 100): string {
  const lines: string[] = [];
  for (const svc of UP_SERVICES) {
    const names = passThroughSettings(svc);
    let line = `  ${svc.padEnd(11)}`;
    for (const n of names) {
      if (line.length + n.length + 1 > width && line.trim().length > svc.length) {
        lines.push(line.trimEnd());
        line = " ".repeat(13);
      }
      line += `${n} `;
    }
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}
