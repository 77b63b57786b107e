import { TaskEnvelope } from "@steward/contracts/task";
import { AGENTS } from "./config.js";

export const MAX_TASK_ID = 200;
export const MAX_CONTENT = 20_000;

/** Why an envelope was refused; also the `reason` label of `steward_planner_inbox_rejected_total`. */
export type RejectReason =
  | "invalid_json"
  | "schema"
  | "blank_task_id"
  | "task_id_too_long"
  | "blank_content"
  | "content_too_long"
  | "non_positive_ttl"
  | "blank_idempotency_key"
  | "unknown_target_agent";

export type InboxVerdict = { ok: true; envelope: TaskEnvelope } | { ok: false; reason: RejectReason; field: string; message: string };

const blank = (s: string): boolean => s.trim() === "";

/** Pure: structural (zod) then semantic checks of an inbox envelope. The first problem wins and names its field. */
export function validateEnvelope(raw: unknown): InboxVerdict {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { ok: false, reason: "invalid_json", field: "(body)", message: "request body must be a JSON object" };
  const r = TaskEnvelope.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue?.path.map(String).join(".") || "(body)";
    return { ok: false, reason: "schema", field, message: `${field}: ${issue?.message ?? "invalid"}` };
  }
  const e = r.data;
  if (blank(e.task_id)) return { ok: false, reason: "blank_task_id", field: "task_id", message: "task_id must not be blank" };
  if (e.task_id.length > MAX_TASK_ID) return { ok: false, reason: "task_id_too_long", field: "task_id", message: `task_id must be at most ${MAX_TASK_ID} characters` };
  if (blank(e.content)) return { ok: false, reason: "blank_content", field: "content", message: "content must not be blank" };
  if (e.content.length > MAX_CONTENT) return { ok: false, reason: "content_too_long", field: "content", message: `content must be at most ${MAX_CONTENT} characters` };
  if (e.ttl_s !== undefined && !(e.ttl_s > 0)) return { ok: false, reason: "non_positive_ttl", field: "ttl_s", message: "ttl_s must be a positive number of seconds" };
  if (e.idempotency_key !== undefined && blank(e.idempotency_key)) return { ok: false, reason: "blank_idempotency_key", field: "idempotency_key", message: "idempotency_key must not be blank when given" };
  if (e.target_agent !== undefined && !(AGENTS as readonly string[]).includes(e.target_agent)) {
    return { ok: false, reason: "unknown_target_agent", field: "target_agent", message: `target_agent must be one of ${AGENTS.join(", ")}` };
  }
  return { ok: true, envelope: e };
}
