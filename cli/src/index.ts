export { runCli, USAGE, type Io } from "./cli.js";
export { COMMANDS, type CommandSpec } from "./command-table.js";
export { completionScript, SHELLS, type Shell } from "./completion.js";
export { ApiError, NoStackError } from "./errors.js";
export { connectApi, resolveActionId } from "./connect-api.js";
export { upCommand } from "./up/up-command.js";
export { readStackFile, writeStackFile, stackFilePath, StackFile } from "./stack-file.js";
export { validateFile, renderValidate } from "./commands/validate.js";
export { connectPlanner, resolveTaskId, NoPlannerError, type NewTask } from "./connect-planner.js";
