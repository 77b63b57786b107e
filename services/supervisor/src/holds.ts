import type { Drift, DriftHeld, Hold } from "@steward/contracts/drift";

/** A hold whose reason to exist went away: the apply step ends it through the actions repository. */
export interface HoldEnd {
  actionId: string;
  detail: string;
}

export interface HeldDrifts {
  /** The report's findings, each one an operator's hold covers marked `held`. */
  report: Drift[];
  end: HoldEnd[];
}

const note = (h: Hold): DriftHeld => ({ action_id: h.action_id, cause: h.cause, held_by: h.held_by, channel: h.channel, reason: h.reason, created_at: h.created_at, until: h.until });

/**
 * Whether a hold covers a finding: same service and action kind, on one of its nodes, with the same cause (the
 * drift kind, and a deploy's target revision). A hold without a cause (an action not proposed for a drift, held
 * for a time) covers whatever would propose that kind there.
 */
export function holdCovers(h: Hold, d: Drift): boolean {
  if (d.service !== h.service || !h.nodes.includes(d.node)) return false;
  if (h.cause === null) return d.proposes === h.kind;
  // Not `proposes`: a finding another rule stopped proposing (a failed revision) is still the same drift.
  return d.kind === h.cause && (h.target === null || (d.target ?? null) === h.target);
}

function whyEnded(h: Hold, drifts: readonly Drift[], unknownNodes: ReadonlySet<string>, now: Date): string | undefined {
  if (h.until !== null && Date.parse(h.until) <= now.getTime()) return `hold ended: its time ran out (${h.until})`;
  // Held by time only: nothing but the time or an operator ends it.
  if (h.cause === null) return undefined;
  if (drifts.some((d) => holdCovers(h, d))) return undefined;
  // Unknown is not cleared: a stale node or an old snapshot keeps the hold until the service is seen again.
  if (h.nodes.some((n) => unknownNodes.has(n))) return undefined;
  const now2 = drifts.find((d) => d.service === h.service && h.nodes.includes(d.node) && d.proposes === h.kind);
  return now2 ? `hold ended: the drift changed (now ${now2.key}${now2.target ? ` towards ${now2.target}` : ""})` : "hold ended: the drift cleared";
}

/**
 * Pure: which findings the operators' holds cover (they propose nothing while held, and the report says so), and
 * which holds end this cycle because their drift changed or cleared, or their time ran out. `holds` are the ones
 * not ended yet.
 */
export function applyHolds(drifts: readonly Drift[], holds: readonly Hold[], now: Date): HeldDrifts {
  const unknownNodes = new Set(drifts.filter((d) => d.kind === "unknown").map((d) => d.node));
  const end: HoldEnd[] = [];
  const active: Hold[] = [];
  for (const h of holds) {
    const why = whyEnded(h, drifts, unknownNodes, now);
    if (why) end.push({ actionId: h.action_id, detail: why });
    else active.push(h);
  }
  const report = drifts.map((d) => {
    const h = d.proposes !== null ? active.find((x) => holdCovers(x, d)) : undefined;
    return h ? { ...d, held: note(h) } : d;
  });
  return { report, end };
}
