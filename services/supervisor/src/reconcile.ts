import { DRIFT_ACTION_KINDS, type Action, type ActionKind } from "@steward/contracts/action";
import { Drift as DriftSchema, type Drift, type Hold } from "@steward/contracts/drift";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Snapshot } from "@steward/contracts/world-state";
import { computeFleetDrift, computeNodeDrift, driftNodes, snapshotAge } from "@steward/fleet/diff";
import { FLEET_WIDE } from "@steward/fleet/secret-drift";
import { applyHolds, type HoldEnd } from "./holds.js";

/** A drift that proposes an action, with what the action needs beyond (node, service). */
export type Proposal = Drift & { proposes: ActionKind; params?: { nodes?: string[]; target_config_hash?: string } };

/** Nodes that drifted later join a rollout still waiting for approval. */
export interface RolloutExtension {
  id: string;
  /** Every node of the rollout, in name order. */
  nodes: string[];
  params: { target_config_hash?: string };
  drift: Proposal;
}

/** A pending action whose drift went away. */
export interface Expiry {
  id: string;
  detail: string;
}

/** What the actions table holds that a cycle decides on. */
export interface ActionsView {
  /** pending, approved and running actions. */
  open: readonly Action[];
  /** Deploys that failed within the hold window, newest first. */
  failedDeploys: readonly Action[];
  /** Operators' holds not ended yet (a rejected proposal holds its drift). */
  holds?: readonly Hold[] | undefined;
}

export interface ReconcileOptions {
  snapshotMaxAgeMs: number;
}

/**
 * What one cycle carries to the next: each node's findings before holds (fleet-wide ones under `*`), the spec and
 * snapshot age they were computed with, and the report as written per node. A node's findings depend only on the
 * spec, its own state and whether the snapshot is too old (`computeNodeDrift`), so the next cycle diffs again only
 * the nodes that changed, unless the spec or the age verdict did.
 */
export interface DriftState {
  spec: FleetSpec;
  tooOld: boolean;
  found: ReadonlyMap<string, readonly Drift[]>;
  report: ReadonlyMap<string, readonly Drift[]>;
}

/** Everything a cycle decides on. An object, so a new input (e.g. operator holds) is one more field. */
export interface ReconcileInput {
  spec: FleetSpec;
  world: Snapshot;
  actions: ActionsView;
  now: Date;
  opts: ReconcileOptions;
  /** The previous cycle's state and the nodes whose state changed since; absent: every node is diffed. */
  since?: { state: DriftState; changed: ReadonlySet<string> } | undefined;
}

export interface Reconciled {
  /** The drift report's findings (after holding back failed revisions), node by node in name order. */
  report: Drift[];
  propose: Proposal[];
  extend: RolloutExtension[];
  expire: Expiry[];
  /** Holds whose drift changed or cleared, or whose time ran out. */
  endHolds: HoldEnd[];
  /** For the next cycle. */
  state: DriftState;
  /** Nodes whose report findings differ from the previous cycle's (`*`: the fleet-wide ones): what to write. */
  changed: string[];
  /** How many nodes were diffed: every node on a full cycle, the changed ones otherwise. */
  diffed: number;
  full: boolean;
}

/** The key of fleet-wide findings in `DriftState` (a secret's stores span nodes). */
export const FLEET_FINDINGS = FLEET_WIDE;

/**
 * One supervisor cycle's decisions, from the desired spec, the observed world and the actions already there. Pure:
 * the apply step writes the result through the actions repository, whose unique open-action index still arbitrates
 * races with other writers. Given the previous cycle's state, only the nodes that changed are diffed again; the
 * decisions (holds, proposals, expiries) are always made over the whole report, since the actions change too.
 */
export function reconcile(input: ReconcileInput): Reconciled {
  const { spec, world, actions, now, opts, since } = input;
  const age = snapshotAge(world.written_at, now, opts);
  const prev = since?.state;
  const full = !prev || prev.spec !== spec || prev.tooOld !== age.tooOld;
  const found = new Map(full ? [] : prev.found);
  const names = full ? driftNodes(spec, world.world) : (since?.changed ?? new Set<string>());
  for (const name of names) {
    const findings = computeNodeDrift(spec, name, world.world.nodes[name], age);
    if (findings.length > 0) found.set(name, findings);
    else found.delete(name);
  }
  const fleet = computeFleetDrift(spec, world.world, age);
  if (fleet.length > 0) found.set(FLEET_FINDINGS, fleet);
  else found.delete(FLEET_FINDINGS);

  // Holds look at the whole report (a hold ends when its drift cleared anywhere it covered), node by node in name order.
  const order = [...found.keys()].sort();
  const unheld: Drift[] = [];
  for (const name of order) for (const d of holdFailedRevisions(found.get(name) ?? [], actions.failedDeploys)) unheld.push(d);
  const { report: merged, end } = applyHolds(unheld, actions.holds ?? [], now);

  const report = new Map<string, readonly Drift[]>();
  let at = 0;
  for (const name of order) {
    const count = found.get(name)?.length ?? 0;
    const mine = merged.slice(at, at + count);
    at += count;
    const before = prev?.report.get(name);
    // A node whose findings read the same keeps last cycle's array: only nodes whose findings changed are written.
    report.set(name, before && sameFindings(before, mine) ? before : mine);
  }
  const changed = order.filter((n) => report.get(n) !== prev?.report.get(n));
  for (const n of prev?.report.keys() ?? []) if (!report.has(n)) changed.push(n);
  return {
    report: merged,
    ...planProposals(merged, actions.open),
    expire: clearedActions(merged, actions.open),
    endHolds: end,
    state: { spec, tooOld: age.tooOld, found, report },
    changed,
    diffed: names.size,
    full,
  };
}

/** A finding's fields are strings (or null), but for `held`, a flat object of them. */
const FIELDS = Object.keys(DriftSchema.shape) as (keyof Drift)[];
const sameHeld = (a: Drift["held"], b: Drift["held"]): boolean => a === b || (!!a && !!b && (Object.keys(a) as (keyof NonNullable<Drift["held"]>)[]).every((k) => a[k] === b[k]) && Object.keys(a).length === Object.keys(b).length);
const sameDrift = (a: Drift, b: Drift): boolean => a === b || FIELDS.every((f) => (f === "held" ? sameHeld(a.held, b.held) : a[f] === b[f]));
const sameFindings = (a: readonly Drift[], b: readonly Drift[]): boolean => a.length === b.length && a.every((d, i) => sameDrift(d, b[i] as Drift));

const openKey = (node: string, service: string, kind: string): string => `${node}/${service}/${kind}`;

/** A deploy carries the revision it aims at, so a failed rollout of that revision is not proposed again. */
export function deployTarget(group: readonly Drift[]): { target_config_hash: string } | Record<string, never> {
  const targets = new Set(group.map((d) => d.target));
  const only = targets.size === 1 ? [...targets][0] : undefined;
  return only ? { target_config_hash: only } : {};
}

/**
 * A stack drifted on several nodes is one rollout, not one deploy per node: deploy proposals for the same
 * service are merged into one action on the first node with `params.nodes` (the executor rolls out in that
 * order, `max_parallel` at a time, and stops at the first failed health gate). Nodes an open deploy already
 * covers are left out.
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

const nodesOf = (a: Action): string[] => (Array.isArray(a.params?.["nodes"]) ? (a.params["nodes"] as unknown[]).map(String) : [a.node]);

/**
 * One new action per drift that proposes one, unless the same (node, service, kind) is open or an operator's hold
 * covers the drift; later drifting nodes join a pending rollout.
 */
export function planProposals(drifts: readonly Drift[], open: readonly Action[]): { propose: Proposal[]; extend: RolloutExtension[] } {
  const candidates = drifts.filter((d): d is Drift & { proposes: ActionKind } => d.proposes !== null && !d.held);
  const openSet = new Set(open.map((o) => openKey(o.node, o.service, o.kind)));
  const coveredByDeploy = new Set(open.filter((o) => o.kind === "deploy").flatMap((o) => nodesOf(o).map((n) => `${n}/${o.service}`)));
  const propose: Proposal[] = [];
  const extend: RolloutExtension[] = [];
  for (const d of groupDeploys(candidates, coveredByDeploy)) {
    if (openSet.has(openKey(d.node, d.service, d.proposes))) continue;
    // Nodes report at different times: a rollout still waiting for approval takes in nodes that drift later.
    const waiting = d.proposes === "deploy" ? open.find((o) => o.kind === "deploy" && o.service === d.service && o.state === "pending") : undefined;
    if (waiting) {
      // Name order, like a rollout proposed at once (drifts are sorted by key): the order nodes drifted in is noise.
      const nodes = [...new Set([...nodesOf(waiting), ...(d.params?.nodes ?? [d.node])])].sort();
      extend.push({ id: waiting.id, nodes, params: deployTarget([d]), drift: d });
      continue;
    }
    propose.push(d);
  }
  return { propose, extend };
}

/**
 * Holds back deploys of a revision whose rollout failed recently (and was rolled back): proposing it again would
 * fail the same way. The drift stays in the report, as an alert that names the failed action, until the spec or
 * the checkout changes (a new desired hash) or the hold window passes.
 */
export function holdFailedRevisions(drifts: readonly Drift[], failedDeploys: readonly Action[]): Drift[] {
  return drifts.map((d) => {
    const f = d.proposes === "deploy" && d.target ? failedDeploys.find((x) => x.kind === "deploy" && x.service === d.service && x.params?.["target_config_hash"] === d.target) : undefined;
    if (!f) return d;
    return { ...d, severity: "alert", proposes: null, message: `${d.message}; not proposed again: the rollout of this revision failed (action ${f.id.slice(0, 8)}, ${f.updated_at})` };
  });
}

/**
 * Pending actions whose drift went away (e.g. the service came back by itself). An action counts as still wanted
 * while any current drift proposes the same (node, service, kind); a service whose state is unknown keeps its action:
 * unknown is not cleared. Only the kinds a drift can propose are considered, so e.g. an operator's `stop` is never
 * expired here, and a diagnosis from the planner (a crash loop, say) outlives one good moment of the service: it
 * expires by TTL.
 */
export function clearedActions(drifts: readonly Drift[], open: readonly Action[]): Expiry[] {
  const wanted = new Set(drifts.filter((d) => d.proposes !== null).map((d) => openKey(d.node, d.service, d.proposes as string)));
  const unknown = new Set(drifts.filter((d) => d.kind === "unknown").map((d) => `${d.node}/${d.service}`));
  // A node with anything unknown keeps every pending action of its own: node-wide ones (a pull of its
  // checkout) have no service-level unknown drift to match, and unknown is never "cleared".
  const unknownNodes = new Set(drifts.filter((d) => d.kind === "unknown").map((d) => d.node));
  const driftKinds: readonly string[] = DRIFT_ACTION_KINDS;
  return open
    .filter((a) => a.state === "pending" && a.drift_key !== null && driftKinds.includes(a.kind) && !a.task_id)
    .filter((a) => !wanted.has(openKey(a.node, a.service, a.kind)) && !unknown.has(`${a.node}/${a.service}`) && !unknownNodes.has(a.node))
    .map((a) => ({ id: a.id, detail: `drift cleared: ${a.drift_key}` }));
}
