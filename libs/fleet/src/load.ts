import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { FleetSpecError, loadFleetSpec, parseFleetSpec, type FleetSpec } from "./fleet-spec.js";

/** Why the spec could not be used. A bounded set: it is a metric label. */
export type SpecSkipReason = "spec_unreadable" | "spec_invalid";

export type SpecLoad = { ok: true; value: FleetSpec } | { ok: false; reason: SpecSkipReason; detail: string };

/** Loads the fleet spec; never throws. A spec that cannot be read or validated skips the cycle. */
export async function loadSpecSafe(path: string): Promise<SpecLoad> {
  try {
    return { ok: true, value: await loadFleetSpec(path) };
  } catch (err) {
    if (err instanceof FleetSpecError) {
      const unreadable = err.problems.some((p) => p.message.startsWith("cannot read"));
      return { ok: false, reason: unreadable ? "spec_unreadable" : "spec_invalid", detail: err.message };
    }
    return { ok: false, reason: "spec_unreadable", detail: String(err) };
  }
}

export interface SpecCache {
  /** Parses + validates the spec only when its content hash changed, re-reading it only when the file changed; never throws. */
  load(path: string): Promise<SpecLoad & { parsed: boolean }>;
}

/**
 * The spec by content hash: re-parsed and re-validated only when the bytes changed, and re-read (and hashed) only
 * when the file's identity, size or times changed: parsing a 1,000-node spec every cycle cost seconds of CPU, and
 * reading and hashing its 1.2 MB was most of a change-triggered cycle. A rename over it (the usual atomic edit) is a
 * new inode; an edit in place changes mtime and ctime. An invalid spec is cached too: the same bytes give the same
 * problems.
 */
export function createSpecCache(): SpecCache {
  let last: { path: string; hash: string; stamp: string; result: SpecLoad } | undefined;
  return {
    async load(path) {
      let text: string;
      let stamp: string;
      try {
        const st = await stat(path);
        stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
        if (last && last.path === path && last.stamp === stamp) return { ...last.result, parsed: false };
        text = await readFile(path, "utf8");
      } catch (err) {
        const detail = new FleetSpecError(path, [{ file: path, path: "", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }]).message;
        return { ok: false, reason: "spec_unreadable", detail, parsed: false };
      }
      const hash = createHash("sha256").update(text).digest("hex");
      if (last && last.path === path && last.hash === hash) {
        last.stamp = stamp;
        return { ...last.result, parsed: false };
      }
      const res = parseFleetSpec(text, path);
      const result: SpecLoad = res.ok ? { ok: true, value: res.spec } : { ok: false, reason: "spec_invalid", detail: new FleetSpecError(path, res.problems).message };
      last = { path, hash, stamp, result };
      return { ...result, parsed: true };
    },
  };
}
