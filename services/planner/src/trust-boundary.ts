import type { TaskSource } from "@steward/contracts/task";
import type { WorldState } from "@steward/contracts/world-state";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Target } from "./evidence.js";
import { PLANNER_ACTION_KINDS, ValidProposal, type PlannerActionKind } from "./proposals.js";

/**
 * The trust boundary between a model's answer and the action list. A model reads logs and tool output, which anyone
 * who can write a log line controls; so what it proposes is judged here against what the planner knows for itself:
 * the catalog, the task's targets (from the operator's request or the supervisor's drift, never from the model),
 * the declared dependencies of those targets, the observed state of the service, and what the operator asked for.
 */

/** Why a proposal was refused: also the `rule` label of `steward_planner_proposals_refused_total`. */
export const REFUSAL_RULES = ["not_in_catalog", "invalid", "undeclared", "out_of_scope", "state_unknown", "not_requested", "no_effect"] as const;
export type RefusalRule = (typeof REFUSAL_RULES)[number];

/** What the operator's own words asked for. Empty for machine-filed tasks (supervisor, schedule): they ask for nothing. */
export interface RequestedIntent {
  kinds: ReadonlySet<PlannerActionKind>;
}

export const NO_INTENT: RequestedIntent = { kinds: new Set() };

export interface TrustInput {
  /** The task's targets, resolved by the planner before any model ran. */
  targets: readonly Target[];
  spec: FleetSpec;
  /** The observed world (only the target nodes are needed); undefined when it could not be read. */
  world: WorldState | undefined;
  requested: RequestedIntent;
  /** Exits/failures per `node/service` in the events window (from the node's own events): a crash loop looks healthy between crashes. */
  recentExits?: Readonly<Record<string, number>>;
  proposal: unknown;
}

export type TrustVerdict =
  | { ok: true; proposal: ValidProposal; scope: "target" | "dependency" }
  | { ok: false; rule: RefusalRule; kind: string; node: string | null; service: string | null; reason: string };

/** Task sources where a person wrote the request; only their words can ask for a `stop` or an unneeded restart. */
const OPERATOR_SOURCES: ReadonlySet<TaskSource> = new Set<TaskSource>(["cli", "api", "web", "telegram", "ntfy"]);

const NEGATED = /\b(?:don'?t|do not|never|no|without)\s+(?:\w+\s+){0,2}?(start|stop|restart)\b/gi;

/** Pure: the kinds an operator's request explicitly names ("restart api", "please stop web"), negations excluded. */
export function requestedIntent(source: TaskSource | string, content: string): RequestedIntent {
  if (!OPERATOR_SOURCES.has(source as TaskSource)) return NO_INTENT;
  const text = content.replace(NEGATED, " ");
  const kinds = new Set<PlannerActionKind>();
  for (const k of PLANNER_ACTION_KINDS) if (new RegExp(`\\b${k}\\b`, "i").test(text)) kinds.add(k);
  return { kinds };
}

/** The targets and every service they declare a dependency on (transitively, on the same node, as the spec says). */
export function scopeOf(targets: readonly Target[], spec: FleetSpec): Map<string, "target" | "dependency"> {
  const scope = new Map<string, "target" | "dependency">();
  for (const t of targets) scope.set(`${t.node}/${t.service}`, "target");
  const queue = [...targets];
  for (let t = queue.shift(); t; t = queue.shift()) {
    for (const dep of spec.nodes[t.node]?.services[t.service]?.depends_on ?? []) {
      const key = `${t.node}/${dep}`;
      if (scope.has(key)) continue;
      scope.set(key, "dependency");
      queue.push({ node: t.node, service: dep });
    }
  }
  return scope;
}

type Observed = { kind: "unknown"; why: string } | { kind: "absent" } | { kind: "seen"; state: string; health: string };

function observe(world: WorldState | undefined, node: string, service: string): Observed {
  if (!world) return { kind: "unknown", why: "the world state could not be read" };
  const n = world.nodes[node];
  if (!n) return { kind: "unknown", why: `node '${node}' has never reported` };
  if (n.status !== "up") return { kind: "unknown", why: `node '${node}' is ${n.status}` };
  const s = n.services[service];
  if (!s) return { kind: "absent" };
  if (s.state === "unknown") return { kind: "unknown", why: `the state of ${service} on ${node} is unknown` };
  return { kind: "seen", state: s.state, health: s.health };
}

const str = (v: unknown): string | null => (typeof v === "string" ? v.slice(0, 63) : null);

/** Pure and total: accept or refuse one proposal, with the reason an operator reads in `steward task show`. */
export function judgeProposal(input: TrustInput): TrustVerdict {
  const raw = input.proposal;
  const o = (raw && typeof raw === "object" ? raw : {}) as Record<string, unknown>;
  const kind = typeof o["kind"] === "string" ? o["kind"].slice(0, 40) : "(none)";
  const node = str(o["node"]);
  const service = str(o["service"]);
  const refuse = (rule: RefusalRule, reason: string): TrustVerdict => ({ ok: false, rule, kind, node, service, reason });

  if (!(PLANNER_ACTION_KINDS as readonly string[]).includes(kind)) return refuse("not_in_catalog", `kind '${kind}' is not in the action catalog (${PLANNER_ACTION_KINDS.join(", ")})`);
  const r = ValidProposal.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    return refuse("invalid", `invalid proposal: ${i?.path.join(".") || "(root)"}: ${i?.message ?? "invalid"}`);
  }
  const p = r.data;
  if (!input.spec.nodes[p.node]) return refuse("undeclared", `node '${p.node}' is not declared in the fleet spec`);
  if (!input.spec.nodes[p.node]?.services[p.service]) return refuse("undeclared", `service '${p.service}' is not declared on node '${p.node}'`);

  const scope = scopeOf(input.targets, input.spec).get(`${p.node}/${p.service}`);
  if (!scope) {
    const about = input.targets.length > 0 ? input.targets.map((t) => `${t.node}/${t.service}`).join(", ") : "no service";
    return refuse("out_of_scope", `${p.node}/${p.service} is outside this task: it is about ${about} (and their declared dependencies)`);
  }

  const seen = observe(input.world, p.node, p.service);
  if (seen.kind === "unknown") return refuse("state_unknown", `${seen.why}: nothing is proposed on unknown state`);
  // Only the operator's words about this task's own targets can ask; a dependency is never "asked for".
  const asked = scope === "target" && input.requested.kinds.has(p.kind);
  const running = seen.kind === "seen" && (seen.state === "running" || seen.state === "starting");
  const exits = input.recentExits?.[`${p.node}/${p.service}`] ?? 0;
  const healthy = seen.kind === "seen" && seen.state === "running" && (seen.health === "healthy" || seen.health === "none") && exits === 0;
  const observed = seen.kind === "seen" ? `${seen.state}${seen.health !== "none" ? `, ${seen.health}` : ""}${exits > 0 ? `, ${exits} exit(s) in the events window` : ""}` : "not running (no record)";

  switch (p.kind) {
    case "stop":
      // A stop takes a declared service away from what the spec says it should be: it never fixes drift.
      if (!asked) return refuse("not_requested", `stop of ${p.service} on ${p.node} (${observed}) was not asked for by the operator's request`);
      if (!running) return refuse("no_effect", `${p.service} on ${p.node} is already not running (${observed})`);
      break;
    case "restart":
      if (healthy && !asked) return refuse("not_requested", `${p.service} on ${p.node} is ${observed}: a restart was not asked for by the operator's request`);
      break;
    case "start":
      if (running) return refuse("no_effect", `${p.service} on ${p.node} is already ${observed}`);
      break;
    default: {
      const never: never = p.kind;
      return refuse("not_in_catalog", `kind '${String(never)}' is not handled`);
    }
  }
  return { ok: true, proposal: p, scope };
}
