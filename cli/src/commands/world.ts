import { connectApi } from "../connect-api.js";
import { DRIFT, STATUS, type Io } from "../command-table.js";
import { colorOn } from "../color.js";
import { parseFlags } from "../parse.js";
import { driftExitCode, renderDrift, renderStatus } from "./read.js";

/** `steward status`: the world snapshot the observer keeps, through the executor's API. */
export async function statusCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(STATUS.flags, args);
  const snap = await (await connectApi(io.env)).world();
  io.out(values.json ? JSON.stringify(snap, null, 2) : renderStatus(snap));
  return 0;
}

/** `steward drift`: the supervisor's last drift report. */
export async function driftCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(DRIFT.flags, args);
  const report = await (await connectApi(io.env)).drift();
  io.out(values.json ? JSON.stringify(report, null, 2) : renderDrift(report, Date.now(), colorOn(io)));
  return driftExitCode(report, values["exit-code"]);
}
