import { configuredSinks } from "@steward/alerter/config";

/**
 * `steward up` always runs the alerter. With no push sink set (any sink setting present counts, even empty: an empty
 * one must refuse to start loudly, not be skipped) it prints alerts on up's terminal instead (ALERT_CONSOLE).
 */
export const pushSinkSet = (env: NodeJS.ProcessEnv): boolean => configuredSinks(env).length > 0;

export const alerterDefaults = (env: NodeJS.ProcessEnv): Record<string, string> => (pushSinkSet(env) ? {} : { ALERT_CONSOLE: "true" });

export const alerterRunning = (env: NodeJS.ProcessEnv): string =>
  pushSinkSet(env) ? "alerter running (sinks from NTFY_*/TELEGRAM_*/WEBHOOK_* settings)" : "alerter running; no push sink set, so alerts are printed here (set NTFY_URL + NTFY_TOPIC, TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID + TELEGRAM_ALLOWED_USERS, or WEBHOOK_URL to push them)";
