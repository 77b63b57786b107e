import { CONTAINER_INSPECT_LIMITS as L, type InspectedContainer } from "@steward/contracts/container-inspect";
import { looksSecretName, redactSecretsInText } from "@steward/platform/redact";
import { LABEL_SERVICE } from "./compose-model.js";
import type { ContainerInspect } from "./docker/types.js";

/**
 * Read-only views of a stack's containers for an investigation (the planner's `service_logs` and `container_inspect`):
 * the containers' logs merged by time, and their state without env values. Pure but for `readLog`.
 */

/** Values to mask in anything read from a stack: its containers' env values whose names look secret. */
export function secretEnvValues(containers: readonly ContainerInspect[]): string[] {
  const out = new Set<string>();
  for (const c of containers)
    for (const line of c.Config.Env ?? []) {
      const eq = line.indexOf("=");
      if (eq > 0 && looksSecretName(line.slice(0, eq)) && line.length - eq - 1 >= 4) out.add(line.slice(eq + 1));
    }
  return [...out];
}

const composeService = (c: ContainerInspect): string | null => c.Config.Labels?.[LABEL_SERVICE] ?? null;

/**
 * The end of a stack's log: each container's last `maxBytes` (lines start with the engine's timestamp), merged by
 * that timestamp, each line after it prefixed with the compose service (`web | `) when the stack has several, then cut
 * to the last `maxBytes` at a line start. Not redacted here.
 */
export async function stackLogs(
  containers: readonly ContainerInspect[],
  opts: { maxBytes: number; since?: Date; until?: Date },
  readLog: (c: ContainerInspect, o: { tty: boolean; maxBytes: number; tailLines?: number; since?: Date; until?: Date }) => Promise<{ text: string; truncated: boolean }>,
): Promise<{ text: string; bytes: number; truncated: boolean }> {
  const several = containers.length > 1;
  const lines: { ts: string; line: string }[] = [];
  let truncated = false;
  for (const c of containers) {
    // Without `until`, the engine's tail bounds what it sends: a line is at least its 31-byte timestamp.
    const tailLines = opts.until ? undefined : Math.max(1, Math.ceil(opts.maxBytes / 32));
    const r = await readLog(c, { tty: c.Config.Tty === true, maxBytes: opts.maxBytes, ...(tailLines !== undefined ? { tailLines } : {}), ...(opts.since ? { since: opts.since } : {}), ...(opts.until ? { until: opts.until } : {}) });
    let got = r.text.split("\n");
    if (got.at(-1) === "") got.pop();
    if (tailLines !== undefined && got.length >= tailLines) truncated = true;
    if (r.truncated) truncated = true;
    got = got.map((l) => l.replace(/\r$/, ""));
    const tag = several ? `${composeService(c) ?? c.Name.replace(/^\//, "")} | ` : "";
    for (const l of got) {
      const sp = l.indexOf(" ");
      const ts = sp > 0 ? l.slice(0, sp) : "";
      lines.push({ ts, line: several && sp > 0 ? `${ts} ${tag}${l.slice(sp + 1)}` : l });
    }
  }
  // The engine's timestamps are fixed-width RFC 3339 (nanoseconds, UTC): they sort as text. The sort is stable.
  if (several) lines.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  let text = lines.map((l) => `${l.line}\n`).join("");
  if (Buffer.byteLength(text) > opts.maxBytes) {
    const buf = Buffer.from(text);
    text = buf.subarray(buf.length - opts.maxBytes).toString("utf8");
    const nl = text.indexOf("\n");
    if (nl >= 0 && nl < text.length - 1) text = text.slice(nl + 1);
    truncated = true;
  }
  return { text, bytes: Buffer.byteLength(text), truncated };
}

const ZERO_TIME = "0001-01-01T00:00:00Z";
const time = (t: string | undefined): string | null => (!t || t.startsWith("0001-01-01") || t === ZERO_TIME ? null : t);

function bounded<T>(list: readonly T[], max: number, what: string, cut: string[]): T[] {
  if (list.length > max) cut.push(`${what}: ${list.length - max} more not shown`);
  return list.slice(0, max);
}

/** One container as an investigation sees it: no env values (names only), mounts as paths, health output redacted. */
export function inspectView(c: ContainerInspect, knownSecrets: readonly string[]): InspectedContainer {
  const cut: string[] = [];
  const ports: string[] = [];
  for (const [port, binds] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
    if (!binds || binds.length === 0) ports.push(port);
    else for (const b of binds) ports.push(`${b.HostIp ? `${b.HostIp}:` : ""}${b.HostPort}->${port}`);
  }
  const envNames = (c.Config.Env ?? []).map((l) => (l.includes("=") ? l.slice(0, l.indexOf("=")) : l));
  const h = c.State.Health;
  const clip = (s: string, n: number) => (s.length > n ? `…${s.slice(s.length - n)}` : s);
  return {
    name: c.Name.replace(/^\//, ""),
    compose_service: composeService(c),
    image: c.Config.Image,
    image_id: c.Image,
    created: c.Created,
    started_at: time(c.State.StartedAt),
    finished_at: time(c.State.FinishedAt),
    status: c.State.Status,
    running: c.State.Running,
    restarting: c.State.Restarting,
    restart_count: c.RestartCount,
    exit_code: c.State.Running && c.State.ExitCode === 0 ? null : c.State.ExitCode,
    oom_killed: c.State.OOMKilled,
    error: c.State.Error ? redactSecretsInText(c.State.Error, knownSecrets).slice(0, L.errorChars) : null,
    health: h
      ? {
          status: h.Status,
          failing_streak: h.FailingStreak,
          log: (h.Log ?? []).slice(-L.healthLog).map((e) => ({ start: e.Start, exit_code: e.ExitCode, output: clip(redactSecretsInText(e.Output.trim(), knownSecrets), L.healthOutputChars) })),
        }
      : null,
    ports: bounded(ports.sort(), L.ports, "ports", cut),
    mounts: bounded(
      (c.Mounts ?? []).map((m) => ({ type: m.Type, source: m.Source ?? "", destination: m.Destination, read_only: m.RW === false })),
      L.mounts,
      "mounts",
      cut,
    ),
    env_names: bounded([...new Set(envNames)].sort(), L.envNames, "env_names", cut),
    cut,
  };
}
