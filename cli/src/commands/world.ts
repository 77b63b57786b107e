import { ApiUnreachable } from "@steward/platform/http-client";
import { connectApi, type ExecutorClient } from "../connect-api.js";
import { DRIFT, STATUS, type Io } from "../command-table.js";
import { colorOn } from "../color.js";
import { parseFlags } from "../parse.js";
import { driftExitCode, renderDrift, renderStatus } from "./read.js";

/**
 * Reads through the executor's API; when it does not answer, straight from the world store (loaded only then), with
 * a note on stderr that actions cannot be changed right now.
 */
async function readOrDirect<T>(io: Io, viaApi: (api: ExecutorClient) => Promise<T>, direct: "world" | "drift"): Promise<T> {
  try {
    return await viaApi(await connectApi(io.env));
  } catch (err) {
    if (!(err instanceof ApiUnreachable)) throw err;
    const store = await import("../world-direct.js");
    const r = direct === "world" ? await store.readWorldDirect(io.env, err) : await store.readDriftDirect(io.env, err);
    io.err(r.note);
    return r.value as T;
  }
}

/** `steward status`: the world snapshot the observer keeps, through the executor's API (or the world store). */
export async function statusCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(STATUS.flags, args);
  const snap = await readOrDirect(io, (api) => api.world(), "world");
  io.out(values.json ? JSON.stringify(snap, null, 2) : renderStatus(snap));
  return 0;
}

/** `steward drift`: the supervisor's last drift report (through the API, or the world store). */
export async function driftCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(DRIFT.flags, args);
  const report = await readOrDirect(io, (api) => api.drift(), "drift");
  io.out(values.json ? JSON.stringify(report, null, 2) : renderDrift(report, Date.now(), colorOn(io)));
  return driftExitCode(report, values["exit-code"]);
}
