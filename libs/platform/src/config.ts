import { z } from "zod";

/** Values that mean "nobody set this yet". A secret equal to one of them refuses to start. */
export const PLACEHOLDER_SECRETS = ["", "changeme", "change-me", "change_me", "generate_on_host", "todo", "tbd", "xxx", "placeholder", "secret", "password", "default", "example", "replace-me", "replaceme", "<secret>", "none", "null"];

/**
 * Placeholder words compared after dropping everything but letters and digits, so `__CHANGE_ME__`,
 * `Generate-On-Host` and `TODO!` count too. Only words nobody picks as a real secret.
 */
const PLACEHOLDER_WORDS = ["changeme", "generateonhost", "todo", "fixme", "tbd", "replaceme", "setme", "placeholder", "yoursecrethere", "yourpasswordhere", "insertsecrethere", "notset", "unset"];

export function isPlaceholderSecret(v: string | undefined | null): boolean {
  if (v === undefined || v === null) return true;
  const t = v.trim().toLowerCase();
  if (PLACEHOLDER_SECRETS.includes(t) || /^<.*>$/.test(t) || /^\$\{.*\}$/.test(t) || /^x+$/.test(t)) return true;
  const word = t.replace(/[^a-z0-9]/g, "");
  // `TODO: put the real one here`, `FIXME later`; and one character repeated (`********`, `00000000`).
  return PLACEHOLDER_WORDS.includes(word) || /^(todo|fixme|tbd|changeme)\b/.test(t) || /^(.)\1*$/su.test(t);
}

/** A zod string for a secret setting: required, at least `min` characters, not a placeholder. Never echoes the value. */
export function secretString(min = 16) {
  return z
    .string({ error: "is required" })
    .refine((v) => !isPlaceholderSecret(v), { message: "is empty or a placeholder; set a real secret" })
    .refine((v) => v.length >= min, { message: `must be at least ${min} characters` });
}

export class ConfigError extends Error {
  constructor(readonly service: string, readonly problems: { setting: string; message: string }[]) {
    super(`${service}: invalid configuration:\n` + problems.map((p) => `  ${p.setting}: ${p.message}`).join("\n"));
    this.name = "ConfigError";
  }
}

/** Parses an env-like record with a zod object schema; errors name the setting, never its value. */
export function parseEnv<S extends z.ZodType>(service: string, schema: S, env: Record<string, string | undefined>): z.output<S> {
  const res = schema.safeParse(env);
  if (res.success) return res.data;
  throw new ConfigError(
    service,
    res.error.issues.map((i) => ({ setting: i.path.join(".") || "(env)", message: i.message })),
  );
}

/** Common settings helpers. */
export const port = (def: number) => z.coerce.number().int().min(0).max(65535).default(def);
export const durationMs = (def: number) => z.coerce.number().int().positive().default(def);
export const boolFlag = (def: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"])
    .default(def ? "true" : "false")
    .transform((v) => v === "true" || v === "1" || v === "yes");

/** One implementation of URL redaction, in redact.ts; kept importable from here for the services' entry points. */
export { redactUrl } from "./redact.js";
