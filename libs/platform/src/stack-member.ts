/**
 * Membership of a local stack (`steward up`): a service started by `up` gets `STEWARD_STACK_ID` and an IPC channel.
 * It then stamps every HTTP answer with the stack id (so `up` and the CLI can prove they talk to their own stack, not
 * to whatever answers on a port), reports each port it bound (it binds port 0: no free-port-then-bind race), and stops
 * itself when `up` goes away (the IPC channel closes), so a crashed `up` leaves no service behind.
 * Outside a stack (Compose, systemd, tests) all of this is inert.
 */

/** The header carrying the stack id on every HTTP answer of a stack member. */
export const STACK_ID_HEADER = "x-steward-stack";
export const STACK_ID_ENV = "STEWARD_STACK_ID";

/** What a member sends `up` over the IPC channel. */
export interface StackReport {
  steward: "listening";
  port: number;
  /** `metrics`: the listener that serves only /metrics and /healthz (the executor and the planner have an API too). */
  role?: "metrics";
}

export function isStackReport(m: unknown): m is StackReport {
  const r = m as Partial<StackReport> | null;
  return typeof r === "object" && r !== null && r.steward === "listening" && typeof r.port === "number" && (r.role === undefined || r.role === "metrics");
}

/** A line a member asks `up` to print on its terminal (the alerter's console sink). */
export interface StackSays {
  steward: "say";
  line: string;
}

export function isStackSays(m: unknown): m is StackSays {
  const r = m as Partial<StackSays> | null;
  return typeof r === "object" && r !== null && r.steward === "say" && typeof r.line === "string";
}

/** The id of the stack this process belongs to, or undefined outside a stack. */
export function stackId(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const id = env[STACK_ID_ENV];
  return id ? id : undefined;
}

/** Only a process `up` started has both: a test runner's forked worker has an IPC channel too, but no stack id. */
const member = (): boolean => stackId() !== undefined && typeof process.send === "function";

/** Tells `up` which port a listener bound. No-op outside a stack. */
export function reportListening(port: number, role?: "metrics"): void {
  if (!member()) return;
  const report: StackReport = { steward: "listening", port, ...(role ? { role } : {}) };
  process.send?.(report);
}

/** Asks `up` to print a line on its terminal. No-op outside a stack. */
export function sayToStack(line: string): void {
  if (!member()) return;
  const says: StackSays = { steward: "say", line };
  process.send?.(says);
}

/**
 * Called once by the service main: when `up` goes away (its IPC channel closes), stop as on SIGTERM, draining in
 * order. The channel is unref'd so it never keeps a stopped service alive.
 */
export function joinStack(stop: (reason: string) => void): void {
  if (!member()) return;
  process.once("disconnect", () => stop("stack gone"));
  process.channel?.unref();
}
