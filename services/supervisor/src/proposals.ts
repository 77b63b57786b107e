import { randomUUID } from "node:crypto";
import { ACTIONS_CHANNEL, ACTION_COLUMNS, actionFromRow, type ActionRow } from "@steward/actions/action-row";
import { OPEN_ACTION_STATES, transition, type Action, type ActionKind } from "@steward/contracts/action";
import { contextFromTraceparent, traceparentOf, withSpan } from "@steward/platform/tracing";
import type { Drift } from "@steward/contracts/drift";
import type { Sql } from "@steward/platform/db";

export { ACTIONS_CHANNEL };

const openKey = (node: string, service: string, kind: string): string => `${node}/${service}/${kind}`;

export interface ProposeOptions {
  supervisorId: string;
  now: Date;
  ttlMs: number;
}

type Proposal = Drift & { proposes: ActionKind; params?: { nodes?: string[]; target_config_hash?: string } };

/** A deploy carries the revision it aims at, so a failed rollout of that revision is not proposed again. */
function deployTarget(group: readonly Drift[]): { target_config_hash: string } | Record<string, never> {
  const targets = new Set(group.map((d) => d.target));
  const only = targets.size === 1 ? [...targets][0] : undefined;
  return only ? { target_config_hash: only } : {};
}

/**
 * A stack drifted on several nodes is one rollout, not one deploy per node: deploy proposals for the same
 * service are merged into one action on the first node with `params.nodes` (the executor rolls out in that
 * order, `max_parallel` at a time, and stops at the first failed health gate). Nodes an open deploy already
 * covers are left out. Pure.
 */
export function groupDeploys(wanted: readonly (Drift & { proposes: ActionKind })[], covered: ReadonlySet<string>): Proposal[] {
  const out: Proposal[] = [];
  const deploys = new Map<string, (Drift & { proposes: ActionKind })[]>();
  for (const d of wanted) {
    if (d.proposes !== "deploy") {
      out.push(d);
      continue;
    }
    if (covered.has(`${d.node}/${d.service}`)) continue;
    deploys.set(d.service, [...(deploys.get(d.service) ?? []), d]);
  }
  for (const group of deploys.values()) {
    const first = group[0];
    if (!first) continue;
    if (group.length === 1) {
      const target = deployTarget(group);
      out.push("target_config_hash" in target ? { ...first, params: target } : first);
      continue;
    }
    const nodes = group.map((d) => d.node);
    out.push({ ...first, message: `${first.service} drifted on ${nodes.join(", ")}: ${group.map((d) => `${d.node}: ${d.message}`).join("; ")}`, params: { nodes, ...deployTarget(group) } });
  }
  return out;
}

/**
 * Inserts one pending action per drift that proposes one (deploys of one service across nodes: one rollout).
 * The partial unique index makes `ON CONFLICT DO NOTHING` the arbiter, so cycles and concurrent supervisors never duplicate.
 */
export async function proposeActions(sql: Sql, drifts: readonly Drift[], opts: ProposeOptions): Promise<Action[]> {
  const candidates = drifts.filter((d): d is Drift & { proposes: ActionKind } => d.proposes !== null);
  if (candidates.length === 0) return [];
  // A cheap pre-check so steady-state cycles open no spans and no transactions.
  const open = await sql<{ id: string; node: string; service: string; kind: string; state: string; params: { nodes?: unknown } | null }[]>`
    SELECT id, node, service, kind, state, params FROM actions WHERE state IN ${sql(OPEN_ACTION_STATES)}`;
  const openSet = new Set(open.map((o) => openKey(o.node, o.service, o.kind)));
  const nodesOf = (o: (typeof open)[number]): string[] => (Array.isArray(o.params?.nodes) ? (o.params.nodes as unknown[]).map(String) : [o.node]);
  const coveredByDeploy = new Set(open.filter((o) => o.kind === "deploy").flatMap((o) => nodesOf(o).map((n) => `${n}/${o.service}`)));
  const proposed: Action[] = [];
  for (const d of groupDeploys(candidates, coveredByDeploy)) {
    if (openSet.has(openKey(d.node, d.service, d.proposes))) continue;
    // Nodes report at different times: a rollout still waiting for approval takes in nodes that drift later.
    const waiting = d.proposes === "deploy" ? open.find((o) => o.kind === "deploy" && o.service === d.service && o.state === "pending") : undefined;
    if (waiting) {
      await extendRollout(sql, waiting.id, [...nodesOf(waiting), ...(d.params?.nodes ?? [d.node])], d, opts);
      continue;
    }
    const action = await withSpan(
      "supervisor.propose",
      { parent: contextFromTraceparent(d.traceparent), attributes: { "steward.node": d.node, "steward.service": d.service, "steward.drift": d.key, "steward.action_kind": d.proposes } },
      (span) => insertPending(sql, d, opts, traceparentOf() ?? null).then((a) => {
        span.setAttribute("steward.proposed", a !== undefined);
        if (a) span.setAttribute("steward.action_id", a.id);
        return a;
      }),
    );
    if (action) proposed.push(action);
  }
  return proposed;
}

/**
 * Holds back deploys of a revision whose rollout failed recently (and was rolled back): proposing it again would
 * fail the same way. The drift stays in the report, as an alert that names the failed action, until the spec or
 * the checkout changes (a new desired hash) or the hold window passes.
 */
export async function holdFailedRevisions(sql: Sql, drifts: readonly Drift[], opts: { now: Date; holdMs: number }): Promise<Drift[]> {
  const targets = [...new Set(drifts.filter((d) => d.proposes === "deploy" && d.target).map((d) => d.target as string))];
  if (targets.length === 0) return [...drifts];
  const since = new Date(opts.now.getTime() - opts.holdMs);
  const failed = await sql<{ id: string; service: string; target: string; updated_at: Date }[]>`
    SELECT id, service, params->>'target_config_hash' AS target, updated_at FROM actions
    WHERE kind = 'deploy' AND state IN ('failed', 'failed_unknown') AND updated_at >= ${since}
      AND params->>'target_config_hash' IN ${sql(targets)}
    ORDER BY updated_at DESC`;
  if (failed.length === 0) return [...drifts];
  return drifts.map((d) => {
    const f = d.proposes === "deploy" ? failed.find((x) => x.service === d.service && x.target === d.target) : undefined;
    if (!f) return d;
    return { ...d, severity: "alert", proposes: null, message: `${d.message}; not proposed again: the rollout of this revision failed (action ${f.id.slice(0, 8)}, ${f.updated_at.toISOString()})` };
  });
}

/** Adds nodes to a pending rollout (conditional on it still being pending), with an audit row saying so. */
async function extendRollout(sql: Sql, id: string, nodes: string[], d: Proposal, opts: ProposeOptions): Promise<void> {
  // Name order, like a rollout proposed at once (drifts are sorted by key): the order nodes drifted in is noise.
  const all = [...new Set(nodes)].sort();
  await sql.begin(async (tx) => {
    const rows = await tx`
      UPDATE actions SET params = params || ${tx.json({ nodes: all, ...deployTarget([d]) })}, updated_at = ${opts.now}
      WHERE id = ${id} AND state = 'pending' RETURNING id`;
    if (rows.length === 0) return; // decided meanwhile: the next cycle proposes afresh
    await tx`
      INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
      VALUES (${id}, 'pending', 'pending', ${opts.supervisorId}, 'supervisor', ${`rollout extended to ${all.join(", ")}: ${d.message}`})`;
    await tx`SELECT pg_notify(${ACTIONS_CHANNEL}, ${id})`;
  });
}

async function insertPending(sql: Sql, d: Proposal, opts: ProposeOptions, traceparent: string | null): Promise<Action | undefined> {
  const id = randomUUID();
  const now = opts.now;
  const expires = new Date(now.getTime() + opts.ttlMs);
  return sql.begin(async (tx) => {
    const rows = await tx<ActionRow[]>`
      INSERT INTO actions (id, node, service, kind, state, reason, drift_key, proposed_by, created_at, updated_at, expires_at, traceparent, params)
      VALUES (${id}, ${d.node}, ${d.service}, ${d.proposes}, 'pending', ${d.message}, ${d.key}, ${opts.supervisorId}, ${now}, ${now}, ${expires}, ${traceparent}, ${tx.json(d.params ?? {})})
      ON CONFLICT (node, service, kind) WHERE state IN ('pending', 'approved', 'running') DO NOTHING
      RETURNING ${tx(ACTION_COLUMNS)}`;
    const row = rows[0];
    if (!row) return undefined;
    await tx`
      INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
      VALUES (${id}, NULL, 'pending', ${opts.supervisorId}, 'supervisor', ${d.message})`;
    // Delivered on commit, so listeners never see an id they cannot read yet.
    await tx`SELECT pg_notify(${ACTIONS_CHANNEL}, ${id})`;
    return actionFromRow(row);
  });
}

/**
 * Expires pending actions whose drift went away (e.g. the service came back by itself).
 * An action counts as still wanted while any current drift proposes the same (node, service, kind);
 * a service whose state is unknown keeps its action: unknown is not cleared. Only the kinds a drift
 * can propose are considered, so e.g. an operator's `stop` is never expired here.
 */
export async function expireCleared(sql: Sql, drifts: readonly Drift[], opts: { supervisorId: string; now: Date }): Promise<string[]> {
  const wanted = new Set(drifts.filter((d) => d.proposes !== null).map((d) => openKey(d.node, d.service, d.proposes as string)));
  const unknown = new Set(drifts.filter((d) => d.kind === "unknown").map((d) => `${d.node}/${d.service}`));
  // A node with anything unknown keeps every pending action of its own: node-wide ones (a pull of its
  // checkout) have no service-level unknown drift to match, and unknown is never "cleared".
  const unknownNodes = new Set(drifts.filter((d) => d.kind === "unknown").map((d) => d.node));
  const pending = await sql<{ id: string; node: string; service: string; kind: string; drift_key: string }[]>`
    SELECT id, node, service, kind, drift_key FROM actions
    WHERE state = 'pending' AND drift_key IS NOT NULL AND kind IN ('start', 'restart', 'deploy', 'pull')
      -- A diagnosis from the planner (a crash loop, say) outlives one good moment of the service: it expires by TTL.
      AND task_id IS NULL`;
  const to = transition("pending", { type: "expire" });
  if (!to.ok) throw new Error("action state machine no longer allows pending -> expired");
  const expired: string[] = [];
  for (const a of pending) {
    if (wanted.has(openKey(a.node, a.service, a.kind)) || unknown.has(`${a.node}/${a.service}`) || unknownNodes.has(a.node)) continue;
    const detail = `drift cleared: ${a.drift_key}`;
    const done = await sql.begin(async (tx) => {
      const rows = await tx`
        UPDATE actions SET state = ${to.to}, updated_at = ${opts.now}, result = ${detail}
        WHERE id = ${a.id} AND state = 'pending' RETURNING id`;
      if (rows.length === 0) return false; // approved or rejected meanwhile: not ours to touch
      await tx`
        INSERT INTO action_audit (action_id, from_state, to_state, actor, channel, detail)
        VALUES (${a.id}, 'pending', ${to.to}, ${opts.supervisorId}, 'supervisor', ${detail})`;
      await tx`SELECT pg_notify(${ACTIONS_CHANNEL}, ${a.id})`;
      return true;
    });
    if (done) expired.push(a.id);
  }
  return expired;
}
