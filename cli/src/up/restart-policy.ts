/**
 * How `steward up` heals its own stack, decided purely (table-tested in test/restart-policy.test.ts): a service that
 * dies is restarted after a delay that doubles with each death inside the window, and one that dies more than
 * `attempts` times inside the window is given up on (and said so), like systemd's StartLimitBurst/StartLimitIntervalSec.
 */
export interface RestartPolicy {
  /** Restarts allowed within `windowMs`; 0: never restart (a death is reported, as before). */
  attempts: number;
  /** Deaths older than this no longer count: a service that stayed up this long starts over at the first delay. */
  windowMs: number;
  /** The first restart's delay; each further death within the window doubles it. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { attempts: 5, windowMs: 60_000, baseDelayMs: 500, maxDelayMs: 30_000 };

export type RestartDecision =
  /** `attempt` counts the deaths within the window, this one included (1 = the first). */
  | { restart: true; attempt: number; delayMs: number }
  | { restart: false; deaths: number };

/** Pure: given when the service died (this death included, any order), whether and when to restart it. */
export function decideRestart(deathsAtMs: readonly number[], nowMs: number, p: RestartPolicy): RestartDecision {
  const recent = deathsAtMs.filter((t) => nowMs - t < p.windowMs).length;
  if (recent === 0) return { restart: true, attempt: 1, delayMs: p.baseDelayMs };
  if (recent > p.attempts) return { restart: false, deaths: recent };
  return { restart: true, attempt: recent, delayMs: Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (recent - 1)) };
}

/** How a process ended, in the operator's words. */
export function describeExit(code: number | null, signal: string | null): string {
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code ?? "unknown"}`;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/** The terminal lines for each decision. */
export function restartLine(name: string, how: string, d: RestartDecision, p: RestartPolicy, logFile: string): string {
  if (d.restart) return `warning: ${name} ${how}; restarting it in ${seconds(d.delayMs)} (restart ${d.attempt} of ${p.attempts} within ${seconds(p.windowMs)}); log ${logFile}`;
  if (p.attempts === 0) return `error: ${name} ${how}; it stays down (--restart-attempts 0); log ${logFile}`;
  return `error: ${name} ${how}: it died ${d.deaths} times within ${seconds(p.windowMs)}; giving up on it after ${p.attempts} restarts, it stays down until the stack is restarted; log ${logFile}`;
}

/** NATS and PostgreSQL are not restarted: a new one would have another port, which every service was given at start. */
export function engineDownLine(name: string, how: string, logFile: string): string {
  return `error: ${name} ${how}; steward up does not restart its engines and the services cannot work without it: stop the stack (Ctrl-C) and start it again; log ${logFile}`;
}
