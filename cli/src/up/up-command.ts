import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseFleetSpec } from "@steward/fleet/fleet-spec";
import { UP } from "../command-table.js";
import { flagLines } from "../help.js";
import { parseFlags } from "../parse.js";
import { removeStackFile, stewardHome, writeStackFile, type StackFile } from "../stack-file.js";
import { claimHome } from "./home-claim.js";
import { DEFAULT_RESTART_POLICY, type RestartPolicy } from "./restart-policy.js";
import { createStackHealer } from "./stack-healer.js";
import { checkSettings, renderSettingsHelp, serviceEnv, type UpService } from "./settings.js";
import { createStack, plannerMainPath, ServiceStartError, StackStopped, writeDemoFleet, type RunningStack } from "./stack.js";
import { defaultsFor, operatorStateDir, placeholderWires, wiringFor } from "./stack-plan.js";

export interface UpIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

/** `steward up --help`: the synopsis and flags from the command table, and the settings each service takes from the environment. */
export const upUsage = (): string => `usage: ${UP.usage[0][0]}

Runs a whole local Steward: nats-server and a throwaway PostgreSQL cluster (unless NATS_URL / DATABASE_URL are set),
the observer, planner, executor, supervisor, the alerter (printing alerts here unless a push sink is set) and one node-agent per node of
the fleet (the demo fleet unless --fleet). Every process binds a port of its own choosing and reports it; the stack
file ($STEWARD_HOME/stack.json, default ~/.steward) tells the CLI where they are. One stack per STEWARD_HOME: run a
second one with its own STEWARD_HOME. A service that dies is restarted on its port with backoff and said so; one that
keeps dying is given up on (--restart-attempts, --restart-window). Ctrl-C stops the services newest first, then NATS
and PostgreSQL.

${flagLines(UP.flags).join("\n")}

Settings passed through from this environment to the services that read them (see each service's README):
${renderSettingsHelp()}
Node-agents keep their state (deploy records) in <dir>/node-state/<node>, removed with the stack; with STATE_DIR set,
in $STATE_DIR/<node>, kept.`;

const intFlag = (v: string | undefined, name: string, min: number, max: number): number | undefined | string => {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= min && n <= max ? n : `${name} must be a whole number from ${min} to ${max}`;
};

/** The services this stack runs (for checking their settings before anything starts). */
function servicesToRun(): UpService[] {
  return ["observer", ...(plannerMainPath() ? (["planner"] as const) : []), "executor", "supervisor", "alerter", "node-agent"];
}

/**
 * `steward up`: returns the exit code once the stack has stopped. 2: bad flags or settings (nothing started);
 * 1: the home is taken by a running stack, or start-up failed (everything started is stopped again).
 */
export async function upCommand(argv: string[], io: UpIo): Promise<number> {
  // `up` prints its own help (it lists the settings too); the dispatcher hands --help through.
  const words = argv.includes("--") ? argv.slice(0, argv.indexOf("--")) : argv;
  if (words.includes("--help") || words.includes("-h")) {
    io.out(upUsage());
    return 0;
  }
  const { values } = parseFlags(UP.flags, argv);
  const apiPort = intFlag(values["api-port"], "--api-port", 0, 65535);
  const heartbeatMs = intFlag(values["heartbeat-ms"], "--heartbeat-ms", 1, 3_600_000);
  const restartAttempts = intFlag(values["restart-attempts"], "--restart-attempts", 0, 1000);
  const restartWindowS = intFlag(values["restart-window"], "--restart-window", 1, 86_400);
  for (const bad of [apiPort, heartbeatMs, restartAttempts, restartWindowS]) {
    if (typeof bad === "string") {
      io.err(`error: ${bad}`);
      return 2;
    }
  }

  // The fleet: checked before anything starts.
  let fleetFile = values.fleet ? resolve(values.fleet) : undefined;
  let nodes = ["demo-a", "demo-b"];
  if (fleetFile) {
    let text: string;
    try {
      text = readFileSync(fleetFile, "utf8");
    } catch (err) {
      io.err(`error: --fleet ${fleetFile}: ${(err as Error).message}`);
      return 2;
    }
    const parsed = parseFleetSpec(text, fleetFile);
    if (!parsed.ok) {
      io.err(`error: --fleet ${fleetFile} is invalid:\n${parsed.problems.map((p) => `  ${p.file}:${p.path}: ${p.message}`).join("\n")}`);
      return 2;
    }
    nodes = Object.keys(parsed.spec.nodes);
  }

  // Every service's settings, checked by the service's own parser: a bad one exits 2 naming it, before anything starts.
  const dirGiven = values.dir ? resolve(values.dir) : undefined;
  const wires = placeholderWires(dirGiven ?? tmpdir(), fleetFile ?? "fleet.yaml", typeof apiPort === "number" ? apiPort : 0, plannerMainPath() !== undefined, operatorStateDir(io.env));
  const problems = servicesToRun().flatMap((svc) => {
    const e = checkSettings(svc, serviceEnv(svc, { env: io.env, stackId: "check", wiring: wiringFor(svc, wires), defaults: defaultsFor(svc, wires, io.env) }));
    return e ? [e.message] : [];
  });
  if (problems.length > 0) {
    io.err(`error: settings for the stack are invalid; nothing was started:\n${problems.join("\n")}`);
    return 2;
  }

  const home = stewardHome(io.env);
  const stackId = randomBytes(8).toString("hex");
  const dir = dirGiven ?? mkdtempSync(join(tmpdir(), "steward-up-"));
  const claim = await claimHome(home, { pid: process.pid, stack_id: stackId, dir, started_at: new Date().toISOString() }, (l) => io.err(`note: ${l}`));
  if ("refused" in claim) {
    io.err(`error: ${claim.refused}`);
    if (!dirGiven) rmSync(dir, { recursive: true, force: true });
    return 1;
  }

  const stack = createStack({
    dir,
    stackId,
    fleetFile: fleetFile ?? join(dir, "fleet.yaml"),
    nodes,
    natsUrl: io.env["NATS_URL"] || undefined,
    databaseUrl: io.env["DATABASE_URL"] || undefined,
    apiPort: typeof apiPort === "number" ? apiPort : undefined,
    heartbeatMs: typeof heartbeatMs === "number" ? heartbeatMs : undefined,
    env: io.env,
    log: (l) => io.out(`  ${l}`),
  });

  const policy: RestartPolicy = {
    ...DEFAULT_RESTART_POLICY,
    ...(typeof restartAttempts === "number" ? { attempts: restartAttempts } : {}),
    ...(typeof restartWindowS === "number" ? { windowMs: restartWindowS * 1000 } : {}),
  };
  const logFile = (name: string) => join(dir, "logs", `${name}.log`);
  let rewriteStackFile: () => void = () => undefined;
  let stackFileWrites = Promise.resolve();
  const healer = createStackHealer({ policy, say: (l) => io.err(l), logFile, onRestarted: () => rewriteStackFile() });

  // Signals are ours from here on, also during start-up: whatever has started is stopped in order.
  let stopping: Promise<void> | undefined;
  let stoppedBy: string | undefined;
  let wake: () => void = () => undefined;
  const signalled = new Promise<void>((r) => (wake = r));
  const stopAll = (why: string): Promise<void> => {
    if (stopping) return stopping;
    stoppedBy = why;
    healer.stop();
    io.out(`\n${why}: stopping the stack ...`);
    stopping = stack
      .stop((name, ms) => io.out(`  stopped ${name} (${ms} ms)`))
      .then(async (ms) => {
        io.out(`stopped in ${ms} ms.`);
        await stackFileWrites; // a rewrite after a restart must not bring the file back
        await removeStackFile(io.env).catch(() => undefined);
        claim.release();
        stack.removeFiles();
        if (!values.keep) rmSync(dir, { recursive: true, force: true });
      });
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => {
    void stopAll(sig);
    wake();
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);

  try {
    io.out(`starting the local Steward stack ${stackId} in ${dir} ...`);
    let running: RunningStack;
    try {
      if (!fleetFile) {
        mkdirSync(dir, { recursive: true });
        fleetFile = join(dir, "fleet.yaml");
        await writeDemoFleet(fleetFile);
      }
      running = await stack.start();
    } catch (err) {
      if (err instanceof StackStopped || stoppedBy) {
        await stopAll(stoppedBy ?? "stopped");
        return 0;
      }
      io.err(`error: ${(err as Error).message}`);
      await stopAll("start-up failed");
      return err instanceof ServiceStartError && err.code === 2 ? 2 : 1;
    }

    const startedAt = new Date().toISOString();
    const stackFileContent = (): StackFile => ({
      api_url: running.apiUrl,
      ...(running.plannerUrl ? { planner_url: running.plannerUrl } : {}),
      token: running.token,
      ...(running.plannerUrl ? { planner_token: running.plannerToken } : {}),
      nats_url: running.natsUrl,
      ...(running.natsSeedFile ? { nats_seed_file: running.natsSeedFile } : {}),
      ...(running.natsCaFile ? { nats_ca_file: running.natsCaFile } : {}),
      database_url: running.databaseUrl,
      fleet_spec: running.fleetFile,
      dir,
      stack_id: stackId,
      pid: process.pid,
      started_at: startedAt,
      metrics: running.metrics,
      processes: Object.fromEntries(running.members.flatMap((m) => (m.proc.pid ? [[m.name, m.proc.pid]] : []))),
    });
    const stackFile = await writeStackFile(stackFileContent(), io.env);
    // A restarted service has a new pid: the stack file names the processes that run now (its ports stay the same).
    rewriteStackFile = () => {
      stackFileWrites = stackFileWrites
        .then(() => (stoppedBy ? undefined : writeStackFile(stackFileContent(), io.env)))
        .then(() => undefined, (err: unknown) => io.err(`warning: cannot rewrite ${stackFile}: ${(err as Error).message}`));
    };
    io.out(readyText(running, stackFile, values.keep));
    // From here on a service that dies is restarted with backoff (and said so on stderr), an engine that dies is reported.
    healer.watch(running.members);
    await signalled;
    await stopping;
    return 0;
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

/** What `up` prints once the stack runs: where the API, console, planner, logs and each service's metrics are. */
export function readyText(s: Pick<RunningStack, "stackId" | "apiUrl" | "plannerUrl" | "fleetFile" | "dir" | "metrics">, stackFile: string, keep: boolean): string {
  return `
Steward is up (stack ${s.stackId}). The CLI in another terminal finds this stack through ${stackFile}.

  API         ${s.apiUrl}   (token in ${stackFile})
  console     ${s.apiUrl}/console   (sign in with that token)${s.plannerUrl ? `\n  planner     ${s.plannerUrl}   (steward task add, steward chat, steward cost)` : ""}
  fleet spec  ${s.fleetFile}
  logs        ${join(s.dir, "logs")}/
  metrics     ${Object.entries(s.metrics).map(([k, v]) => `${k} ${v}`).join("\n              ")}

Try:
  steward status                      # nodes, heartbeats, services, health
  steward drift                       # demo-b/reports is declared but never started: 'missing'
  steward actions                     # ... so a start is proposed, pending your approval
  steward approve <ID>                # the executor starts it and waits until its health check passes
  kill -9 $(steward status --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).world.nodes["demo-a"].services.web.pid))')
                                      # kill demo-a/web: 'down' within a second, and a restart is proposed${s.plannerUrl ? `
  steward chat                        # ask "why does demo-a/web keep restarting?"; /approve ID right there` : ""}

Ctrl-C stops everything (services first, then NATS and PostgreSQL)${keep ? "" : " and removes " + s.dir}.`;
}
