import { writeFile } from "node:fs/promises";
import type { Incident, IncidentDetail } from "@steward/contracts/incident";
import { currentTraceHeaders, withSpan } from "@steward/platform/tracing";
import { findSubcommand, INCIDENT, type Io } from "../command-table.js";
import { UsageError } from "../errors.js";
import { ago, table } from "../format.js";
import { parseFlags } from "../parse.js";
import { connectPlanner, type PlannerClient } from "../connect-planner.js";

const clip = (s: string, n: number): string => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
};

/** How long it lasted (or has lasted so far). */
function lasted(i: Pick<Incident, "started_at" | "resolved_at">, now: number): string {
  const ms = (i.resolved_at ? Date.parse(i.resolved_at) : now) - Date.parse(i.started_at);
  const s = Math.max(0, Math.round(ms / 1000));
  const text = s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${(s / 3600).toFixed(1)}h` : `${(s / 86_400).toFixed(1)}d`;
  return i.resolved_at ? text : `${text}+`;
}

export function renderIncidentList(list: readonly Incident[], now = Date.now()): string {
  if (list.length === 0) return "no incidents";
  return table(
    ["ID", "STATE", "SERVICE", "SIGNATURE", "OPENED", "LASTED", "TASKS", "OUTCOME"],
    list.map((i) => [`#${i.id}`, i.state, `${i.node}/${i.service}`, i.signature, ago(i.opened_at, now), lasted(i, now), i.tasks, i.outcome ? clip(i.outcome, 60) : "-"]),
  );
}

const indent = (text: string, by = "  "): string => text.split("\n").map((l) => by + l).join("\n");
const at = (iso: string): string => iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "");

export function renderIncidentDetail(d: IncidentDetail, now = Date.now()): string {
  const i = d.incident;
  const out: string[] = [];
  out.push(`incident #${i.id}: ${i.title}`);
  out.push(`  state:     ${i.state}${i.resolved_at ? `, resolved ${at(i.resolved_at)}: ${i.outcome ?? ""}` : ""}`);
  out.push(`  service:   ${i.node}/${i.service}   signature: ${i.signature}`);
  out.push(`  started:   ${at(i.started_at)} (opened ${ago(i.opened_at, now)}; lasted ${lasted(i, now)})`);
  if (d.recurrence) out.push(`  RECURRING: ${d.recurrence.count} incidents of this failure within the window (${d.recurrence.incident_ids.map((x) => `#${x}`).join(", ")}); raised ${at(d.recurrence.raised_at)}, window until ${at(d.recurrence.window_until)}`);
  out.push("");
  out.push(i.diagnosis ? `diagnosis (written by a model or the runbooks: unverified):\n${indent(i.diagnosis)}` : "diagnosis: none yet");
  out.push("");
  out.push(d.timeline.length === 0 ? "timeline: empty" : `timeline:\n${indent(table(["AT (UTC)", "SOURCE", "WHAT", "TRACE"], d.timeline.map((e) => [at(e.at), e.source, clip(e.what, 140), e.trace_id ?? "-"])))}`);
  for (const n of d.notes) out.push(`  note: ${n}`);
  out.push("");
  out.push(
    d.actions.length === 0
      ? "actions: none"
      : `actions:\n${indent(table(["ACTION", "KIND", "STATE", "BY", "RESULT"], d.actions.map((a) => [a.id.slice(0, 8), a.kind, a.state, a.proposed_by, a.result ? clip(a.result, 80) : "-"])))}`,
  );
  out.push("");
  out.push(d.tasks.length === 0 ? "tasks: none" : `tasks (steward task show ID):\n${indent(table(["TASK", "STATE", "CREATED", "ASKED"], d.tasks.map((t) => [t.id.slice(0, 12), t.state, ago(t.created_at, now), clip(t.content, 80)])))}`);
  out.push("");
  out.push(
    d.similar.length === 0
      ? "similar past incidents: none"
      : `similar past incidents:\n${indent(table(["ID", "SERVICE", "SIGNATURE", "OPENED", "MATCH", "HOW IT ENDED"], d.similar.map((s) => [`#${s.id}`, `${s.node}/${s.service}`, s.signature, ago(s.opened_at, now), s.match === "signature" ? "same failure" : "similar words", s.outcome ? clip(s.outcome, 60) : s.state])))}`,
  );
  out.push("");
  out.push(d.postmortem ? `post-mortem: drafted (steward incident postmortem ${i.id} drafts it again)` : `post-mortem: none yet (steward incident postmortem ${i.id})`);
  return out.join("\n");
}

/** `#12` or `12`. */
function incidentId(raw: string | undefined, usage: string): number {
  if (raw === undefined) throw new UsageError(`which incident? ${usage}`);
  const id = Number(raw.replace(/^#/, ""));
  if (!/^#?[1-9][0-9]{0,15}$/.test(raw) || !Number.isSafeInteger(id)) throw new UsageError(`ID must be an incident number as \`steward incident ls\` prints it (12 or #12), got '${raw}'`);
  return id;
}

/** `steward incident ls|show|postmortem`. */
export async function incidentCommand(args: string[], io: Io, deps: { planner?: PlannerClient } = {}): Promise<number> {
  const sub = findSubcommand(INCIDENT, args)?.[0];
  const planner = async () => deps.planner ?? (await connectPlanner(io.env));
  if (sub === "ls") {
    const { values } = parseFlags(INCIDENT.subcommands.ls.flags, args.slice(1));
    const limit = Number(values.limit);
    if (!/^[1-9][0-9]*$/.test(values.limit) || limit > 500) throw new UsageError(`--limit must be an integer from 1 to 500, got '${values.limit}'`);
    const list = await (await planner()).incidents({ limit, ...(values.state ? { state: values.state as Incident["state"] } : {}) });
    io.out(values.json ? JSON.stringify({ incidents: list }, null, 2) : renderIncidentList(list));
    return 0;
  }
  if (sub === "show") {
    const { values, positionals } = parseFlags(INCIDENT.subcommands.show.flags, args.slice(1), { positionals: true });
    if (positionals.length > 1) throw new UsageError("one incident at a time: steward incident show ID");
    const d = await (await planner()).incident(incidentId(positionals[0], "steward incident show ID"));
    io.out(values.json ? JSON.stringify(d, null, 2) : renderIncidentDetail(d));
    return 0;
  }
  if (sub === "postmortem") {
    const { values, positionals } = parseFlags(INCIDENT.subcommands.postmortem.flags, args.slice(1), { positionals: true });
    if (positionals.length > 1) throw new UsageError("one incident at a time: steward incident postmortem ID");
    const id = incidentId(positionals[0], "steward incident postmortem ID");
    const client = await planner();
    if (!values.json) io.err(`drafting the post-mortem of incident #${id} (a model may take a while)…`);
    const r = await withSpan("cli.incident_postmortem", { attributes: { "steward.incident_id": id } }, () => client.postmortem(id, { headers: currentTraceHeaders() }));
    if (values.out) {
      try {
        await writeFile(values.out, r.markdown, { flag: "wx" });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new UsageError(`--out: ${values.out} exists; it is never overwritten`);
        throw err;
      }
    }
    if (values.json) io.out(JSON.stringify(r, null, 2));
    else if (values.out) io.out(`wrote ${values.out} (${r.by === "model" ? r.detail : `from the timeline: ${r.detail}`}; task ${r.task_id})`);
    else {
      io.out(r.markdown);
      io.err(r.by === "model" ? `post-mortem ${r.detail}; its model call and cost: steward task show ${r.task_id}` : `drafted from the timeline: ${r.detail}`);
    }
    return 0;
  }
  io.err(args.length > 0 && !args[0]?.startsWith("-") ? `unknown subcommand '${args[0]}'; see 'steward incident --help'` : "usage: steward incident ls|show|postmortem; see 'steward incident --help'");
  return 2;
}
