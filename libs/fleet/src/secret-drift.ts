import { secretStoreId, type FleetSpec } from "./fleet-spec.js";
import type { Drift } from "@steward/contracts/drift";
import type { WorldState } from "@steward/contracts/world-state";

/**
 * Secret drift: for each declared secret, the fingerprints its agents reported for every store, compared.
 * Pure. Works on store ids and fingerprints only; the message names stores, never fingerprints or values.
 *
 * A secret spans nodes, so its drift is fleet-wide: node `*`, service = the secret's name,
 * key `secret_drift:*\/<secret>` (stable across cycles). Severity alert; it proposes nothing, ever:
 * which store holds the right value is the operator's call.
 */

/** `node` of a secret drift: the secret belongs to the fleet, not to one node. */
export const FLEET_WIDE = "*";

/** Why a store could not be judged: unknown is reported, never concluded missing. */
export type UnknownReason = "snapshot_too_old" | "node_never_reported" | "node_stale" | "not_reported";

export type StoreVerdict =
  | { store: string; kind: "ok"; fingerprint: string }
  | { store: string; kind: "empty" | "placeholder" | "missing" | "unreadable"; detail?: string | undefined }
  | { store: string; kind: "unknown"; reason: UnknownReason; detail: string };

export interface SecretDriftOptions {
  /** The whole snapshot is too old to trust (the observer stopped): every store is unknown. */
  snapshotTooOld: boolean;
}

/** Every declared store of one secret, judged against the world. Store names are `<node>/<store id>`. */
export function judgeStores(spec: FleetSpec, secret: string, world: WorldState, opts: SecretDriftOptions): StoreVerdict[] {
  const declared = spec.secrets[secret]?.stores ?? [];
  const out: StoreVerdict[] = [];
  const seen = new Set<string>();
  for (const s of declared) {
    const id = secretStoreId(s);
    const store = `${s.node}/${id}`;
    if (seen.has(store)) continue;
    seen.add(store);
    const node = world.nodes[s.node];
    if (opts.snapshotTooOld) {
      out.push({ store, kind: "unknown", reason: "snapshot_too_old", detail: "the snapshot is too old to trust" });
      continue;
    }
    if (!node) {
      out.push({ store, kind: "unknown", reason: "node_never_reported", detail: `node ${s.node} never reported` });
      continue;
    }
    if (node.status === "stale") {
      out.push({ store, kind: "unknown", reason: "node_stale", detail: `node ${s.node} is stale` });
      continue;
    }
    const r = node.secrets?.[secret]?.[id];
    if (!r) {
      out.push({ store, kind: "unknown", reason: "not_reported", detail: `not reported yet by ${s.node}` });
      continue;
    }
    if (r.status === "ok") {
      // An ok reading always carries a fingerprint; without one it cannot be compared, which is not the same as a value.
      if (r.fingerprint) out.push({ store, kind: "ok", fingerprint: r.fingerprint });
      else out.push({ store, kind: "unreadable", detail: "reported ok without a fingerprint" });
      continue;
    }
    out.push({ store, kind: r.status, detail: r.detail });
  }
  return out;
}

/** Stores grouped by fingerprint: largest group first, then by first store name. Fingerprints are dropped. */
export function agreementGroups(verdicts: readonly StoreVerdict[]): string[][] {
  const byFp = new Map<string, string[]>();
  for (const v of verdicts) {
    if (v.kind !== "ok") continue;
    const g = byFp.get(v.fingerprint) ?? [];
    g.push(v.store);
    byFp.set(v.fingerprint, g);
  }
  return [...byFp.values()].map((g) => [...g].sort()).sort((a, b) => b.length - a.length || ((a[0] ?? "") < (b[0] ?? "") ? -1 : 1));
}

const withDetail = (store: string, detail: string | undefined) => (detail ? `${store} (${detail})` : store);

/** The operator's sentence for one secret, or undefined when every store agrees and holds a real value. */
export function describeSecret(secret: string, verdicts: readonly StoreVerdict[]): string | undefined {
  const parts: string[] = [];
  const groups = agreementGroups(verdicts);
  if (groups.length > 1) {
    parts.push(`stores disagree (${groups.length} different values): ${groups.map((g) => `{${g.join(", ")}}`).join(" vs ")}`);
  }
  const list = (kind: StoreVerdict["kind"]) => verdicts.filter((v) => v.kind === kind);
  const empty = list("empty");
  if (empty.length) parts.push(`empty in ${empty.map((v) => v.store).join(", ")}`);
  const placeholder = list("placeholder");
  if (placeholder.length) parts.push(`placeholder value in ${placeholder.map((v) => v.store).join(", ")}`);
  const missing = list("missing");
  if (missing.length) parts.push(`missing from ${missing.map((v) => withDetail(v.store, v.kind === "missing" ? v.detail : undefined)).join(", ")}`);
  const unreadable = list("unreadable");
  if (unreadable.length) parts.push(`unreadable in ${unreadable.map((v) => withDetail(v.store, v.kind === "unreadable" ? v.detail : undefined)).join(", ")}`);
  const unknown = list("unknown");
  if (unknown.length) parts.push(`unknown in ${unknown.map((v) => withDetail(v.store, v.kind === "unknown" ? v.detail : undefined)).join(", ")}`);
  if (parts.length === 0) return undefined;
  // When some stores disagree, say which ones still agree with each other is already in the groups; otherwise name the good ones.
  if (groups.length === 1 && (groups[0]?.length ?? 0) > 0) parts.push(`agreeing: ${(groups[0] ?? []).join(", ")}`);
  return `secret ${secret}: ${parts.join("; ")}`;
}

/** One `secret_drift` per declared secret whose stores disagree, or any of which is empty, a placeholder, missing, unreadable or unknown. */
export function computeSecretDrift(spec: FleetSpec, world: WorldState, opts: SecretDriftOptions): Drift[] {
  const out: Drift[] = [];
  for (const secret of Object.keys(spec.secrets).sort()) {
    const message = describeSecret(secret, judgeStores(spec, secret, world, opts));
    if (!message) continue;
    out.push({
      key: `secret_drift:${FLEET_WIDE}/${secret}`,
      kind: "secret_drift",
      node: FLEET_WIDE,
      service: secret,
      severity: "alert",
      message,
      since: null,
      proposes: null,
    });
  }
  return out;
}
