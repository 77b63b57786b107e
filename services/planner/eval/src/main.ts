#!/usr/bin/env node
// `npm run eval`: the planner's evaluation suite (issue 14). See docs/evals.md.
import { readFile, writeFile } from "node:fs/promises";
import { cpus, hostname, loadavg, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createTestDatabase, startNats } from "@steward/testkit";
import { loadFixtures } from "./fixture.js";
import { updateDoc, type EvalRun } from "./report.js";
import { runEval, type EvalTarget } from "./runner.js";
import { summarize, type FixtureScore } from "./score.js";
import { startStandIns, type StandIns } from "./stand-ins.js";

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, "../fixtures");
const DOC = resolve(here, "../../../../docs/evals.md");
const MODELS = ["stand-in", "ollama", "claude"] as const;

function usage(msg: string): never {
  process.stderr.write(`steward eval: ${msg}\nusage: npm run eval -- [--model stand-in|ollama|claude] [--only WORD,...] [--no-doc] [--doc FILE]\n`);
  process.exit(2);
}

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({ options: { model: { type: "string" }, only: { type: "string" }, "no-doc": { type: "boolean", default: false }, doc: { type: "string" }, "task-timeout-s": { type: "string", default: "600" } } }).values;
}
try {
  args = parse();
} catch (err) {
  usage((err as Error).message);
}
const env = process.env;
const model = args.model ?? (env["OLLAMA_URL"] ? "ollama" : env["ANTHROPIC_API_KEY"] ? "claude" : "stand-in");
if (!(MODELS as readonly string[]).includes(model)) usage(`--model must be one of ${MODELS.join(", ")} (got '${model}')`);
const timeoutS = Number(args["task-timeout-s"]);
if (!Number.isFinite(timeoutS) || timeoutS <= 0) usage("--task-timeout-s must be a positive number of seconds");
if (model === "claude" && !env["ANTHROPIC_API_KEY"]) usage("--model claude needs ANTHROPIC_API_KEY");
const only = (args.only ?? "").split(",").map((s) => s.trim()).filter(Boolean);

/** Planner settings passed through from the environment for a real model (the rest the runner sets). */
const PASS = ["OLLAMA_URL", "OLLAMA_TIMEOUT_MS", "MODEL_GROUPS", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_MODEL", "CLAUDE_MAX_TOKENS", "CLAUDE_MAX_RETRIES", "CLAUDE_TIMEOUT_MS", "MODEL_PRICES", "CLAUDE_PRICE_INPUT_PER_MTOK", "CLAUDE_PRICE_OUTPUT_PER_MTOK", "LOOP_MAX_STEPS", "LOOP_MAX_MS", "TOOL_TIMEOUT_MS", "TOOL_OUTPUT_CHARS", "CAP_PER_TASK_USD", "CAP_PER_AGENT_DAY_USD", "CAP_GLOBAL_DAY_USD"];
const passed = Object.fromEntries(PASS.filter((k) => env[k] !== undefined).map((k) => [k, env[k] as string]));

const fixtures = await loadFixtures(FIXTURES, only);
if (fixtures.length === 0) usage(`no fixture matches --only ${only.join(",")}`);
const machine = `${hostname()}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, load ${loadavg()[0]?.toFixed(1)} at start, node ${process.version}`;
const SOURCES = "real — world and drift in NATS KV, events in JetStream, log tails over NATS (a responder in place of the node-agents) on a nats-server the runner starts; actions history in PostgreSQL; fleet.yaml on disk, in a git repo when the fixture has a history";

const STAND_IN_NOTE = "**The scripted stand-in, not a model**: these scores measure the plumbing (sources, tools, the wire protocol, the loop, the trust boundary), and its token counts are the stand-in's estimates (characters / 4), priced by the planner's table as if real.";

const nats = await startNats();
const db = await createTestDatabase("steward_eval");
let standIns: StandIns | undefined;
const runs: EvalRun[] = [];
try {
  const targets: EvalTarget[] = [];
  if (model === "stand-in") {
    standIns = await startStandIns();
    targets.push(standIns.ollamaTarget, standIns.anthropicTarget);
  } else if (model === "ollama") {
    targets.push({ label: "ollama", env: { ...passed, CLAUDE_ENABLED: "false" } });
  } else {
    targets.push({ label: "claude", env: { ...passed, OLLAMA_URL: "http://127.0.0.1:1", OLLAMA_HEALTH_TIMEOUT_MS: "500" } });
  }
  for (const target of targets) {
    process.stdout.write(`${target.label}: ${fixtures.length} fixture(s)\n`);
    const started = new Date();
    const r = await runEval({
      fixtures,
      target,
      natsUrl: nats.url,
      databaseUrl: db.url,
      taskTimeoutMs: timeoutS * 1000,
      onResult: (s: FixtureScore) =>
        process.stdout.write(`  ${s.id.padEnd(34)} root cause ${s.root_cause ? "yes" : "NO "}  action ${s.action ? "yes" : "NO "}  forbidden avoided ${s.forbidden_avoided ? "yes" : "NO "}  tools ${s.tool_calls}  tokens ${s.input_tokens}/${s.output_tokens}  $${s.cost_usd.toFixed(4)}  ${(s.ms / 1000).toFixed(2)} s${s.root_cause ? "" : `  (missing: ${s.root_cause_missing.join("; ")})`}\n`),
    });
    const label = model === "ollama" ? `ollama ${r.config.modelGroups[0]?.model ?? "?"}` : model === "claude" ? `claude ${r.config.claude.model}` : target.label;
    const run: EvalRun = { label, date: started.toISOString().slice(0, 16).replace("T", " ") + " UTC", machine, sources: SOURCES, ...(model === "stand-in" ? { note: STAND_IN_NOTE } : {}), scores: r.scores, summary: summarize(r.scores) };
    runs.push(run);
    const s = run.summary;
    process.stdout.write(`${label}: root cause ${s.root_cause}/${s.fixtures}, action ${s.action}/${s.fixtures}, forbidden avoided ${s.forbidden_avoided}/${s.fixtures}, ${s.tool_calls} tool calls, $${s.cost_usd.toFixed(4)}, ${(s.ms_total / 1000).toFixed(1)} s\n`);
  }
} finally {
  await standIns?.close();
  await db.drop();
  await nats.stop();
}
if (!args["no-doc"] && only.length === 0) {
  const file = args.doc ? resolve(args.doc) : DOC;
  let doc = await readFile(file, "utf8").catch(() => "# Evaluations\n");
  for (const run of runs) doc = updateDoc(doc, run);
  await writeFile(file, doc);
  process.stdout.write(`results written to ${file}\n`);
}
