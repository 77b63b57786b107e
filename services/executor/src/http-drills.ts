import type { ServerResponse } from "node:http";
import { DRILL_KIND, type DrillParams } from "@steward/contracts/drill";
import type { Action } from "@steward/contracts/action";
import { DrillRequest, MAX_ACTION_LIST_LIMIT, type DrillDetailReply, type DrillListReply, type DrillProposeReply, type DrillRefusal } from "@steward/contracts/executor-api";
import type { ActionsRepository } from "@steward/actions/repository";
import type { DrillsRepository } from "@steward/actions/drills";
import { loadSpecSafe } from "@steward/fleet/load";
import { allowMethod, HttpError, parseListLimit, sendJson } from "@steward/platform/http";
import { DRILL_WORLD_MAX_AGE_MS } from "./drill-run.js";
import { drillTargets, drillWindowMs, refuseDrill } from "./drill-plan.js";
import type { WorldView } from "./world.js";
import type { Credential } from "./access.js";

/** A drill nobody approved within this is expired, like any action. */
export const DRILL_TTL_MS = 3_600_000;

export interface DrillRoutesDeps {
  store: ActionsRepository;
  drills: DrillsRepository;
  world: Pick<WorldView, "snapshot">;
  fleetSpecPath: string | undefined;
  clock: () => Date;
}

const secs = (ms: number): string => `${ms / 1000} s`;

/**
 * `POST /api/drills` (propose), `GET /api/drills` (list), `GET /api/drills/:id` (one, with the restart it caused).
 * Proposing decides per service with the pure `refuseDrill` and only then writes pending drill actions: a refused
 * service gets nothing. Approving, rejecting and listing them as actions is the actions API's, like any action.
 */
export function createDrillRoutes(deps: DrillRoutesDeps) {
  const { store, drills } = deps;

  async function propose(body: DrillRequest, cred: Credential): Promise<DrillProposeReply> {
    const req = DrillRequest.parse(body);
    if (!deps.fleetSpecPath) throw new HttpError(503, { code: "no_fleet_spec", message: "the executor has no FLEET_SPEC: drills need the spec's recovery objectives and dependencies" });
    const spec = await loadSpecSafe(deps.fleetSpecPath);
    if (!spec.ok) throw new HttpError(503, { code: "fleet_spec_unreadable", message: `the fleet spec cannot be read: ${spec.detail}` });
    const targets = drillTargets(spec.value, req);
    if (!targets.ok) throw new HttpError(404, { code: "not_found", field: targets.field, message: targets.message });
    const world = await deps.world.snapshot();
    const open = await store.listOpen();
    const now = deps.clock();
    // The credential names who asked, whatever the body's `actor` says.
    const actor = cred.name;
    const channel = req.channel ?? "api";
    const proposed: Action[] = [];
    const refused: DrillRefusal[] = [];
    for (const t of targets.targets) {
      const why = refuseDrill(t, { spec: spec.value, world: world.ok ? world.value : undefined, open, now, worldMaxAgeMs: DRILL_WORLD_MAX_AGE_MS });
      if (why) {
        refused.push({ ...t, reason: why });
        continue;
      }
      const objective = spec.value.nodes[t.node]?.services[t.service]?.recovery_objective ?? 0;
      const params: DrillParams = { objective_ms: objective, window_ms: drillWindowMs(objective), approve_restart: req.approve_restart === true };
      const follow = params.approve_restart ? "the drill approves the restart it causes (and nothing else)" : "the restart it causes waits for an operator";
      const reason = `restart drill: kill ${t.node}/${t.service} and time its recovery against its ${secs(objective)} objective; ${follow}`;
      const r = await store.propose({ ...t, kind: DRILL_KIND, reason, driftKey: null, proposedBy: actor, channel, auditDetail: `drill requested by ${actor}`, now, ttlMs: DRILL_TTL_MS, traceparent: null, params });
      if (r.proposed) proposed.push(r.action);
      else refused.push({ ...t, reason: `a drill of ${t.node}/${t.service} is already open (${r.open?.id.slice(0, 8) ?? "?"}, ${r.open?.state ?? "?"})` });
    }
    return { proposed, refused };
  }

  return async function route(res: ServerResponse, seg: readonly string[], method: string, body: () => Promise<unknown>, url: URL, cred: Credential): Promise<{ route: string; status: number }> {
    if (seg.length === 1) {
      if (method === "POST") {
        const raw = await body();
        const parsed = DrillRequest.safeParse(raw);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const field = issue?.path.join(".") || "(body)";
          throw new HttpError(422, { code: "invalid", field, message: `${field}: ${issue?.message ?? "invalid"}` });
        }
        const reply = await propose(parsed.data, cred);
        if (reply.proposed.length === 0) {
          // Nothing was changed: a conflict with the state of the fleet, each target with its reason.
          throw new HttpError(409, { code: "drill_refused", message: `refused, nothing was changed: ${reply.refused.map((r) => `${r.node}/${r.service}: ${r.reason}`).join("; ")}`, refused: reply.refused });
        }
        sendJson(res, 201, reply);
        return { route: "/api/drills", status: 201 };
      }
      allowMethod(method, "GET", "/api/drills");
      const limit = parseListLimit(url.searchParams.get("limit"), MAX_ACTION_LIST_LIMIT);
      const reply: DrillListReply = { drills: await drills.listDrills(limit) };
      sendJson(res, 200, reply);
      return { route: "/api/drills", status: 200 };
    }
    if (seg.length === 2 && seg[1]) {
      allowMethod(method, "GET", "/api/drills/:id");
      const found = await store.get(seg[1]);
      if (!found || found.action.kind !== DRILL_KIND) throw new HttpError(404, { code: "not_found", message: `no drill with id '${seg[1]}'` });
      const result = (await drills.result(found.action.id)) ?? null;
      const restart = result?.restart_action_id ? ((await store.get(result.restart_action_id)) ?? null) : null;
      const reply: DrillDetailReply = { ...found, result, restart };
      sendJson(res, 200, reply);
      return { route: "/api/drills/:id", status: 200 };
    }
    throw new HttpError(404, { code: "not_found", message: `no route ${method} /api/${seg.join("/")}` });
  };
}

export type DrillRoutes = ReturnType<typeof createDrillRoutes>;
