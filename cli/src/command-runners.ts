import { COMMANDS, findCommand, type CommandName, type CommandRun } from "./command-table.js";
import { renderCommandHelp, renderUsage } from "./help.js";

/**
 * The code that runs each command, loaded only when that command runs: `steward status` never loads the fleet
 * library, `validate` never the API client, `--help` none of them. Only the dispatcher (cli.ts) imports this module,
 * and the commands import the table, not this, so there is no import circle. A command missing here fails to compile.
 */
const RUNNERS: Record<CommandName, () => Promise<CommandRun>> = {
  up: async () => (await import("./up/up-command.js")).upCommand,
  status: async () => (await import("./commands/world.js")).statusCommand,
  drift: async () => (await import("./commands/world.js")).driftCommand,
  actions: async () => (await import("./commands/actions.js")).actionsCommand,
  approve: async () => (await import("./commands/actions.js")).approveCommand,
  reject: async () => (await import("./commands/actions.js")).rejectCommand,
  drill: async () => (await import("./commands/drill.js")).drillCommand,
  hold: async () => (await import("./commands/holds.js")).holdCommand,
  validate: async () => (await import("./commands/validate.js")).validateCommand,
  plan: async () => (await import("./commands/plan.js")).planCommand,
  task: async () => (await import("./commands/task.js")).taskCommand,
  incident: async () => (await import("./commands/incident.js")).incidentCommand,
  chat: async () => (await import("./commands/chat.js")).chatCommand,
  cost: async () => (await import("./commands/cost.js")).costCommand,
  keys: async () => (await import("./commands/keys.js")).keysCommand,
  token: async () => (await import("./commands/token.js")).tokenCommand,
  completion: async () => (await import("./completion.js")).completionCommand,
  help: async () => helpCommand,
};

export function loadCommand(name: string): Promise<CommandRun> {
  const load = Object.hasOwn(RUNNERS, name) ? RUNNERS[name as CommandName] : undefined;
  if (!load) throw new Error(`no runner for command '${name}'`);
  return load();
}

/** `steward help [COMMAND]`. */
const helpCommand: CommandRun = async (args, io) => {
  const [name, sub] = args;
  if (name === undefined) {
    io.out(renderUsage());
    return 0;
  }
  const spec = findCommand(name);
  if (!spec) {
    io.err(`unknown command '${name}'; the commands are: ${COMMANDS.map((c) => c.name).join(", ")}`);
    return 2;
  }
  if (spec.ownHelp) return (await loadCommand(spec.name))(["--help"], io);
  io.out(renderCommandHelp(spec, sub !== undefined && spec.subcommands?.[sub] ? sub : undefined));
  return 0;
};
