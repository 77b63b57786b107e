import { type DeadLetter, NodeEvent } from "@steward/contracts/events";
import { EVENTS_SUBJECT_PREFIX } from "@steward/contracts/subjects";

export type Decoded = { ok: true; event: NodeEvent } | { ok: false; reason: DeadLetter["reason"]; detail: string };

/** Parses and validates one stream message; the subject's node token must name the event's node. */
export function decodeEventMessage(subject: string, data: Uint8Array): Decoded {
  let raw: unknown;
  try {
    // A view of the message's bytes, not a copy (Buffer.from(data) copied every event's payload once more).
    raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch (err) {
    return { ok: false, reason: "invalid_json", detail: (err as Error).message };
  }
  const res = NodeEvent.safeParse(raw);
  if (!res.success) {
    const detail = res.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    return { ok: false, reason: "schema", detail };
  }
  const prefix = `${EVENTS_SUBJECT_PREFIX}.`;
  const node = subject.startsWith(prefix) ? subject.slice(prefix.length).split(".")[0] : undefined;
  if (node !== res.data.node) {
    return { ok: false, reason: "subject_mismatch", detail: `subject ${subject} names node '${node ?? ""}' but the event is from node '${res.data.node}'` };
  }
  return { ok: true, event: res.data };
}
