import { parseArgs } from "node:util";
import { findCommand, findSubcommand, type CommandSpec, type FlagSet } from "./command-table.js";
import { UsageError } from "./errors.js";

/** What the command line asks for, decided before any command's code is loaded. */
export type Invocation =
  | { kind: "usage"; code: 0 | 2 }
  | { kind: "version" }
  | { kind: "unknown-command"; name: string }
  | { kind: "command-help"; spec: CommandSpec; sub?: string }
  | { kind: "bad-flag"; spec: CommandSpec; message: string }
  | { kind: "run"; spec: CommandSpec; args: string[] };

const HELP_FLAGS = new Set(["--help", "-h"]);
const VERSION_FLAGS = new Set(["--version", "-V"]);

/** Pure: reads argv (without node and the script) into what to do. */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === undefined) return { kind: "usage", code: 2 };
  if (HELP_FLAGS.has(first)) return { kind: "usage", code: 0 };
  if (VERSION_FLAGS.has(first)) return { kind: "version" };
  const spec = findCommand(first);
  if (!spec) return { kind: "unknown-command", name: first };
  const words = beforeDashDash(rest);
  if (!spec.ownHelp && words.some((w) => HELP_FLAGS.has(w))) {
    const sub = findSubcommand(spec, words);
    return { kind: "command-help", spec, ...(sub ? { sub: sub[0] } : {}) };
  }
  const bad = unknownFlag(spec, rest);
  if (bad) return { kind: "bad-flag", spec, message: bad };
  return { kind: "run", spec, args: rest };
}

function beforeDashDash(args: readonly string[]): readonly string[] {
  const i = args.indexOf("--");
  return i < 0 ? args : args.slice(0, i);
}

/** The flags `args` may use: the command's own, and its subcommand's when the first word names one. */
export function flagsFor(spec: CommandSpec, args: readonly string[]): FlagSet {
  const sub = findSubcommand(spec, args);
  return sub ? { ...spec.flags, ...sub[1].flags } : spec.flags;
}

/** Pure: a specific message for the first flag the command does not know, or undefined. */
export function unknownFlag(spec: CommandSpec, args: readonly string[]): string | undefined {
  const flags = flagsFor(spec, args);
  const sub = findSubcommand(spec, args);
  const where = `steward ${spec.name}${sub ? ` ${sub[0]}` : ""}`;
  const words = beforeDashDash(args);
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith("-") || w === "-") continue;
    if (HELP_FLAGS.has(w)) continue;
    if (!w.startsWith("--")) return `unknown flag '${w}' for '${where}' (see '${where} --help')`;
    const eq = w.indexOf("=");
    const name = w.slice(2, eq < 0 ? undefined : eq);
    const flag = flags[name];
    if (!flag) {
      const near = Object.keys(flags).find((f) => !flags[f]!.hidden && (f.startsWith(name) || name.startsWith(f) || editDistance(f, name) <= 2));
      return `unknown flag '--${name}' for '${where}'${near ? `; did you mean '--${near}'?` : ""} (see '${where} --help')`;
    }
    // A string flag's value is the next word (`--state pending`), which may itself start with a dash.
    if (flag.type === "string" && eq < 0) i += 1;
  }
  return undefined;
}

type FlagValue<F> = F extends { type: "boolean" }
  ? F extends { default: boolean }
    ? boolean
    : boolean | undefined
  : F extends { default: string }
    ? string
    : string | undefined;

export type FlagValues<F extends FlagSet> = { -readonly [K in keyof F]: FlagValue<F[K]> };

/**
 * Parses `args` with the flags the table declares (node:util parseArgs, strict). A mistake is a
 * UsageError (exit 2); a value outside a flag's `choices` is one too.
 */
export function parseFlags<F extends FlagSet>(flags: F, args: string[], opts: { positionals?: boolean } = {}): { values: FlagValues<F>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(flags).map(([name, f]) => [name, { type: f.type, ...(f.default !== undefined ? { default: f.default } : {}) }]),
  ) as Record<string, { type: "boolean" | "string"; default?: boolean | string }>;
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, allowPositionals: opts.positionals ?? false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  for (const [name, f] of Object.entries(flags)) {
    const v = parsed.values[name];
    if (f.choices && typeof v === "string" && !f.choices.includes(v)) throw new UsageError(`--${name} must be one of ${f.choices.join(", ")}, got '${v}'`);
  }
  return { values: parsed.values as FlagValues<F>, positionals: parsed.positionals };
}

/** Levenshtein distance, for "did you mean" on a mistyped flag. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
