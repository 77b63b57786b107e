import type { CredentialRole } from "@steward/contracts/executor-api";
import type { TaskSource } from "@steward/contracts/task";
import type { Credential } from "@steward/platform/credentials";

/**
 * Who may do what on the planner's HTTP API (issue 13). Operators hold the executor's named credentials
 * (`api_credentials`: viewer, approver, admin), resolved through the same lookup; components hold a token of the
 * planner's own settings, each with a role that allows exactly what that component calls.
 */
export type PlannerRole = CredentialRole | "supervisor" | "console";

/** What a route of the planner's API needs; each route needs exactly one. */
export type PlannerPermission =
  /** Every task, the incident list and any incident. */
  | "read"
  /** Only tasks this credential submitted (`GET /tasks/:id`); `read` implies it. */
  | "read_own_tasks"
  | "read_cost"
  | "read_recurrences"
  | "submit"
  | "write_postmortem";

/**
 * Operators' roles nest (viewer < approver < admin; the planner has nothing more for admin). The supervisor only
 * files escalations; the alerter files Telegram tasks and follows them, and reads cost and recurrences for its
 * rules; the executor's console shows tasks and cost to a signed-in operator and may file a task for one.
 */
export const PLANNER_GRANTS: Readonly<Record<PlannerRole, readonly PlannerPermission[]>> = {
  viewer: ["read", "read_own_tasks", "read_cost", "read_recurrences"],
  approver: ["read", "read_own_tasks", "read_cost", "read_recurrences", "submit", "write_postmortem"],
  admin: ["read", "read_own_tasks", "read_cost", "read_recurrences", "submit", "write_postmortem"],
  supervisor: ["submit"],
  alerter: ["read_own_tasks", "read_cost", "read_recurrences", "submit"],
  console: ["read", "read_own_tasks", "read_cost", "read_recurrences", "submit"],
};

/**
 * The sources a role may claim in an envelope. `admin` may claim any: its token is the bootstrap credential, which
 * older set-ups give to every component.
 */
export const CLAIMABLE_SOURCES: Readonly<Record<PlannerRole, readonly TaskSource[]>> = {
  viewer: [],
  approver: ["cli", "api"],
  admin: ["cli", "supervisor", "schedule", "telegram", "ntfy", "api", "web"],
  supervisor: ["supervisor"],
  alerter: ["telegram"],
  console: ["web"],
};

/**
 * Roles whose body `user` names someone they vouch for (the alerter: the allow-listed Telegram user; the console:
 * the signed-in operator; the bootstrap admin token, shared by components in older set-ups). The task's user is then
 * `<that name> via <credential>`, so the record says who vouched. Everyone else's body `user` is ignored: the task's
 * user is the credential's name.
 */
export const VOUCHING_ROLES: readonly PlannerRole[] = ["alerter", "console", "admin"];

export function plannerPermits(role: PlannerRole, need: PlannerPermission): boolean {
  return PLANNER_GRANTS[role].includes(need);
}

/** The routes of the planner's API with a bearer (method, route pattern); everything else is 404 or 405. */
export const PLANNER_ROUTES = [
  ["POST", "/inbox"],
  ["GET", "/tasks"],
  ["GET", "/tasks/:id"],
  ["GET", "/cost"],
  ["GET", "/incidents"],
  ["GET", "/incidents/recurrences"],
  ["GET", "/incidents/:id"],
  ["POST", "/incidents/:id/postmortem"],
] as const;

/** The permission a route (as `PLANNER_ROUTES` names it) needs; a wrong method is answered 405 after this check. */
export function plannerRoutePermission(route: string): PlannerPermission | undefined {
  switch (route) {
    case "/inbox":
      return "submit";
    case "/tasks":
    case "/incidents":
    case "/incidents/:id":
      return "read";
    case "/tasks/:id":
      return "read_own_tasks";
    case "/cost":
      return "read_cost";
    case "/incidents/recurrences":
      return "read_recurrences";
    case "/incidents/:id/postmortem":
      return "write_postmortem";
    default:
      return undefined;
  }
}

/** The route pattern of a path, or undefined when the planner has none. */
export function plannerRouteOf(path: string): string | undefined {
  if (path === "/inbox" || path === "/tasks" || path === "/cost" || path === "/incidents" || path === "/incidents/recurrences") return path;
  if (/^\/tasks\/[^/]+$/.test(path)) return "/tasks/:id";
  if (/^\/incidents\/[^/]+\/postmortem$/.test(path)) return "/incidents/:id/postmortem";
  if (/^\/incidents\/[^/]+$/.test(path)) return "/incidents/:id";
  return undefined;
}

export type PlannerAccessDecision = { ok: true } | { ok: false; status: 401 | 403; code: "unauthorized" | "forbidden"; message: string };

/** Pure: no credential is 401 (never saying which part was wrong), a role without the permission 403 naming both. */
export function decidePlannerAccess(cred: Credential<PlannerRole> | undefined, need: PlannerPermission): PlannerAccessDecision {
  if (!cred) return { ok: false, status: 401, code: "unauthorized", message: "missing, wrong or revoked bearer token" };
  if (!plannerPermits(cred.role, need)) return { ok: false, status: 403, code: "forbidden", message: `credential '${cred.name}' (role ${cred.role}) may not ${need.replace(/_/g, " ")}; nothing was changed` };
  return { ok: true };
}

/** Task users are labels of at most 200 characters. */
const MAX_USER = 200;

export type SubmitDecision = { ok: true; user: string } | { ok: false; status: 403; code: "forbidden"; field: "source"; message: string };

/**
 * Pure: who a submitted task is recorded as, and whether the credential may claim the envelope's source. The user
 * comes from the credential: its name, or `<body user> via <name>` for a role that vouches for someone.
 */
export function decideSubmit(cred: Credential<PlannerRole>, envelope: { source: TaskSource; user: string }): SubmitDecision {
  const allowed = CLAIMABLE_SOURCES[cred.role];
  if (!allowed.includes(envelope.source)) {
    return { ok: false, status: 403, code: "forbidden", field: "source", message: `credential '${cred.name}' (role ${cred.role}) may not file tasks with source '${envelope.source}'${allowed.length ? ` (it may: ${allowed.join(", ")})` : ""}; nothing was queued` };
  }
  if (!VOUCHING_ROLES.includes(cred.role) || envelope.user === cred.name) return { ok: true, user: cred.name };
  const suffix = ` via ${cred.name}`;
  return { ok: true, user: envelope.user.slice(0, Math.max(1, MAX_USER - suffix.length)) + suffix };
}

/** Pure: whether a credential with only `read_own_tasks` may see this task (one it submitted, as `decideSubmit` recorded it). */
export function ownsTask(cred: Credential<PlannerRole>, task: { user: string }): boolean {
  return task.user === cred.name || task.user.endsWith(` via ${cred.name}`);
}
