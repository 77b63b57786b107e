export { runCli, USAGE, type Io } from "./cli.js";
export { COMMANDS, type CommandSpec } from "./command-table.js";
export { completionScript, SHELLS, type Shell } from "./completion.js";
export { ApiClient, ApiError, NoStackError } from "./api-client.js";
export { upCommand } from "./up/up-command.js";
export { readStackFile, writeStackFile, stackFilePath, StackFile } from "./stack-file.js";
export { validateFile, renderValidate } from "./commands/validate.js";
export { PlannerClient, NoPlannerError, type NewTask } from "./planner-client.js";
