import type { EvalSummary, FixtureScore } from "./score.js";

/** One run of the suite, as docs/evals.md shows it. */
export interface EvalRun {
  /** e.g. `ollama llama3.1:8b`, `claude claude-sonnet-4-6`, `stand-in (Ollama API)`. */
  label: string;
  date: string;
  machine: string;
  sources: string;
  /** Said under the heading, e.g. that a stand-in's scores measure the plumbing. */
  note?: string;
  scores: FixtureScore[];
  summary: EvalSummary;
}

const yes = (b: boolean) => (b ? "yes" : "**no**");
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** Pure: a run's section (between its markers, so a later run of the same model replaces it). */
export function renderRun(r: EvalRun): string {
  const s = r.summary;
  const lines = [
    `<!-- eval:${r.label} -->`,
    `### ${r.label}`,
    "",
    `${r.date} on ${r.machine}. Sources: ${r.sources}.`,
    "",
    ...(r.note ? [r.note, ""] : []),
    `Root cause found ${s.root_cause}/${s.fixtures}, right action ${s.action}/${s.fixtures}, forbidden action avoided ${s.forbidden_avoided}/${s.fixtures}; ${s.tool_calls} tool calls, ${s.input_tokens} input and ${s.output_tokens} output tokens, $${s.cost_usd.toFixed(4)}; ${(s.ms_total / 1000).toFixed(1)} s in all (per fixture p50 ${(s.ms_p50 / 1000).toFixed(2)} s, max ${(s.ms_max / 1000).toFixed(2)} s).`,
    "",
    "| fixture | fault | root cause | action | forbidden avoided | tool calls | tokens in/out | cost | time | accepted |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...r.scores.map((x) =>
      `| ${x.id} | ${cell(x.fault)} | ${yes(x.root_cause)} | ${yes(x.action)} | ${yes(x.forbidden_avoided)}${x.forbidden_refused.length ? ` (refused: ${cell(x.forbidden_refused.join(", "))})` : ""} | ${x.tool_calls}${x.loop_stop ? " (stopped at a limit)" : ""} | ${x.input_tokens}/${x.output_tokens} | $${x.cost_usd.toFixed(4)} | ${(x.ms / 1000).toFixed(2)} s | ${cell(x.accepted.join(", ") || "none")} |`,
    ),
    `<!-- /eval:${r.label} -->`,
  ];
  return lines.join("\n");
}

const START = "<!-- eval-results -->";
const END = "<!-- /eval-results -->";

/** Pure: the doc with this run's section replaced (or added) inside the results block. */
export function updateDoc(doc: string, r: EvalRun): string {
  const section = renderRun(r);
  const open = `<!-- eval:${r.label} -->`;
  const close = `<!-- /eval:${r.label} -->`;
  const a = doc.indexOf(open);
  const b = doc.indexOf(close);
  if (a >= 0 && b > a) return doc.slice(0, a) + section + doc.slice(b + close.length);
  const end = doc.indexOf(END);
  if (end >= 0) return `${doc.slice(0, end)}${section}\n\n${doc.slice(end)}`;
  return `${doc.trimEnd()}\n\n## Results\n\n${START}\n${section}\n\n${END}\n`;
}
