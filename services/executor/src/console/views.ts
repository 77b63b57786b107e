import { transition, type Action, type AuditEntry, type ModelWrittenField } from "@steward/contracts/action";
import type { CostReport, Task } from "@steward/contracts/task";
import type { DriftHeld, DriftReport } from "@steward/contracts/drift";
import type { NodeState, Snapshot } from "@steward/contracts/world-state";
import type { KvRead } from "../world.js";
import { spendChart } from "./chart.js";
import { html, type Html } from "./html.js";
import type { PlannerRead } from "./planner-client.js";
import type { Session } from "./sessions.js";
import type { AlertsRead } from "./alerts-client.js";
import { permits } from "../access.js";

export type Page = "overview" | "actions" | "alerts" | "drills" | "tasks";

/** A snapshot older than this is flagged: the observer may have stopped writing. */
export const SNAPSHOT_STALE_MS = 60_000;

export function age(iso: string | null | undefined, now: Date): string {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now.getTime() - t) / 1000);
  if (s < 0) return `in ${fmtDuration(-s)}`;
  return `${fmtDuration(s)} ago`;
}

function fmtDuration(s: number): string {
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export const when = (iso: string | null | undefined, now: Date): Html => html`<time datetime="${iso ?? ""}" title="${iso ?? ""}">${age(iso, now)}</time>`;
export const badge = (s: string): Html => html`<span class="badge s-${s.replace(/[^a-z_]/g, "")}">${s}</span>`;

function csrfField(session: Session): Html {
  return html`<input type="hidden" name="csrf" value="${session.csrf}">`;
}

export function layout(opts: { title: string; session: Session; page: Page | null; planner: boolean; body: Html }): Html {
  const { session, page } = opts;
  const link = (p: Page, href: string, label: string) => html`<a href="${href}" class="${page === p ? "here" : ""}">${label}</a>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${opts.title} · Steward</title><link rel="stylesheet" href="/console/static/console.css"></head>
<body>
<header class="top"><span class="brand">Steward</span>
${link("overview", "/console", "Fleet")}${link("actions", "/console/actions", "Actions")}${link("alerts", "/console/alerts", "Alerts")}${link("drills", "/console/drills", "Drills")}${opts.planner ? link("tasks", "/console/tasks", "Tasks & cost") : ""}
<span id="live" class="live">connecting</span>
<span class="who">signed in as <strong>${session.actor}</strong></span>
<form method="post" action="/console/logout">${csrfField(session)}<button type="submit">Sign out</button></form>
</header>
${flash(session)}<main id="main">${opts.body}</main>
<script src="/console/static/console.js"></script>
</body></html>`;
}

/**
 * The confirmation a confirm-only button (an ntfy push into an open topic) opens: exactly what will run and the
 * decision the button carries, and one form that decides it as the signed-in operator.
 */
export function confirmBody(d: { action: Action; decision: "approve" | "reject"; token: string; expiresAt: string }, session: Session, now: Date): Html {
  const a = d.action;
  const verb = d.decision === "approve" ? "Approve" : "Reject";
  const form = permits(session.role, "decide")
    ? html`<form method="post" action="/console/confirm" class="decide">${csrfField(session)}<input type="hidden" name="token" value="${d.token}"><input type="hidden" name="action" value="${a.id}"><input type="hidden" name="decision" value="${d.decision}">
${d.decision === "reject" ? html`<label>Reason <input name="reason" required maxlength="2000"></label>` : ""}<button type="submit" class="${d.decision}">${verb} ${a.kind} of ${a.node}/${a.service}</button></form>`
    : html`<p class="banner" role="alert">'${session.actor}' is a ${session.role} and may not ${d.decision}.</p>`;
  return html`<h1>${verb} ${a.kind} ${a.node}/${a.service}? ${badge(a.state)}</h1>
<section class="card confirm" data-action-id="${a.id}" data-decision="${d.decision}">
<p>A notification button asks to <strong>${d.decision}</strong> this action. Nothing has been decided: confirm below, signed in as <strong>${session.actor}</strong>.</p>
<p class="muted">id <code>${a.id}</code>; proposed ${when(a.created_at, now)}; this button expires ${when(d.expiresAt, now)}</p>
${whatRuns(a)}
${a.state === "pending" ? form : html`<p class="banner" role="alert">The action is ${a.state}, not pending: there is nothing to confirm.</p>`}
<p><a href="/console/actions/${encodeURIComponent(a.id)}">The action and its audit log</a></p>
</section>`;
}

export function loginPage(opts: { error?: string | undefined; next?: string | undefined }): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Steward</title><link rel="stylesheet" href="/console/static/console.css"></head>
<body><form class="login" method="post" action="/console/login">
<h1>Steward console</h1>
${opts.error ? html`<p class="error-text" role="alert">${opts.error}</p>` : ""}
${opts.next ? html`<input type="hidden" name="next" value="${opts.next}">` : ""}
<label for="token">Your token (its name is shown in the audit log)</label><input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></body></html>`;
}

export function errorPage(title: string, message: string, signedIn: boolean): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · Steward</title><link rel="stylesheet" href="/console/static/console.css"></head>
<body><main><h1>${title}</h1><p class="error-text" role="alert">${message}</p>
<p><a href="${signedIn ? "/console" : "/console/login"}">${signedIn ? "Back to the console" : "Sign in"}</a></p></main></body></html>`;
}

function flash(session: Session): Html {
  const f = session.flash;
  if (!f) return html``;
  session.flash = undefined;
  // Outside #main, so a live refresh of the page body does not wipe the outcome the operator just caused.
  return html`<p class="flash ${f.kind}" role="status">${f.text}</p>`;
}

function nodeCard(node: NodeState, now: Date): Html {
  const svcs = Object.values(node.services).sort((a, b) => a.name.localeCompare(b.name));
  const stale = node.status === "stale";
  return html`<section class="card node" data-node="${node.name}">
<div class="node-head"><h3>${node.name}</h3>${badge(node.status)}
<span class="muted">last heartbeat ${when(node.last_heartbeat, now)} (every ${Math.round(node.heartbeat_interval_ms / 1000)} s)</span>
${node.host ? html`<span class="muted">load ${node.host.load1.toFixed(2)}, memory ${Math.round(node.host.mem_used_pct)}%</span>` : ""}
${node.dropped_events > 0 ? html`<span class="error-text">${node.dropped_events} events dropped</span>` : ""}</div>
${stale ? html`<p class="banner">No heartbeats: this node is stale and the state of its services is unknown.</p>` : ""}
${svcs.length === 0
    ? html`<p class="muted">No services reported.</p>`
    : html`<table><thead><tr><th>service</th><th>state</th><th>health</th><th>since</th><th>detail</th></tr></thead><tbody>
${svcs.map((s) => {
        const failing = Object.entries(s.checks).filter(([, c]) => !c.ok);
        return html`<tr class="service" data-service="${s.name}" data-state="${s.state}" data-health="${s.health}">
<td class="name">${s.name}${s.declared ? "" : html` <span class="badge s-report">undeclared</span>`}</td>
<td>${badge(s.state)}</td><td>${badge(s.health)}</td><td>${when(s.since, now)}</td>
<td>${s.detail ?? ""}${failing.map(([k, c]) => html`<div class="error-text">${k}: ${c.detail ?? "failing"} (${c.consecutive_failures}×)</div>`)}${s.pid ? html`<span class="muted"> pid ${s.pid}</span>` : ""}</td></tr>`;
      })}
</tbody></table>`}
</section>`;
}

function fleet(snapshot: KvRead<Snapshot>, now: Date): Html {
  if (!snapshot.ok) {
    return html`<p class="banner" data-fleet="${snapshot.code}">${snapshot.code === "none" ? "No world snapshot yet: is the observer running?" : snapshot.message}</p>`;
  }
  const snap = snapshot.value;
  const nodes = Object.values(snap.world.nodes).sort((a, b) => a.name.localeCompare(b.name));
  const old = now.getTime() - Date.parse(snap.written_at) > SNAPSHOT_STALE_MS;
  return html`<p class="muted">Snapshot written ${when(snap.written_at, now)} by ${snap.observer_id}; ${snap.world.events_applied} events folded.</p>
${old ? html`<p class="banner">The world snapshot is more than ${SNAPSHOT_STALE_MS / 1000} s old: the observer may have stopped; what is shown may no longer be true.</p>` : ""}
${nodes.length === 0 ? html`<p class="muted">No nodes have reported yet.</p>` : nodes.map((n) => nodeCard(n, now))}`;
}

/** A held drift: the rejection that holds it, by whom, why and until when (nothing is proposed meanwhile). */
function heldCell(proposes: string | null, h: DriftHeld, now: Date): Html {
  const ends = h.until === null ? "until the drift changes or clears" : h.cause === null ? html`until ${when(h.until, now)}` : html`until ${when(h.until, now)} or the drift changes`;
  return html`<span class="held" data-held="${h.action_id}">${proposes ?? ""} held by ${h.held_by} (${h.channel}) ${ends}: ${h.reason}</span>`;
}

function drifts(drift: KvRead<DriftReport>, now: Date): Html {
  if (!drift.ok) return html`<p class="muted">${drift.code === "none" ? "No drift report yet: is the supervisor running?" : drift.message}</p>`;
  const d = drift.value;
  return html`<p class="muted">Computed ${when(d.computed_at, now)} by ${d.supervisor_id}.</p>
${d.skipped ? html`<p class="banner">The last cycle did not run (${d.skipped.reason}, ${age(d.skipped.at, now)}); this is the last good report.</p>` : ""}
${d.drifts.length === 0
    ? html`<p class="ok-text">No drift: the fleet matches its declaration.</p>`
    : html`<table><thead><tr><th>kind</th><th>where</th><th>severity</th><th>what</th><th>since</th><th>proposes</th></tr></thead><tbody>
${d.drifts.map((x) => html`<tr class="drift" data-key="${x.key}"><td>${badge(x.kind)}</td><td>${x.node}/${x.service}</td><td>${badge(x.severity)}</td><td>${x.message}</td><td>${x.since ? when(x.since, now) : ""}</td><td>${x.held ? heldCell(x.proposes, x.held, now) : (x.proposes ?? "")}</td></tr>`)}
</tbody></table>`}`;
}

/** A model's words are untrusted (it read logs anyone can write): the label says so next to them. */
const byModel = (a: Action, field: ModelWrittenField): Html | string => (a.model_written?.includes(field) ? html` <span class="badge model-written" title="written by a model from logs and tool output; not verified by Steward">written by a model, unverified</span>` : "");

/** Exactly what approving will run: the kind, the target and every parameter, nothing summarised away. */
function whatRuns(a: Action): Html {
  const params = a.params && Object.keys(a.params).length > 0 ? JSON.stringify(a.params, null, 2) : null;
  return html`<dl class="what">
<dt>will run</dt><dd><code class="command">${a.kind} ${a.service} on ${a.node}</code></dd>
<dt>kind</dt><dd>${a.kind}</dd><dt>node</dt><dd>${a.node}</dd><dt>service</dt><dd>${a.service}</dd>
<dt>params</dt><dd>${params ? html`<pre class="params">${params}</pre>` : html`<span class="muted">none</span>`}</dd>
<dt>reason${byModel(a, "reason")}</dt><dd${a.model_written?.includes("reason") ? html` class="model-written"` : ""}>${a.reason}</dd>
<dt>diagnosis${byModel(a, "diagnosis")}</dt><dd>${a.diagnosis ? html`<pre class="diagnosis${a.model_written?.includes("diagnosis") ? " model-written" : ""}">${a.diagnosis}</pre>` : html`<span class="muted">none</span>`}</dd>
<dt>proposed by</dt><dd>${a.proposed_by}${a.task_id ? html` (task <code>${a.task_id}</code>)` : ""}</dd>
${a.drift_key ? html`<dt>drift</dt><dd><code>${a.drift_key}</code></dd>` : ""}
</dl>`;
}

function decideForms(a: Action, session: Session, back: string): Html {
  const base = `/console/actions/${encodeURIComponent(a.id)}`;
  return html`<div class="decide">
<form method="post" action="${base}/approve">${csrfField(session)}<input type="hidden" name="back" value="${back}"><button type="submit" class="approve">Approve</button></form>
<form method="post" action="${base}/reject">${csrfField(session)}<input type="hidden" name="back" value="${back}">
<input type="text" name="reason" placeholder="why reject (required)" required maxlength="2000" aria-label="reason to reject"><button type="submit" class="reject">Reject</button></form>
</div>`;
}

function pendingCard(a: Action, session: Session, now: Date, back: string): Html {
  return html`<article class="card pending" data-action-id="${a.id}" data-service="${a.service}">
<h3><a href="/console/actions/${encodeURIComponent(a.id)}">${a.kind} ${a.node}/${a.service}</a> ${badge(a.state)}</h3>
<p class="muted">proposed ${when(a.created_at, now)}, expires ${when(a.expires_at, now)}</p>
${whatRuns(a)}
${decideForms(a, session, back)}
</article>`;
}

function actionsTable(actions: Action[], now: Date): Html {
  if (actions.length === 0) return html`<p class="muted">None yet.</p>`;
  return html`<table><thead><tr><th>state</th><th>action</th><th>updated</th><th>result</th></tr></thead><tbody>
${actions.map((a) => html`<tr class="action" data-action-id="${a.id}" data-state="${a.state}"><td>${badge(a.state)}</td>
<td><a href="/console/actions/${encodeURIComponent(a.id)}">${a.kind} ${a.node}/${a.service}</a></td><td>${when(a.updated_at, now)}</td><td>${a.result ?? ""}</td></tr>`)}
</tbody></table>`;
}

export interface OverviewData {
  snapshot: KvRead<Snapshot>;
  drift: KvRead<DriftReport>;
  pending: Action[];
  recent: Action[];
}

export function overviewBody(d: OverviewData, session: Session, now: Date): Html {
  return html`<h1>Fleet</h1>
<h2>Pending actions (${d.pending.length})</h2>
${d.pending.length === 0 ? html`<p class="muted" id="no-pending">Nothing waits for approval.</p>` : d.pending.map((a) => pendingCard(a, session, now, "/console"))}
<h2>Nodes and services</h2>
${fleet(d.snapshot, now)}
<h2>Drift</h2>
<section class="card">${drifts(d.drift, now)}</section>
<h2>Recent actions</h2>
<section class="card">${actionsTable(d.recent, now)}</section>`;
}

export function actionsBody(d: { pending: Action[]; recent: Action[] }, session: Session, now: Date): Html {
  return html`<h1>Actions</h1>
<h2>Pending (${d.pending.length})</h2>
${d.pending.length === 0 ? html`<p class="muted" id="no-pending">Nothing waits for approval.</p>` : d.pending.map((a) => pendingCard(a, session, now, "/console/actions"))}
<h2>Recent</h2>
<section class="card">${actionsTable(d.recent, now)}</section>`;
}

export function actionBody(d: { action: Action; audit: AuditEntry[] }, session: Session, now: Date): Html {
  const a = d.action;
  const back = `/console/actions/${encodeURIComponent(a.id)}`;
  return html`<h1>${a.kind} ${a.node}/${a.service} ${badge(a.state)}</h1>
<section class="card" data-action-id="${a.id}" data-state="${a.state}">
<p class="muted">id <code>${a.id}</code>; proposed ${when(a.created_at, now)}; updated ${when(a.updated_at, now)}${transition(a.state, { type: "expire" }).ok ? html`; expires ${when(a.expires_at, now)}` : ""}</p>
${whatRuns(a)}
${a.result ? html`<p><strong>result:</strong> ${a.result}</p>` : ""}
${a.state === "pending" ? decideForms(a, session, back) : ""}
</section>
<h2>Audit log</h2>
<section class="card"><table class="audit"><thead><tr><th>at</th><th>from</th><th>to</th><th>actor</th><th>channel</th><th>detail</th></tr></thead><tbody>
${d.audit.map((e) => html`<tr class="audit-row" data-to="${e.to_state}" data-channel="${e.channel}"><td><time datetime="${e.at}">${e.at}</time></td><td>${e.from_state ?? "(new)"}</td><td>${badge(e.to_state)}</td><td class="actor">${e.actor}</td><td class="channel">${e.channel}</td><td>${e.detail ?? ""}</td></tr>`)}
</tbody></table></section>`;
}

/** The alerter's alerts (it owns them; asked over NATS): firing first, then what resolved in the last day. */
export function alertsBody(d: AlertsRead, now: Date): Html {
  if (!d.ok) return html`<h1>Alerts</h1><section class="card"><p class="banner">${d.message}</p></section>`;
  const firing = d.alerts.filter((a) => a.state === "firing");
  const resolved = d.alerts.filter((a) => a.state === "resolved");
  const table = (rows: typeof d.alerts, resolvedCol: boolean) =>
    rows.length === 0
      ? html`<p class="muted">None.</p>`
      : html`<table><thead><tr><th>severity</th><th>alert</th><th>group</th><th>since</th>${resolvedCol ? html`<th>resolved</th>` : ""}</tr></thead><tbody>
${rows.map((a) => html`<tr class="alert" data-fingerprint="${a.fingerprint}"><td>${badge(a.severity === "critical" ? "failed" : a.severity === "warning" ? "pending" : "none")} ${a.severity}</td><td><strong>${a.title}</strong><div class="muted">${a.message}</div></td><td>${a.group_key ?? ""}</td><td>${when(a.first_seen, now)}</td>${resolvedCol ? html`<td>${when(a.resolved_at, now)}</td>` : ""}</tr>`)}
</tbody></table>`;
  return html`<h1>Alerts</h1>
<h2>Firing (${firing.length})</h2>
<section class="card">${table(firing, false)}</section>
<h2>Resolved in the last day (${resolved.length})</h2>
<section class="card">${table(resolved, true)}</section>
<p class="muted">From the alerter at ${when(d.generatedAt, now)}; notices go out per group (see docs/alerts-and-approvals.md).</p>`;
}

export function tasksBody(d: { plannerUrl: string; tasks: PlannerRead<Task[]>; cost: PlannerRead<CostReport> }, session: Session, now: Date): Html {
  return html`<h1>Tasks and cost</h1>
<h2>Spend against the caps</h2>
<section class="card">${d.cost.ok ? spendChart(d.cost.value) : html`<p class="banner">${d.cost.message}</p>`}</section>
${d.cost.ok && d.cost.value.by_model_group.length > 0
    ? html`<section class="card"><h3>By model group</h3><table><thead><tr><th>model group</th><th>calls</th><th>spend</th></tr></thead><tbody>
${d.cost.value.by_model_group.map((g) => html`<tr><td>${g.model_group}</td><td>${g.calls}</td><td>$${g.usd.toFixed(4)}</td></tr>`)}</tbody></table></section>`
    : ""}
<h2>Tasks</h2>
<section class="card">${!d.tasks.ok
    ? html`<p class="banner">${d.tasks.message}</p>`
    : d.tasks.value.length === 0
      ? html`<p class="muted">No tasks yet.</p>`
      : html`<table><thead><tr><th>state</th><th>task</th><th>source</th><th>agent</th><th>model groups</th><th>cost</th><th>created</th></tr></thead><tbody>
${d.tasks.value.map((t) => html`<tr class="task" data-task-id="${t.id}"><td>${badge(t.state)}</td><td>${t.content.length > 160 ? `${t.content.slice(0, 160)}…` : t.content}${t.error ? html`<div class="error-text">${t.error}</div>` : ""}</td>
<td>${t.source} (${t.user})</td><td>${t.agent ?? ""}</td><td class="groups">${t.model_groups.join(", ")}</td><td class="cost">$${t.cost_usd.toFixed(4)}</td><td>${when(t.created_at, now)}</td></tr>`)}
</tbody></table>`}</section>
<p class="muted">From the planner at ${d.plannerUrl}.</p>`;
}
