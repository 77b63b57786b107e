import { transition, type Action, type ModelWrittenField } from "@steward/contracts/action";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { paint, type Paint } from "../color.js";
import { ago, shortId, table } from "../format.js";
import { terminalSafe } from "../terminal-text.js";

export function renderStatus(snap: Snapshot, now = Date.now()): string {
  const nodes = Object.values(snap.world.nodes).sort((a, b) => a.name.localeCompare(b.name));
  const out: string[] = [];
  out.push(`world as of ${snap.written_at} (${ago(snap.written_at, now)}), stream seq ${snap.world.last_seq}`);
  if (now - Date.parse(snap.written_at) > 30_000) out.push("WARNING: the snapshot is old: the observer may have stopped; treat everything below as unknown");
  out.push("");
  if (nodes.length === 0) {
    out.push("no node has reported yet");
    return out.join("\n");
  }
  out.push(
    table(
      ["NODE", "STATUS", "LAST HEARTBEAT", "LOAD", "MEM", "SERVICES"],
      nodes.map((n) => [n.name, n.status === "stale" ? "STALE" : "up", ago(n.last_heartbeat, now), n.host ? n.host.load1.toFixed(2) : null, n.host ? `${Math.round(n.host.mem_used_pct)}%` : null, Object.keys(n.services).length]),
    ),
  );
  out.push("");
  const rows = nodes.flatMap((n) =>
    Object.values(n.services)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((s) => [n.name, s.name, s.state, s.health, s.pid ?? null, s.declared ? "yes" : "NO", ago(s.since, now), s.detail ?? ""]),
  );
  out.push(table(["NODE", "SERVICE", "STATE", "HEALTH", "PID", "DECLARED", "SINCE", "DETAIL"], rows));
  return out.join("\n");
}

/** Each severity's colour on a terminal: `alert` is never acted on (the operator must look), `action` proposes a fix. */
const SEVERITY_COLOR: Record<DriftReport["drifts"][number]["severity"], Paint | undefined> = { alert: "red", action: "yellow", report: undefined };

export function renderDrift(r: DriftReport, now = Date.now(), color = false): string {
  // Painted text passes the CLI's terminal gate with its colour codes (paints: true), so what is painted is made
  // terminal-safe here first: the report is the supervisor's, and its messages quote what agents saw. The table's
  // cells are (format.ts); the other lines are below.
  const out: string[] = [];
  if (r.skipped) out.push(paint(color, "yellow", terminalSafe(`WARNING: last supervisor cycle skipped at ${r.skipped.at}: ${r.skipped.reason} (showing the last good report)`)));
  out.push(`computed ${ago(r.computed_at, now)} from world seq ${r.world_seq}`);
  if (r.drifts.length === 0) {
    out.push(paint(color, "green", "no drift: the fleet matches the spec"));
    return out.join("\n");
  }
  // Laid out first, coloured after: escape codes must not count toward the column widths. One line per drift.
  const lines = table(
    ["KIND", "NODE", "SERVICE", "SEVERITY", "PROPOSES", "SINCE", "MESSAGE"],
    r.drifts.map((d) => [d.kind, d.node, d.service, d.severity, d.proposes && d.held ? `${d.proposes} (HELD)` : d.proposes, ago(d.since, now), d.message.replace(/\s*\n\s*/g, " ")]),
  ).split("\n");
  // A held drift is an operator's decision, not a question: it is not painted as waiting for one.
  out.push(lines.map((l, i) => (i === 0 ? paint(color, "dim", l) : paint(color, r.drifts[i - 1]!.held ? "dim" : SEVERITY_COLOR[r.drifts[i - 1]!.severity], l))).join("\n"));
  const held = r.drifts.filter((d) => d.held);
  if (held.length > 0) {
    out.push("", "held (a rejection stands; nothing is proposed for these until the hold ends):");
    for (const d of held) {
      const h = d.held!;
      const ends = h.until === null ? "until the drift changes or clears" : h.cause === null ? `until ${h.until}` : `until ${h.until} or the drift changes or clears`;
      out.push(terminalSafe(`  ${d.key}: held by ${h.held_by} (${h.channel}) ${ago(h.created_at, now)}, ${ends}: ${h.reason}  [steward hold release ${h.action_id.slice(0, 8)}]`));
    }
  }
  return out.join("\n");
}

/** `steward drift --exit-code`: 1 when there is drift, 0 when there is none; without the flag always 0. */
export const driftExitCode = (r: DriftReport, exitCode: boolean): number => (exitCode && r.drifts.length > 0 ? 1 : 0);

export function renderActions(actions: Action[], now = Date.now()): string {
  if (actions.length === 0) return "no actions";
  return table(
    ["ID", "STATE", "KIND", "TARGET", "CREATED", "REASON"],
    actions.map((a) => [shortId(a.id), a.state, a.kind, `${a.node}/${a.service}`, ago(a.created_at, now), a.reason]),
  );
}

export function renderAction(a: { action: Action; audit: { at: string; from_state: string | null; to_state: string; actor: string; channel: string; detail: string | null }[] }): string {
  const x = a.action;
  const byModel = (field: ModelWrittenField): boolean => x.model_written?.includes(field) === true;
  const lines = [
    `action ${x.id}`,
    `  ${x.kind} ${x.node}/${x.service}: ${x.state}`,
    // A model's words are untrusted (it read logs anyone can write): say so wherever an approver reads them.
    ...(byModel("reason") ? [`  reason (written by a model, unverified):`, `             ${x.reason}`] : [`  reason:    ${x.reason}`]),
    ...(x.diagnosis ? (byModel("diagnosis") ? [`  diagnosis (written by a model, unverified):`, `             ${x.diagnosis}`] : [`  diagnosis: ${x.diagnosis}`]) : []),
    ...(x.result ? [`  result:    ${x.result}`] : []),
    // Only while it can still expire (pending, or approved and not started): a finished action's expiry means nothing.
    ...(transition(x.state, { type: "expire" }).ok ? [`  expires:   ${x.expires_at}`] : []),
    "",
    table(["AT", "FROM", "TO", "ACTOR", "CHANNEL", "DETAIL"], a.audit.map((e) => [e.at, e.from_state, e.to_state, e.actor, e.channel, e.detail])),
  ];
  return lines.join("\n");
}
