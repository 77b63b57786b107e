import { FleetSpecError, loadFleetSpec, type FleetSpec } from "./fleet-spec.js";

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
