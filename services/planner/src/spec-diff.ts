import { looksSecretName } from "@steward/platform/redact";

/**
 * What changed in the declared spec between two commits, as the investigation's `fleet_spec_diff` tool shows it.
 * A structural diff of the parsed specs, not a text diff: a text diff of fleet.yaml would hand env values to a model.
 * Values under `env` and `secrets`, and of any key whose name looks secret, are shown as hidden (a reference to a
 * declared secret, `{ secret: NAME }`, is shown: it is a name, not a value).
 */

export interface SpecChange {
  path: string;
  change: "added" | "removed" | "changed";
  before?: unknown;
  after?: unknown;
}

export const HIDDEN = "(value hidden)";

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isSecretRef = (v: unknown): boolean => isObject(v) && Object.keys(v).length === 1 && typeof v["secret"] === "string";

/** Whether a value at this path is hidden: inside an `env` or `secrets` map, or under a secret-looking key. */
function hiddenAt(path: readonly string[]): boolean {
  const key = path[path.length - 1] ?? "";
  const parent = path[path.length - 2];
  return parent === "env" || (path[0] === "secrets" && path.length >= 2) || looksSecretName(key);
}

/** A value as the model may see it: hidden where `hiddenAt` says, recursively. */
export function maskValue(value: unknown, path: readonly string[]): unknown {
  if (isSecretRef(value)) return value;
  if (path.length > 0 && hiddenAt(path)) return isObject(value) ? mapValues(value, path) : HIDDEN;
  if (isObject(value)) return mapValues(value, path);
  if (Array.isArray(value)) return value.map((v, i) => maskValue(v, [...path, String(i)]));
  return value;
}

function mapValues(o: Record<string, unknown>, path: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, maskValue(v, [...path, k])]));
}

/** Pure: the changes from `before` to `after` (parsed specs, or `{}` where the file did not exist), sorted by path. */
export function diffSpecs(before: unknown, after: unknown, path: readonly string[] = []): SpecChange[] {
  const at = path.join(".") || "(spec)";
  if (isObject(before) && isObject(after) && !isSecretRef(before) && !isSecretRef(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => {
      const p = [...path, k];
      if (!(k in after)) return [{ path: p.join("."), change: "removed" as const, before: maskValue(before[k], p) }];
      if (!(k in before)) return [{ path: p.join("."), change: "added" as const, after: maskValue(after[k], p) }];
      return diffSpecs(before[k], after[k], p);
    });
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  return [{ path: at, change: "changed", before: maskValue(before, path), after: maskValue(after, path) }];
}

/** The changes as lines for the model: `~ path: before -> after`, `+ path: value`, `- path`. */
export function renderSpecChanges(changes: readonly SpecChange[]): string {
  if (changes.length === 0) return "no change to the declared spec";
  const show = (v: unknown) => JSON.stringify(v);
  return changes
    .map((c) => (c.change === "changed" ? `~ ${c.path}: ${show(c.before)} -> ${show(c.after)}` : c.change === "added" ? `+ ${c.path}: ${show(c.after)}` : `- ${c.path} (was ${show(c.before)})`))
    .join("\n");
}
