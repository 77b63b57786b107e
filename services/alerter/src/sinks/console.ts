import { sayToStack } from "@steward/platform/stack-member";
import type { NotificationPayload, Sink } from "../notification.js";

/** Every console line starts with this, so a terminal that also gets the JSON log (`steward up`) can pick them out. */
export const CONSOLE_ALERT_PREFIX = "steward alert:";

const MARK = { firing: "FIRING", renotify: "STILL FIRING", resolved: "RESOLVED" } as const;

/** Pure: one readable line for a notification (the message's lines joined; a resolved one says what became of it). */
export function consoleLine(p: NotificationPayload): string {
  const what = (p.kind === "resolved" && p.note ? p.note : p.message).split("\n").filter(Boolean).join(" | ");
  const approve = p.action && p.rule === "action_pending" && p.kind !== "resolved" ? ` | approve: steward approve ${p.action.id}` : "";
  return `${CONSOLE_ALERT_PREFIX} ${MARK[p.kind]} [${p.severity}] ${p.title} — ${what}${approve}`;
}

/**
 * The console sink: a line per notification on stdout and, under `steward up`, on up's own terminal (the service's
 * stdout goes to its log file there).
 */
export function createConsoleSink(
  write: (line: string) => void = (l) => {
    process.stdout.write(`${l}\n`);
    sayToStack(l);
  },
): Sink {
  return {
    name: "console",
    send(p) {
      write(consoleLine(p));
      return Promise.resolve({ ok: true });
    },
  };
}
