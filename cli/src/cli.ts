import { loadCommand } from "./command-runners.js";
import type { Io } from "./command-table.js";
import { ApiError, NoStackError, UsageError } from "./errors.js";
import { renderCommandHelp, renderUsage, renderUsageOf, VERSION } from "./help.js";
import { parseCommandLine } from "./parse.js";
import { colorOn } from "./color.js";
import { terminalSafeIo } from "./terminal-text.js";

export type { Io };

/** `steward help`, generated from the command table. */
export const USAGE = renderUsage();

/**
 * Whether the command this argv runs starts a trace (`task`, `chat`), so main.ts installs tracing
 * (OpenTelemetry) only for those and every other command starts without it.
 */
export function needsTracing(argv: readonly string[]): boolean {
  const inv = parseCommandLine(argv);
  return inv.kind === "run" && inv.spec.traced === true;
}

/** Returns the exit code, or null when the command keeps running (up). */
export async function runCli(argv: string[], io: Io): Promise<number | null> {
  const inv = parseCommandLine(argv);
  switch (inv.kind) {
    case "usage":
      io.out(USAGE);
      return inv.code;
    case "version":
      io.out(`steward ${VERSION}`);
      return 0;
    case "unknown-command":
      io.err(`unknown command '${inv.name}'\n\n${USAGE}`);
      return 2;
    case "command-help":
      io.out(renderCommandHelp(inv.spec, inv.sub));
      return 0;
    case "bad-flag":
      io.err(`error: ${inv.message}`);
      return 2;
    case "run":
      break;
  }
  // Only the command that runs is loaded: `status` never loads the fleet library, `validate` never the API client.
  const run = await loadCommand(inv.spec.name);
  // Everything a command prints goes through one gate: model-written text, log lines and remote errors can hold
  // terminal control sequences (terminal-text.ts). JSON passes unchanged (its escapes are the same).
  io = terminalSafeIo(io, { palette: inv.spec.paints === true && colorOn(io) });
  try {
    return await run(inv.args, io);
  } catch (err) {
    if (err instanceof ApiError) {
      io.err(`error: ${err.message}${err.status ? ` (HTTP ${err.status}, ${err.code})` : ""}`);
      return 1;
    }
    if (err instanceof NoStackError) {
      io.err(`error: ${err.message}`);
      return 1;
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\n\n${renderUsageOf(inv.spec)}`);
      return 2;
    }
    throw err;
  }
}
