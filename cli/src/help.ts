import { readFileSync } from "node:fs";
import { COMMANDS, ENVIRONMENT, type CommandSpec, type FlagSet, type UsageLine } from "./command-table.js";

const COLUMN = 45;

function usageLines(lines: readonly UsageLine[]): string[] {
  // A synopsis too long for the column keeps its line; the summary goes under it, aligned.
  return lines.flatMap(([synopsis, summary]) =>
    synopsis.length < COLUMN ? [`  ${synopsis.padEnd(COLUMN)}${summary}`] : [`  ${synopsis}`, `  ${" ".repeat(COLUMN)}${summary}`],
  );
}

/** `steward help`: every command, from the table. */
export function renderUsage(): string {
  return [
    "steward — keeps your fleet in the state declared in git, and tells you the truth about it",
    "",
    "usage:",
    ...COMMANDS.flatMap((c) => usageLines(c.usage)),
    "",
    "steward COMMAND --help (or steward help COMMAND) shows a command's flags; steward --version prints the version.",
    "",
    ENVIRONMENT,
  ].join("\n");
}

/** One line per visible flag, aligned: `--state S    only actions in this state`. */
export function flagLines(flags: FlagSet): string[] {
  const rows = Object.entries(flags)
    .filter(([, f]) => !f.hidden)
    .map(([name, f]) => {
      const left = `--${name}${f.type === "string" ? ` ${f.choices ? f.choices.join("|") : (f.value ?? "VALUE")}` : ""}`;
      const dflt = f.default !== undefined && f.default !== false ? ` (default ${String(f.default)})` : "";
      return [left, `${f.summary}${dflt}`] as const;
    });
  const width = Math.max(0, ...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`);
}

/** `steward COMMAND --help`: usage, summary and flags of one command (or of one of its subcommands). */
export function renderCommandHelp(spec: CommandSpec, sub?: string): string {
  const s = sub ? spec.subcommands?.[sub] : undefined;
  const usage = (s ?? spec).usage;
  const out = ["usage:", ...usage.map(([synopsis]) => `  ${synopsis}`), "", s?.summary ?? spec.summary];
  const own = flagLines(spec.flags);
  const subFlags = s ? flagLines(s.flags) : [];
  if (own.length + subFlags.length > 0) out.push("", "flags:", ...subFlags, ...own);
  if (!s && spec.subcommands) {
    out.push("", "subcommands:", ...Object.entries(spec.subcommands).map(([name, x]) => `  ${name.padEnd(8)}${x.summary}`));
    out.push("", `steward ${spec.name} SUBCOMMAND --help shows a subcommand's flags.`);
  }
  return out.join("\n");
}

/** The usage lines of a command, for the message under a usage error. */
export function renderUsageOf(spec: CommandSpec, sub?: string): string {
  const usage = (sub ? spec.subcommands?.[sub]?.usage : undefined) ?? spec.usage;
  return ["usage:", ...usage.map(([synopsis]) => `  ${synopsis}`)].join("\n");
}

export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** docs/cli.md: every command with its flags, from the table (a test keeps the file equal to this). */
export function renderCliDoc(): string {
  const out = [
    "# The `steward` command",
    "",
    "Generated from `cli/src/command-table.ts` by `npm run docs -w @steward/cli`; `cli/test/command-table.test.ts` fails when",
    "this file and the table disagree. `steward help` and `steward COMMAND --help` print the same.",
    "",
    "Shell completion: `steward completion bash|zsh|fish` prints a script generated from the same table, e.g.",
    "`steward completion bash > ~/.local/share/bash-completion/completions/steward`,",
    "`steward completion zsh > \"${fpath[1]}/_steward\"`, or `steward completion fish > ~/.config/fish/completions/steward.fish`.",
    "",
    ENVIRONMENT.replace(/^environment: /, "Environment: ") + ".",
    "",
    "Exit codes: 0 done, 1 the command failed (API unreachable, spec invalid, task failed), 2 a usage mistake",
    "(unknown command or flag, missing argument: nothing was sent), 3 `task add` still running at `--timeout`;",
    "`drift --exit-code` exits 1 when there is drift. `drift` colours its table on a terminal unless `NO_COLOR` is set (`FORCE_COLOR`",
    "forces it on, `FORCE_COLOR=0` off).",
    "",
  ];
  for (const c of COMMANDS) {
    out.push(`## steward ${c.name}`, "", c.summary, "", "```", ...c.usage.map(([s]) => s), "```", "");
    const subs = Object.entries(c.subcommands ?? {});
    const rows = [
      ...subs.flatMap(([name, s]) => Object.entries(s.flags).map(([f, spec]) => [f, spec, name] as const)),
      ...Object.entries(c.flags).map(([f, spec]) => [f, spec, undefined] as const),
    ].filter(([, f]) => !f.hidden);
    if (rows.length > 0) {
      out.push("| flag | subcommand | what it does |", "| --- | --- | --- |");
      for (const [name, f, sub] of rows) {
        const value = f.type === "string" ? ` ${f.choices ? f.choices.join("\\|") : (f.value ?? "VALUE")}` : "";
        out.push(`| \`--${name}${value}\` | ${sub ? `${sub} ` : ""}| ${f.summary}${f.default !== undefined && f.default !== false ? ` (default ${String(f.default)})` : ""} |`);
      }
      out.push("");
    }
  }
  return out.join("\n");
}
