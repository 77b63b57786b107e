import type { DrillEntry } from "@steward/actions/drills";
import { DrillParams } from "@steward/contracts/drill";
import { html, type Html } from "./html.js";
import { badge, when } from "./views.js";

/** What the Drills page says about one drill: its state in one word, whether its objective was met, and why. */
export interface DrillOutcome {
  /** The drill's verdict once it has one, else its action's state (a drill is an action until it is done). */
  status: string;
  /** The objective in the operator's words: met, missed, refused, not measured, or where the drill is now. */
  objective: "met" | "missed" | "refused" | "not measured" | "waiting for approval" | "in progress" | "rejected" | "expired";
  /** Why: the result's reason, or the action's result (a rejection's reason, a failure); null while there is none. */
  reason: string | null;
  objectiveMs: number | null;
}

/**
 * Pure: the outcome of one drill from its action and its result. A result decides (passed = met, missed, refused
 * before the kill, failed = the kill or the watch did not happen); without one, the action's state says where it is.
 */
export function drillOutcome(d: DrillEntry): DrillOutcome {
  const params = DrillParams.safeParse(d.action.params);
  const objectiveMs = d.result?.objective_ms ?? (params.success ? params.data.objective_ms : null);
  const r = d.result;
  if (r) {
    const objective = r.verdict === "passed" ? "met" : r.verdict === "missed" ? "missed" : r.verdict === "refused" ? "refused" : "not measured";
    return { status: r.verdict, objective, reason: r.reason, objectiveMs };
  }
  const a = d.action;
  const objective = a.state === "pending" ? "waiting for approval" : a.state === "rejected" ? "rejected" : a.state === "expired" ? "expired" : a.state === "approved" || a.state === "running" ? "in progress" : "not measured";
  return { status: a.state, objective, reason: a.result, objectiveMs };
}

const secs = (ms: number | null | undefined): string => (ms === null || ms === undefined ? "–" : `${(ms / 1000).toFixed(1)} s`);

function row(d: DrillEntry, now: Date): Html {
  const o = drillOutcome(d);
  const a = d.action;
  const r = d.result;
  const step = (label: string, ms: number | null | undefined, extra: Html | string = "") => html`<li class="step" data-step="${label}"><span class="muted">${label}</span> ${secs(ms)}${extra}</li>`;
  return html`<tr class="drill" data-drill-id="${a.id}" data-status="${o.status}" data-objective="${o.objective}">
<td>${badge(o.status)}</td>
<td class="target"><a href="/console/actions/${encodeURIComponent(a.id)}">${a.node}/${a.service}</a></td>
<td class="objective"><strong>${o.objective}</strong>${o.objectiveMs !== null ? html` <span class="muted">(${secs(o.objectiveMs)})</span>` : ""}${o.reason ? html`<div class="reason">${o.reason}</div>` : ""}</td>
<td>${r?.started_at
    ? html`<ul class="steps">${step("down", r.detected_ms)}${step("restart pending", r.proposed_ms)}${step("approved", r.approved_ms, r.approved_by ? html` <span class="muted">by ${r.approved_by}</span>` : "")}${step("healthy", r.recovered_ms)}</ul>`
    : html`<span class="muted">not started</span>`}</td>
<td class="times"><div>proposed ${when(a.created_at, now)} by ${a.proposed_by}</div>${r?.started_at ? html`<div>killed ${when(r.started_at, now)}</div>` : ""}${r ? html`<div>finished ${when(r.finished_at, now)}</div>` : ""}</td>
</tr>`;
}

/** The Drills page: every drill, newest first, with its verdict, timings against its objective and its reason. */
export function drillsBody(d: { ok: true; drills: DrillEntry[] } | { ok: false; message: string }, now: Date): Html {
  if (!d.ok) return html`<h1>Restart drills</h1><section class="card"><p class="banner">${d.message}</p></section>`;
  const count = (o: DrillOutcome["objective"]) => d.drills.filter((x) => drillOutcome(x).objective === o).length;
  return html`<h1>Restart drills</h1>
<p class="muted" id="drill-summary">${d.drills.length} drills: ${count("met")} met their objective, ${count("missed")} missed, ${count("refused")} refused, ${count("waiting for approval") + count("in progress")} open.</p>
<section class="card">${d.drills.length === 0
    ? html`<p class="muted">No drills yet. Propose one with <code>steward drill SERVICE</code> (see docs/drills.md).</p>`
    : html`<table class="drills"><thead><tr><th>verdict</th><th>service</th><th>objective</th><th>after the kill</th><th>when</th></tr></thead><tbody>
${d.drills.map((x) => row(x, now))}
</tbody></table>`}</section>
<p class="muted">Times are seconds after the kill. A drill refused when it was proposed changed nothing and is not listed; one refused when it was about to run is.</p>`;
}
