import { configuredSinks } from "@steward/alerter/config";

/** The alerter runs when any sink setting is present, even empty: an empty one must refuse to start loudly, not be skipped. */
export const alertsOn = (env: NodeJS.ProcessEnv): boolean => configuredSinks(env).length > 0;

export const ALERTS_OFF_MESSAGE = "alerts are off: no sink configured (set NTFY_URL + NTFY_TOPIC, TELEGRAM_BOT_TOKEN + TELEGRAM_CHAT_ID + TELEGRAM_ALLOWED_USERS, or WEBHOOK_URL)";
