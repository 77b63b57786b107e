import { ComposeError, type ComposeHealthcheck, type ComposeServiceDef } from "./compose-model.js";

/** Pure: one service of one compose file, its list/map spellings unified, so equal meaning hashes equal. */

const KNOWN = new Set(["image", "command", "entrypoint", "environment", "labels", "depends_on", "healthcheck", "restart", "ports", "volumes", "working_dir", "user", "container_name"]);

export const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error("expected a string, number or boolean");
}

/** `KEY=value` list or map → map. A bare `KEY` (take it from the shell) has no value on an agent: empty. */
function keyValues(v: unknown, what: string, file: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = scalar(item);
      const eq = s.indexOf("=");
      if (eq === 0) throw new ComposeError(file, `${what}: '${s.slice(0, 40)}' has no name`);
      if (eq < 0) out[s] = "";
      else out[s.slice(0, eq)] = s.slice(eq + 1);
    }
    return out;
  }
  if (isMap(v)) {
    for (const [k, val] of Object.entries(v)) {
      try {
        out[k] = scalar(val);
      } catch {
        throw new ComposeError(file, `${what}.${k}: expected a string, number or boolean`);
      }
    }
    return out;
  }
  throw new ComposeError(file, `${what}: expected a list of KEY=value or a map`);
}

/** Compose's shell-ish split of a string command: whitespace separates, quotes group. */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | undefined;
  let has = false;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = undefined;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
    }
  }
  if (has || cur) out.push(cur);
  return out;
}

function commandList(v: unknown, what: string, file: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return splitCommand(v);
  if (Array.isArray(v)) return v.map((x) => scalar(x));
  throw new ComposeError(file, `${what}: expected a string or a list`);
}

/** Compose durations: `1m30s`, `10s`, `500ms`, `2h`. */
export function composeDurationMs(v: unknown, what: string, file: string): number {
  if (typeof v === "number") return v * 1000;
  const s = String(v);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== s) throw new ComposeError(file, `${what}: '${s}' is not a duration like 10s or 1m30s`);
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] as string] as number), 0));
}

function healthcheck(v: unknown, file: string, svc: string): ComposeHealthcheck | null | undefined {
  if (v === undefined) return undefined;
  if (!isMap(v)) throw new ComposeError(file, `services.${svc}.healthcheck: expected a map`);
  if (v["disable"] === true) return null;
  const where = `services.${svc}.healthcheck`;
  let test: string[];
  if (typeof v["test"] === "string") test = ["CMD-SHELL", v["test"]];
  else if (Array.isArray(v["test"]) && v["test"].length > 0) test = v["test"].map((x) => scalar(x));
  else throw new ComposeError(file, `${where}.test: expected a command (string or list)`);
  if (test[0] === "NONE") return null;
  const out: ComposeHealthcheck = { test };
  if (v["interval"] !== undefined) out.interval_ms = composeDurationMs(v["interval"], `${where}.interval`, file);
  if (v["timeout"] !== undefined) out.timeout_ms = composeDurationMs(v["timeout"], `${where}.timeout`, file);
  if (v["start_period"] !== undefined) out.start_period_ms = composeDurationMs(v["start_period"], `${where}.start_period`, file);
  if (v["retries"] !== undefined) {
    const r = Number(v["retries"]);
    if (!Number.isInteger(r) || r < 0) throw new ComposeError(file, `${where}.retries: expected a whole number`);
    out.retries = r;
  }
  return out;
}

/** Partial definition from one file: only the keys that file sets, so a later file overrides just those. */
export type PartialServiceDef = Partial<ComposeServiceDef>;

/**
 * `lenient`: the real Compose applies the files, so what only the Engine-API applier cannot do (build, long
 * port/volume syntax) is kept as written (hashed, in `other`) instead of refused.
 */
export function normalizeService(name: string, raw: unknown, file: string, lenient: boolean): PartialServiceDef {
  if (!isMap(raw)) throw new ComposeError(file, `services.${name}: expected a map`);
  const out: PartialServiceDef = {};
  const where = (k: string) => `services.${name}.${k}`;
  if (raw["build"] !== undefined && raw["image"] === undefined && !lenient) throw new ComposeError(file, `${where("build")}: building images is not supported on a node; set image`);
  if (raw["image"] !== undefined) {
    if (typeof raw["image"] !== "string" || raw["image"].trim() === "") throw new ComposeError(file, `${where("image")}: expected an image name`);
    out.image = raw["image"].trim();
  }
  const cmd = commandList(raw["command"], where("command"), file);
  if (cmd) out.command = cmd;
  const ep = commandList(raw["entrypoint"], where("entrypoint"), file);
  if (ep) out.entrypoint = ep;
  if (raw["environment"] !== undefined) out.environment = keyValues(raw["environment"], where("environment"), file);
  if (raw["labels"] !== undefined) out.labels = keyValues(raw["labels"], where("labels"), file);
  if (raw["depends_on"] !== undefined) {
    const d = raw["depends_on"];
    if (Array.isArray(d)) out.depends_on = d.map((x) => scalar(x));
    else if (isMap(d)) out.depends_on = Object.keys(d);
    else throw new ComposeError(file, `${where("depends_on")}: expected a list or a map`);
  }
  const hc = healthcheck(raw["healthcheck"], file, name);
  if (hc !== undefined) out.healthcheck = hc;
  if (raw["restart"] !== undefined) {
    const r = String(raw["restart"]).split(":")[0];
    if (r !== "no" && r !== "always" && r !== "unless-stopped" && r !== "on-failure") throw new ComposeError(file, `${where("restart")}: expected no, always, unless-stopped or on-failure`);
    out.restart = r;
  }
  for (const k of ["ports", "volumes"] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" && typeof x !== "number")) {
      if (!lenient) throw new ComposeError(file, `${where(k)}: only the short syntax (a list of strings) is supported`);
      continue; // kept as written in `other` below
    }
    out[k] = v.map((x) => String(x));
  }
  if (raw["working_dir"] !== undefined) out.working_dir = scalar(raw["working_dir"]);
  if (raw["user"] !== undefined) out.user = scalar(raw["user"]);
  const other: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (!KNOWN.has(k) || ((k === "ports" || k === "volumes") && out[k] === undefined)) other[k] = v;
  if (Object.keys(other).length > 0) out.other = other;
  return out;
}
