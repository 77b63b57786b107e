/**
 * Pure: what failed, from a supervisor escalation's evidence. The signature names the failure class (how the service
 * failed and why, as far as the records say) without what changes from one occurrence to the next (times, pids, ids),
 * so the same failure on the same service has the same signature every time.
 */

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj | undefined => (v && typeof v === "object" && !Array.isArray(v) ? (v as Obj) : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);

/** Digits, hex ids and spacing vary between occurrences of one failure: they are not part of its signature. */
export function normalizeText(text: string, max = 60): string {
  return text
    .toLowerCase()
    .replace(/[0-9a-f]{8}-[0-9a-f-]{27,}/g, "#")
    .replace(/\b[0-9a-f]{8,}\b/g, "#")
    .replace(/\d+/g, "#")
    .replace(/[^a-z#:/._ -]+/g, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, max)
    .trim();
}

const DOWN_STATES = new Set(["exited", "failed", "stopped"]);

/** The failure signature of an escalation's evidence, e.g. `down:exit=3`, `unhealthy:check=http`, `down:result=...`. */
export function failureSignature(evidence: Obj | null): string {
  const ev = evidence ?? {};
  const drift = obj(ev["drift"]);
  const st = obj(ev["service_state"]);
  const action = obj(ev["action"]);
  const runState = str(st?.["state"]);
  const health = str(st?.["health"]);
  let how = str(drift?.["kind"]);
  if (!how && runState) how = runState === "running" && health === "unhealthy" ? "unhealthy" : DOWN_STATES.has(runState) ? "down" : runState;
  if (!how) how = action ? "action_failed" : "unknown";
  const exit = st?.["exit_code"];
  if (how === "down" && typeof exit === "number") return `down:exit=${exit}`;
  if (how === "unhealthy") {
    const checks = obj(st?.["checks"]);
    const failing = checks ? Object.entries(checks).filter(([, c]) => obj(c)?.["ok"] === false).map(([name]) => name).sort() : [];
    if (failing.length > 0) return `unhealthy:check=${failing.join(",")}`;
  }
  const result = str(action?.["result"]);
  if (result) return `${how}:result=${normalizeText(result)}`;
  return `${how}:unknown`;
}

/** Words for a signature: `down:exit=3` reads "down (exit 3)". */
export function describeSignature(sig: string): string {
  const [how = sig, cause = ""] = sig.split(/:(.*)/s);
  if (cause === "" || cause === "unknown") return how;
  const [k, v = ""] = cause.split(/=(.*)/s);
  const what = k === "exit" ? `exit ${v}` : k === "check" ? `failing check ${v}` : k === "result" ? v : cause;
  return `${how} (${what})`;
}

/** The service a supervisor task is about: its conversation is `supervisor:<node>/<service>`; else the evidence's drift. */
export function targetOfTask(conversationId: string, evidence: Obj | null): { node: string; service: string } | undefined {
  const m = /^supervisor:([^/]+)\/(.+)$/.exec(conversationId);
  if (m?.[1] && m[2]) return { node: m[1], service: m[2] };
  const drift = obj(evidence?.["drift"]);
  const node = str(drift?.["node"]);
  const service = str(drift?.["service"]);
  return node && service ? { node, service } : undefined;
}

/** When the failure began, as far as the evidence says (the drift's `since`); undefined when it does not. */
export function startOf(evidence: Obj | null): Date | undefined {
  const since = str(obj(evidence?.["drift"])?.["since"]) ?? str(obj(evidence?.["service_state"])?.["since"]);
  const t = since ? Date.parse(since) : NaN;
  return Number.isNaN(t) ? undefined : new Date(t);
}
