/** Settings the operator gives the alerter through `steward up`'s environment (sinks, rules, timings). */
const PASS = /^(NTFY_|TELEGRAM_|WEBHOOK_|ALERT_|RETRY_|CONSOLE_URL$|EXECUTOR_PUBLIC_URL$)/;
const SINK_KEYS = ["NTFY_URL", "NTFY_TOPIC", "NTFY_TOKEN", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "WEBHOOK_URL"];

/** The alerter runs when any sink setting is present, even empty: an empty one must refuse to start loudly, not be skipped. */
export function alerterEnv(env: NodeJS.ProcessEnv): Record<string, string> | undefined {
  if (!SINK_KEYS.some((k) => env[k] !== undefined)) return undefined;
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => PASS.test(e[0]) && e[1] !== undefined));
}

export const ALERTS_OFF_MESSAGE = "alerts are off: no sink configured (set NTFY_URL + NTFY_TOPIC, TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID + TELEGRAM_ALLOWED_USERS, or WEBHOOK_URL)";
