import { z } from "zod";

export const LOG_TAIL_MAX_BYTES = 65_536;

export const LogTailRequest = z.strictObject({
  service: z.string().min(1).max(63),
  max_bytes: z.number().int().min(1).max(LOG_TAIL_MAX_BYTES).default(4096),
  /**
   * Only lines logged at or after / before this time (ISO 8601). Compose services only: the engine timestamps each
   * line (and the answer's lines start with that timestamp); a process log has no timestamps, so a range is refused.
   */
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
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
