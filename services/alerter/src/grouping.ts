import type { ActionInfo, AlertContent, AlertSeverity } from "./rules.js";
import { FLAPPING_RULE, flappedFingerprint } from "./flapping.js";
import type { NotificationPayload } from "./notification.js";

/** A firing alert as the grouping sees it (the stored row, with what this evaluation says about it). */
export interface GroupMember extends AlertContent {
  id: number;
  firstSeen: number;
  /** ms between repeats while it lasts; 0 = never; undefined = the group's default. */
  renotifyMs?: number | undefined;
  action?: ActionInfo | undefined;
}

/** What a group's last notice listed: enough to say later what resolved. */
export interface NotifiedMember {
  id: number;
  fingerprint: string;
  rule: string;
  severity: AlertSeverity;
  title: string;
  labels: Record<string, string>;
  first_seen: string;
}

export interface OpenGroup {
  id: number;
  key: string;
  firstSeen: number;
  notified: NotifiedMember[];
  lastNotified: number | null;
}

export interface GroupTiming {
  /** How long a new group collects alerts before its first notice. */
  waitMs: number;
  /** How long after a notice a changed group (alerts added or resolved) is told again. */
  intervalMs: number;
  /** How often an unchanged group is repeated (0 = never). */
  repeatMs: number;
}

export interface GroupNotice {
  group: OpenGroup;
  kind: "firing" | "renotify" | "resolved";
  /** Listed in this notice (for `resolved`: what the group was about). */
  members: GroupMember[] | NotifiedMember[];
  /** Alerts of the last notice that resolved since (shown on an update). */
  resolvedSince: NotifiedMember[];
}

export interface GroupPlan {
  /** Groups to open (keys with visible alerts and no open group). */
  open: string[];
  notify: GroupNotice[];
  /** Groups whose alerts all resolved before anyone was told: closed without a notice. */
  closeSilently: OpenGroup[];
}

/** Approval requests carry their own buttons: one group each, told at once, their outcome told at once. */
const APPROVALS: GroupTiming = { waitMs: 0, intervalMs: 0, repeatMs: 0 };

/**
 * Pure: the group an alert belongs to and that group's timing. One outage is one group (every stale node; the
 * control plane's dead-man checks); everything else about a node is that node's group; an approval request is its own.
 */
export function groupOf(m: Pick<GroupMember, "fingerprint" | "rule" | "labels">, t: GroupTiming): { key: string; timing: GroupTiming } {
  if (m.rule === "action_pending") return { key: `approval:${m.labels["action_id"] ?? m.fingerprint}`, timing: APPROVALS };
  if (m.rule === "node_stale") return { key: "nodes_stale", timing: t };
  if (m.rule.startsWith("deadman")) return { key: "control_plane", timing: t };
  if (m.rule === "cost_cap") return { key: "llm_spend", timing: t };
  // A failed action is an incident of its own (the planner gets a task for it), not one more line about its node.
  if (m.rule === "action_failed") return { key: m.fingerprint, timing: t };
  // A recurring failure is news of its own ("this keeps happening"), not one more line about its node.
  if (m.rule === "incident_recurs") return { key: m.fingerprint, timing: t };
  const node = m.labels["node"];
  return { key: node ? `node:${node}` : m.fingerprint, timing: t };
}

/**
 * Pure: which firing alerts a notice may show. Hidden: an alert that flaps (its flapping alert speaks for it) and a
 * service's "unknown" drift on a node that is stale (the stale node is the news, not its every service).
 */
export function visibleMembers(firing: readonly GroupMember[], staleNodes: ReadonlySet<string>): GroupMember[] {
  const flapping = new Set(firing.filter((a) => a.rule === FLAPPING_RULE).map((a) => flappedFingerprint(a.fingerprint)));
  return firing.filter((a) => {
    if (flapping.has(a.fingerprint)) return false;
    const node = a.labels["node"];
    if (a.rule !== "node_stale" && a.labels["kind"] === "unknown" && node !== undefined && staleNodes.has(node)) return false;
    return true;
  });
}

const sameSet = (a: readonly { fingerprint: string }[], b: readonly { fingerprint: string }[]): boolean => {
  if (a.length !== b.length) return false;
  const s = new Set(a.map((x) => x.fingerprint));
  return b.every((x) => s.has(x.fingerprint));
};

/** A group repeats at the shortest interval its alerts ask for (0 = never; every alert saying never means never). */
function repeatOf(members: readonly GroupMember[], def: number): number {
  const every = members.map((m) => m.renotifyMs ?? def).filter((ms) => ms > 0);
  return every.length === 0 ? 0 : Math.min(...every);
}

/** Pure: what to tell about each group now, Alertmanager-style (group_wait, group_interval, repeat_interval). */
export function planGroups(visible: readonly GroupMember[], open: readonly OpenGroup[], now: number, t: GroupTiming): GroupPlan {
  const byKey = new Map<string, { timing: GroupTiming; members: GroupMember[] }>();
  for (const m of visible) {
    const g = groupOf(m, t);
    const e = byKey.get(g.key) ?? { timing: g.timing, members: [] };
    e.members.push(m);
    byKey.set(g.key, e);
  }
  const plan: GroupPlan = { open: [], notify: [], closeSilently: [] };
  const openKeys = new Set(open.map((g) => g.key));
  for (const key of byKey.keys()) if (!openKeys.has(key)) plan.open.push(key);
  for (const g of open) {
    const e = byKey.get(g.key);
    const members = (e?.members ?? []).sort((a, b) => a.fingerprint.localeCompare(b.fingerprint));
    const timing = e?.timing ?? groupOf({ fingerprint: g.key, rule: g.key.startsWith("approval:") ? "action_pending" : "", labels: {} }, t).timing;
    const resolvedSince = g.notified.filter((n) => !members.some((m) => m.fingerprint === n.fingerprint));
    if (g.lastNotified === null) {
      if (members.length === 0) plan.closeSilently.push(g);
      else if (now >= g.firstSeen + timing.waitMs) plan.notify.push({ group: g, kind: "firing", members, resolvedSince: [] });
      continue;
    }
    const since = now - g.lastNotified;
    if (members.length === 0) {
      if (since >= timing.intervalMs) plan.notify.push({ group: g, kind: "resolved", members: g.notified, resolvedSince: g.notified });
      continue;
    }
    if (!sameSet(members, g.notified)) {
      if (since >= timing.intervalMs) plan.notify.push({ group: g, kind: "firing", members, resolvedSince });
      continue;
    }
    const repeat = repeatOf(members, timing.repeatMs);
    if (repeat > 0 && since >= repeat) plan.notify.push({ group: g, kind: "renotify", members, resolvedSince: [] });
  }
  return plan;
}

const SEVERITY_ORDER: Record<AlertSeverity, number> = { info: 0, warning: 1, critical: 2 };
export const worstSeverity = (xs: readonly { severity: AlertSeverity }[]): AlertSeverity => xs.reduce<AlertSeverity>((w, x) => (SEVERITY_ORDER[x.severity] > SEVERITY_ORDER[w] ? x.severity : w), "info");

const LIST_MAX = 15;
function listTitles(xs: readonly { title: string }[]): string[] {
  const titles = xs.map((x) => x.title).sort();
  return titles.length > LIST_MAX ? [...titles.slice(0, LIST_MAX), `… and ${titles.length - LIST_MAX} more`] : titles;
}

/** Pure: the headline of a group of several alerts, naming the count (one outage reads as one line). */
export function groupTitle(key: string, members: readonly { rule: string; title: string; labels: Record<string, string> }[]): string {
  const n = members.length;
  if (key === "nodes_stale") {
    const names = members.map((m) => m.labels["node"] ?? "?").sort();
    return `${n} nodes stale: ${names.slice(0, 5).join(", ")}${n > 5 ? ", …" : ""}`;
  }
  if (key === "control_plane") return `Dead man: ${members.map((m) => m.labels["component"] ?? "?").sort().join(", ")} not making progress`;
  if (key.startsWith("node:")) {
    const titles = members.map((m) => m.title).sort().slice(0, 3);
    return `${n} alerts on ${key.slice("node:".length)}: ${titles.join("; ")}${n > 3 ? "; …" : ""}`;
  }
  return `${n} alerts: ${key}`;
}

/** Pure: the text of a notice about several alerts (and, on an update, what resolved since the last one). */
export function groupMessage(members: readonly { title: string }[], resolvedSince: readonly { title: string }[]): string {
  const lines = listTitles(members);
  if (resolvedSince.length > 0) lines.push(`Resolved since the last notice: ${listTitles(resolvedSince).join("; ")}`);
  return lines.join("\n");
}

/**
 * Pure: the notification for a group notice. A notice about one alert reads exactly as that alert (its title, its
 * approval buttons); a notice about several names the count and lists them.
 */
export function noticePayload(n: GroupNotice, now: Date, notes: ReadonlyMap<string, string> = new Map()): NotificationPayload {
  const at = now.toISOString();
  const members = n.members as readonly (GroupMember | NotifiedMember)[];
  const group = { key: n.group.key, count: members.length };
  const one = members.length === 1 ? members[0] : undefined;
  if (one) {
    const full = "message" in one ? one : undefined;
    const note = n.kind === "resolved" ? notes.get(one.fingerprint) : undefined;
    const since = n.resolvedSince.length > 0 ? `\nResolved since the last notice: ${listTitles(n.resolvedSince).join("; ")}` : "";
    return {
      kind: n.kind,
      alert_id: one.id,
      fingerprint: one.fingerprint,
      rule: one.rule,
      severity: one.severity,
      title: one.title,
      message: `${full ? full.message : one.title}${since}`,
      labels: one.labels,
      first_seen: full ? new Date(full.firstSeen).toISOString() : (one as NotifiedMember).first_seen,
      at,
      group,
      ...(note ? { note } : {}),
      ...(full?.action ? { action: full.action } : {}),
    };
  }
  const node: Record<string, string> = n.group.key.startsWith("node:") ? { node: n.group.key.slice("node:".length) } : {};
  return {
    kind: n.kind,
    alert_id: n.group.id,
    fingerprint: `group:${n.group.key}`,
    rule: "group",
    severity: worstSeverity(members),
    title: groupTitle(n.group.key, members),
    message: groupMessage(members, n.kind === "resolved" ? [] : n.resolvedSince),
    labels: { group: n.group.key, count: String(members.length), ...node },
    first_seen: new Date(n.group.firstSeen).toISOString(),
    at,
    group,
  };
}

/** What a notice listed, kept with the group for the next one. */
export const notifiedOf = (m: GroupMember): NotifiedMember => ({ id: m.id, fingerprint: m.fingerprint, rule: m.rule, severity: m.severity, title: m.title, labels: m.labels, first_seen: new Date(m.firstSeen).toISOString() });
