import { z } from "zod";

/** Request/reply subject on which a node-agent answers with the tail of a declared service's log. */
export const logTailSubject = (node: string): string => `steward.logs.${node}`;

export const LOG_TAIL_MAX_BYTES = 65_536;

export const LogTailRequest = z.strictObject({
  service: z.string().min(1).max(63),
  max_bytes: z.number().int().min(1).max(LOG_TAIL_MAX_BYTES).default(4096),
});
export type LogTailRequest = z.output<typeof LogTailRequest>;

export const LogTailReply = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    node: z.string(),
    service: z.string(),
    /** The last bytes of the log, cut at a line start, with secret-looking values redacted. */
    text: z.string(),
    bytes: z.number().int().nonnegative(),
    truncated: z.boolean(),
  }),
  z.strictObject({ ok: z.literal(false), code: z.enum(["invalid", "unknown_service", "no_log", "error"]), message: z.string() }),
]);
export type LogTailReply = z.infer<typeof LogTailReply>;

const SECRET_NAME = "[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_.-]*";

/** Masks values that look secret in free text (KEY=value pairs with secret-like names, bearer tokens, URL passwords). */
export function redactSecretsInText(text: string, knownValues: readonly string[] = []): string {
  let out = text
    .replace(new RegExp(`\\b(${SECRET_NAME})(\\s*[=:]\\s*)("[^"]*"|'[^']*'|\\S+)`, "gi"), "$1$2[redacted]")
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]")
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:@\s/]+):([^@\s]+)@/gi, "$1:[redacted]@")
    .replace(/\bsk-[A-Za-z0-9_-]{16,}/g, "[redacted]");
  for (const v of knownValues) if (v.length >= 4) out = out.split(v).join("[redacted]");
  return out;
}
