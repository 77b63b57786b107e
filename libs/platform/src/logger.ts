import { pino, type Logger } from "pino";

export type { Logger };

/** Keys whose values are never logged, wherever they appear. */
export const REDACT_PATHS = [
  "token", "*.token", "fleetKey", "*.fleetKey", "fleet_key", "*.fleet_key", "password", "*.password",
  "secret", "*.secret", "authorization", "*.authorization", "headers.authorization", "req.headers.authorization",
  "apiToken", "*.apiToken", "databaseUrl", "*.databaseUrl", "signingKey", "*.signingKey", "privateKey", "*.privateKey",
  "seed", "*.seed", "nkeySeed", "*.nkeySeed",
];

export function createLogger(service: string, level: string = process.env["LOG_LEVEL"] ?? "info"): Logger {
  return pino({ name: service, level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } });
}

/** A logger for tests and library users that want silence. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
