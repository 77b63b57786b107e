import type { Action, AuditEntry } from "@steward/contracts/action";
import { DRILL_FOLLOW_UP_KIND, DrillParams, type DrillResult } from "@steward/contracts/drill";
import type { DrillsRepository } from "@steward/actions/drills";
import { loadSpecSafe } from "@steward/fleet/load";
import { commandStep, type Ending } from "./verdict.js";
import { commandMark } from "./verify.js";
import { drillTimings, drillVerdict, followUpApproval, refuseDrill, sightDrill, type DrillMarks, type DrillWindow } from "./drill-plan.js";
import type { RunDeps } from "./run.js";
import { sleep } from "@steward/platform/sleep";

/** A world older than this is not trusted for a drill (the supervisor's default snapshot age limit). */
export const DRILL_WORLD_MAX_AGE_MS = 30_000;

/** What a drill needs beyond a single action's run. */
export interface DrillDeps {
  drills: DrillsRepository;
  /** Runs drills one at a time in this executor: `--all` kills one service, waits for it, then the next. */
  serial<T>(fn: () => Promise<T>): Promise<T>;
}

/** The audit actor of everything a drill does by itself. */
export const drillActor = (drillId: string): string => `drill:${drillId}`;

/** When the restart was approved and by whom, from its audit log. */
function approvalOf(audit: readonly AuditEntry[]): { at: number; by: string } | undefined {
  const row = audit.find((e) => e.from_state === "pending" && e.to_state === "approved");
  return row ? { at: Date.parse(row.at), by: row.actor } : undefined;
}

/**
 * Runs one approved drill (state `running`): checks again that it may, kills the service through the node-agent's
 * signed command path, and watches the world and the actions table until the service is healthy again or the window
 * ends. The result is kept (drill_results) before the action ends, so whoever hears of the action finds it.
 */
export async function runDrill(deps: RunDeps & DrillDeps, action: Action, signal: AbortSignal, leaseLost: () => boolean): Promise<Ending> {
  return deps.serial(() => drill(deps, action, signal, leaseLost));
}

async function drill(deps: RunDeps & DrillDeps, action: Action, signal: AbortSignal, leaseLost: () => boolean): Promise<Ending> {
  const { clock, config, store } = deps;
  const t = { node: action.node, service: action.service };
  const log = deps.logger.child({ drill_id: action.id, node: t.node, service: t.service });
  const parsed = DrillParams.safeParse(action.params);
  const base = { drill_id: action.id, node: t.node, service: t.service, objective_ms: parsed.success ? parsed.data.objective_ms : 1, approve_restart: parsed.success && parsed.data.approve_restart };
  const keep = async (r: Omit<DrillResult, keyof typeof base | "finished_at">): Promise<void> => {
    await deps.drills.record({ ...base, ...r, finished_at: clock().toISOString() });
  };
  const nothing = { started_at: null, detected_ms: null, proposed_ms: null, approved_ms: null, recovered_ms: null, restart_action_id: null, approved_by: null };
  const refuse = async (why: string): Promise<Ending> => {
    await keep({ ...nothing, verdict: "refused", reason: why });
    log.warn({ reason: why }, "drill refused; nothing was changed");
    return { outcome: "failed", result: `drill refused, nothing was changed: ${why}` };
  };
  if (!parsed.success) return refuse(`the drill's params are not a drill's: ${parsed.error.issues[0]?.message ?? "invalid"}`);
  const params = parsed.data;
  if (!config.fleetSpecPath) return refuse("the executor has no FLEET_SPEC: a drill needs the spec's recovery objectives and dependencies");
  const spec = await loadSpecSafe(config.fleetSpecPath);
  if (!spec.ok) return refuse(`the fleet spec cannot be read: ${spec.detail}`);

  // Checked again now: the node may have gone stale or a dependency unhealthy since the drill was approved.
  const before = deps.world.nodes([t.node]);
  const why = refuseDrill(t, { spec: spec.value, world: before.ok ? before.value : undefined, open: await store.listOpen(), now: clock(), worldMaxAgeMs: DRILL_WORLD_MAX_AGE_MS, self: action.id });
  if (why) return refuse(why);
  const startsBefore = before.ok ? (before.value.world.nodes[t.node]?.services[t.service]?.starts ?? 0) : 0;

  const sentAt = clock();
  const command = await deps.commands.send({ node: t.node, op: "drill", service: t.service, actionId: action.id, timeoutMs: config.commandTimeoutMs });
  const sent = commandStep(command, "drill", t.service);
  if (!sent.ok || !command.ok) {
    await keep({ ...nothing, started_at: sentAt.toISOString(), verdict: "failed", reason: `the kill did not happen: ${sent.detail}` });
    return { outcome: "failed", result: `drill failed: the kill did not happen: ${sent.detail}` };
  }
  log.info({ detail: sent.detail }, "drill: service killed; timing its recovery");
  const mark = commandMark(sentAt, command.eventsSeq);
  const w: DrillWindow = { drillId: action.id, node: t.node, service: t.service, startedAt: sentAt, endsAt: new Date(sentAt.getTime() + params.window_ms), approveRestart: params.approve_restart };
  const marks: DrillMarks = { sentAt: sentAt.getTime() };
  let restart: Action | undefined;
  let lastSeen = "nothing read yet";

  while (clock().getTime() <= w.endsAt.getTime()) {
    const snap = deps.world.nodes([t.node]);
    const now = clock();
    if (snap.ok) {
      const s = sightDrill(snap.value, t, mark, startsBefore);
      lastSeen = s.seen;
      if (s.phase !== "before" && marks.detectedAt === undefined) marks.detectedAt = now.getTime();
      if (s.phase === "recovered") {
        marks.recoveredAt = now.getTime();
        break;
      }
    } else lastSeen = snap.message;
    if (!restart || restart.state === "pending") {
      const open = (await store.listOpen()).find((a) => a.kind === DRILL_FOLLOW_UP_KIND && a.node === t.node && a.service === t.service && Date.parse(a.created_at) >= sentAt.getTime());
      if (open) restart = open;
    }
    if (restart && restart.state === "pending" && followUpApproval(w, restart, now).approve) {
      const r = await store.approveMatching(restart.id, { node: t.node, service: t.service, kind: DRILL_FOLLOW_UP_KIND, createdFrom: w.startedAt, createdUntil: w.endsAt }, { actor: drillActor(action.id), channel: "policy", detail: `approved by restart drill ${action.id} (--approve): the restart this drill caused by killing ${t.node}/${t.service}` });
      if (r.ok) {
        restart = r.action;
        log.info({ restart_id: r.action.id }, "drill: approved the restart it caused");
      }
    }
    if (leaseLost()) return { outcome: "lost", result: `lease lost during the drill; last seen: ${lastSeen}` };
    if (signal.aborted) break;
    await sleep(config.verifyPollMs, signal);
  }

  let approvedBy: string | null = null;
  if (restart) {
    marks.proposedAt = Date.parse(restart.created_at);
    const approval = approvalOf(await store.audit(restart.id));
    if (approval) [marks.approvedAt, approvedBy] = [approval.at, approval.by];
  }
  const timings = drillTimings(marks);
  if (signal.aborted && marks.recoveredAt === undefined) {
    const reason = `the executor stopped during the drill; last seen: ${lastSeen}`;
    await keep({ ...timings, started_at: sentAt.toISOString(), restart_action_id: restart?.id ?? null, approved_by: approvedBy, verdict: "failed", reason });
    return { outcome: "abandoned", result: `drill cut short: ${reason}` };
  }
  const v = drillVerdict(params, timings, lastSeen);
  await keep({ ...timings, started_at: sentAt.toISOString(), restart_action_id: restart?.id ?? null, approved_by: approvedBy, verdict: v.verdict, reason: v.reason });
  log[v.verdict === "passed" ? "info" : "warn"]({ verdict: v.verdict, ...timings, objective_ms: params.objective_ms }, "drill finished");
  return { outcome: "succeeded", result: `drill ${v.verdict}: ${v.reason}` };
}
