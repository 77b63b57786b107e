import { z } from "zod";
import type { SimilarIncident } from "@steward/contracts/incident";
import type { IncidentStore } from "./incident-store.js";

/**
 * Past incidents for the investigation loop (the `past_incidents` tool) and for `incident show`: the same service with
 * the same failure signature first, then incidents whose titles, diagnoses and post-mortems share words with `text`
 * (PostgreSQL full-text), each with how it ended and what was diagnosed, so the loop sees what fixed them.
 */
export const PastIncidentsArgs = z.strictObject({
  service: z.string().min(1).max(63).optional(),
  node: z.string().min(1).max(63).optional(),
  signature: z.string().min(1).max(200).optional(),
  text: z.string().min(1).max(2000).optional(),
  limit: z.number().int().min(1).max(10).optional(),
});
export type PastIncidentsArgs = z.infer<typeof PastIncidentsArgs>;

export async function findSimilarIncidents(store: Pick<IncidentStore, "similar">, q: PastIncidentsArgs & { excludeId?: number }): Promise<SimilarIncident[]> {
  return store.similar({ service: q.service, node: q.node, signature: q.signature, text: q.text, excludeId: q.excludeId, limit: q.limit ?? 5 });
}

/** Pure: the tool's answer as bounded text (at most `maxChars`), one block per incident. */
export function renderPastIncidents(list: readonly SimilarIncident[], maxChars = 4000): string {
  if (list.length === 0) return "No similar past incidents.";
  const text = list
    .map((s) =>
      [
        `#${s.id} ${s.node}/${s.service} ${s.signature} (${s.match === "signature" ? "same service and failure" : "similar words"}), opened ${s.opened_at}, ${s.state === "resolved" ? `resolved ${s.resolved_at}` : "still open"}`,
        `  ended: ${s.outcome ?? "not yet"}`,
        `  diagnosis: ${(s.diagnosis ?? "none").replace(/\s+/g, " ").slice(0, 500)}`,
      ].join("\n"),
    )
    .join("\n");
  return text.length > maxChars ? `${text.slice(0, maxChars - 1)}…` : text;
}
