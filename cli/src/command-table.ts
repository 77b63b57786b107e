/**
 * Every `steward` command: its name, what it does, how it is called and its flags. Help, shell completion,
 * docs/cli.md, the flag check before a command runs and each command's own flag parsing are all derived from
 * this table. It is data and imports nothing, so commands import it freely; the code that runs each command is
 * found by name in command-runners.ts, which nothing but the dispatcher imports (no import circle).
 */

/** The streams a command writes to. */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
  /** Lines for `steward chat` (stdin when absent). */
  in?: NodeJS.ReadableStream;
  /** Whether `out` is a terminal (colour is then on, unless NO_COLOR or FORCE_COLOR say otherwise). */
  isTTY?: boolean;
}

/** Returns the exit code, or null when the command keeps running (`up`). */
export type CommandRun = (args: string[], io: Io) => Promise<number | null>;

export interface FlagSpec {
  readonly type: "boolean" | "string";
  readonly default?: boolean | string;
  /** Placeholder for the value in usage lines (`--state S`). */
  readonly value?: string;
  readonly summary: string;
  /** The only values accepted; offered by shell completion. */
  readonly choices?: readonly string[];
  /** What the shell completes the value with. */
  readonly complete?: "file" | "dir";
  /** Accepted, but not shown in help or completion. */
  readonly hidden?: boolean;
}

export type FlagSet = Readonly<Record<string, FlagSpec>>;

/** One line of usage: the synopsis and what it does. */
export type UsageLine = readonly [synopsis: string, summary: string];

export interface SubcommandSpec {
  readonly summary: string;
  readonly usage: readonly UsageLine[];
  /** Flags of this subcommand (the command's own flags apply too). */
  readonly flags: FlagSet;
  readonly aliases?: readonly string[];
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  readonly usage: readonly UsageLine[];
  readonly flags: FlagSet;
  readonly subcommands?: Readonly<Record<string, SubcommandSpec>>;
  /** What the shell completes positional arguments with. */
  readonly positionals?: "file" | "commands" | "shells";
  /** The command prints its own --help (the table's usage and flags are still what completion and docs use). */
  readonly ownHelp?: boolean;
  /** The command starts a trace (its spans reach the planner): main.ts installs tracing for it. */
  readonly traced?: boolean;
  /** The command colours its output (color.ts): those colour codes pass terminal-text.ts, nothing else does. */
  readonly paints?: boolean;
}

const json = { type: "boolean", default: false, summary: "print the answer as JSON" } as const;

export const UP = {
  name: "up",
  summary: "all-in-one local stack (demo fleet by default; --help lists its settings)",
  usage: [["steward up [--fleet FILE] [--dir DIR] [--keep] [--api-port N] [--heartbeat-ms N] [--restart-attempts N] [--restart-window S]", "all-in-one local stack (demo fleet by default; --help lists its settings)"]],
  flags: {
    fleet: { type: "string", value: "FILE", summary: "fleet spec to run (default: a demo fleet written into the stack dir)", complete: "file" },
    dir: { type: "string", value: "DIR", summary: "stack dir: logs, world snapshot, node-agent state (default: a new temp dir)", complete: "dir" },
    keep: { type: "boolean", default: false, summary: "keep the stack dir after stopping (it is removed otherwise)" },
    "api-port": { type: "string", value: "N", summary: "the executor's API port (default: any free port, printed and in the stack file)" },
    "heartbeat-ms": { type: "string", value: "N", summary: "node-agent heartbeat interval (default 2000, or HEARTBEAT_MS)" },
    "restart-attempts": { type: "string", value: "N", summary: "a service that dies is restarted with backoff (0.5 s, doubling); after N restarts within the window it is given up on (default 5; 0: never restart)" },
    "restart-window": { type: "string", value: "S", summary: "seconds in which restarts count toward --restart-attempts (default 60)" },
  },
  // `up --help` also lists the settings passed through to each service: up/up-command.ts renders it.
  ownHelp: true,
} as const satisfies CommandSpec;

export const STATUS = {
  name: "status",
  summary: "nodes, heartbeats, services, health",
  usage: [["steward status [--json]", "nodes, heartbeats, services, health"]],
  flags: { json },
} as const satisfies CommandSpec;

export const DRIFT = {
  name: "drift",
  summary: "where the world differs from the spec",
  usage: [["steward drift [--json] [--exit-code]", "where the world differs from the spec"]],
  paints: true,
  flags: {
    json,
    "exit-code": { type: "boolean", default: false, summary: "for scripts, like git diff --exit-code: exit 1 when there is drift, 0 when there is none (errors keep their own codes)" },
  },
} as const satisfies CommandSpec;

export const ACTIONS = {
  name: "actions",
  summary: "proposed and past actions",
  usage: [
    ["steward actions [--state S] [--limit N] [--json]", "proposed and past actions"],
    ["steward actions show ID [--json]", "one action with its audit trail"],
  ],
  flags: {
    json,
    state: { type: "string", value: "S", summary: "only actions in this state" },
    limit: { type: "string", value: "N", default: "50", summary: "at most N actions, newest first" },
  },
  subcommands: {
    show: { summary: "one action with its audit trail", usage: [["steward actions show ID [--json]", "one action with its audit trail"]], flags: {} },
  },
} as const satisfies CommandSpec;

// The audit actor is the name of the credential a request comes with (docs/access.md): --as is kept only to be refused
// with that explanation, never silently ignored.
const actor = { type: "string", value: "NAME", summary: "removed: the audit log records your credential's name", hidden: true } as const;

export const APPROVE = {
  name: "approve",
  summary: "approve a pending action (ID or its first characters)",
  usage: [["steward approve ID", "approve a pending action (ID or its first characters)"]],
  // --reason is accepted (and ignored) as it always was, so a script that passes it keeps working.
  flags: { as: actor, json, reason: { type: "string", value: "TEXT", summary: "ignored for approve", hidden: true } },
} as const satisfies CommandSpec;

export const REJECT = {
  name: "reject",
  summary: "reject a pending action",
  usage: [["steward reject ID --reason TEXT [--for DURATION]", "reject a pending action; its drift is held (not proposed again) until it changes or clears, or --for passes"]],
  flags: {
    reason: { type: "string", value: "TEXT", summary: "why (required; it goes into the audit log and shows on the held drift)" },
    for: { type: "string", value: "DURATION", summary: "the hold also ends after this long (90s, 30m, 2h, 1d; at most 30d)" },
    as: actor,
    json,
  },
} as const satisfies CommandSpec;

export const HOLD = {
  name: "hold",
  summary: "drifts held by a rejection: list them, or release one early",
  usage: [
    ["steward hold ls [--json]", "holds in force: which drift, by whom, why, until when"],
    ["steward hold release ID [--reason TEXT]", "end a hold now (ID: the rejected action's); its drift is proposed again at the next cycle"],
  ],
  flags: {},
  subcommands: {
    ls: { summary: "holds in force: which drift, by whom, why, until when", usage: [["steward hold ls [--json]", "holds in force"]], flags: { json }, aliases: ["list"] },
    release: {
      summary: "end a hold now; its drift is proposed again at the next cycle",
      usage: [["steward hold release ID [--reason TEXT] [--json]", "end a hold now"]],
      flags: { reason: { type: "string", value: "TEXT", summary: "why, for the audit log" }, as: actor, json },
    },
  },
} as const satisfies CommandSpec;

const limit = { type: "string", value: "N", default: "20", summary: "at most N, newest first" } as const;

export const DRILL = {
  name: "drill",
  summary: "restart drills: after approval, kill a healthy service on purpose and time its recovery against its recovery_objective",
  usage: [
    ["steward drill SERVICE|--all [--node NODE] [--approve] [--json]", "propose a drill of SERVICE (every node that declares it, or --node) or of every service; approve it like any action"],
    ["steward drill ls [--limit N] [--json]", "drills with their timings and verdicts"],
    ["steward drill show ID [--json]", "one drill: its timeline, verdict, and the restart it caused"],
  ],
  flags: {
    all: { type: "boolean", default: false, summary: "every declared service (one at a time; services without a recovery_objective are refused)" },
    node: { type: "string", value: "NODE", summary: "only on this node" },
    approve: { type: "boolean", default: false, summary: "the drill approves the restart it causes (that restart only, audited as the drill); without it the restart waits for you" },
    as: actor,
    json,
  },
  subcommands: {
    ls: { summary: "drills with their timings and verdicts", usage: [["steward drill ls [--limit N] [--json]", "drills with their timings and verdicts"]], flags: { limit, json }, aliases: ["list"] },
    show: { summary: "one drill: its timeline, verdict, and the restart it caused", usage: [["steward drill show ID [--json]", "one drill with its timeline"]], flags: { json } },
  },
} as const satisfies CommandSpec;

export const VALIDATE = {
  name: "validate",
  summary: "check fleet specs and the repo they use (for CI): exit 1 and one line per problem",
  usage: [["steward validate FILE... [--repo DIR] [--compose-apply auto|cli|engine-api] [--format text|github] [--json]", "check fleet specs and the repo they use (for CI): exit 1 and one line per problem"]],
  flags: {
    repo: { type: "string", value: "DIR", summary: "the deploy checkout the spec's files are in (default: the spec's declared repo path, resolved from its directory)", complete: "dir" },
    "compose-apply": {
      type: "string",
      value: "MODE",
      default: "auto",
      choices: ["auto", "cli", "engine-api"],
      summary: "how the nodes apply compose files (their COMPOSE_APPLY): engine-api makes keys only Compose applies errors; cli makes them warnings when no Compose binary is here",
    },
    format: { type: "string", value: "FORMAT", default: "text", choices: ["text", "github"], summary: "text, or GitHub Actions workflow commands" },
    json,
  },
  positionals: "file",
} as const satisfies CommandSpec;

export const PLAN = {
  name: "plan",
  summary: "what the supervisor would create, restart, redeploy, pull, or only report (exit 0)",
  usage: [["steward plan [FLEET_FILE] [--snapshot FILE] [--now ISO] [--max-age 30s] [--json]", "what the supervisor would create, restart, redeploy, pull, or only report (exit 0)"]],
  flags: {
    snapshot: { type: "string", value: "FILE", summary: "a saved world snapshot instead of the live API", complete: "file" },
    now: { type: "string", value: "ISO", summary: "judge the snapshot as of this time" },
    "max-age": { type: "string", value: "DURATION", default: "30s", summary: "a snapshot older than this is not trusted" },
    json,
  },
  positionals: "file",
} as const satisfies CommandSpec;

const conversation = { type: "string", value: "ID", summary: "the conversation the task belongs to" } as const;

export const TASK = {
  name: "task",
  summary: "ask the planner, show a task, list recent tasks",
  usage: [
    ["steward task add TEXT [--no-wait] [--json]", "ask the planner; waits and shows progress (--no-wait prints the task id)"],
    ["steward task show ID [--json]", "answer, evidence, proposed actions, model groups, cost"],
    ["steward task ls [--conversation ID] [--json]", "recent tasks from every source"],
  ],
  flags: {},
  subcommands: {
    add: {
      summary: "ask the planner; waits and shows progress (--no-wait prints the task id)",
      usage: [["steward task add TEXT [--no-wait] [--conversation ID] [--agent NAME] [--ttl SECONDS] [--restricted] [--idempotency-key KEY] [--timeout SECONDS] [--json]", "ask the planner"]],
      flags: {
        "no-wait": { type: "boolean", default: false, summary: "print the task id and return at once" },
        json,
        conversation,
        agent: { type: "string", value: "NAME", summary: "send the task to this agent" },
        ttl: { type: "string", value: "SECONDS", summary: "the task expires if no worker starts it within SECONDS" },
        restricted: { type: "boolean", default: false, summary: "restricted data: local models only" },
        "idempotency-key": { type: "string", value: "KEY", summary: "the same key never runs twice" },
        timeout: { type: "string", value: "SECONDS", summary: "stop waiting after SECONDS (exit 3; default 180)" },
      },
    },
    show: { summary: "answer, evidence, proposed actions, model groups, cost", usage: [["steward task show ID [--json]", "one task"]], flags: { json } },
    ls: {
      summary: "recent tasks from every source",
      usage: [["steward task ls [--limit N] [--conversation ID] [--json]", "recent tasks"]],
      flags: { json, limit: { type: "string", value: "N", default: "20", summary: "at most N tasks" }, conversation },
      aliases: ["list"],
    },
  },
  traced: true,
} as const satisfies CommandSpec;

export const INCIDENT = {
  name: "incident",
  summary: "incidents: each failure of a service, from drift to the actions that ended it; similar past ones; post-mortem drafts",
  usage: [
    ["steward incident ls [--state open|resolved] [--limit N] [--json]", "incidents, newest first"],
    ["steward incident show ID [--json]", "one incident: its timeline (drift, tasks, actions and their audit, events, traces), similar past incidents, recurrence"],
    ["steward incident postmortem ID [--out FILE] [--json]", "draft a post-mortem in Markdown (by a model when one serves, else from the timeline, saying so)"],
  ],
  flags: {},
  subcommands: {
    ls: {
      summary: "incidents, newest first",
      usage: [["steward incident ls [--state open|resolved] [--limit N] [--json]", "incidents, newest first"]],
      flags: { state: { type: "string", value: "STATE", choices: ["open", "resolved"], summary: "only open or only resolved incidents" }, limit, json },
      aliases: ["list"],
    },
    show: { summary: "one incident with its timeline, similar past incidents and recurrence", usage: [["steward incident show ID [--json]", "one incident"]], flags: { json } },
    postmortem: {
      summary: "draft a post-mortem in Markdown",
      usage: [["steward incident postmortem ID [--out FILE] [--json]", "draft a post-mortem in Markdown; the planner keeps the draft with the incident"]],
      flags: { out: { type: "string", value: "FILE", summary: "write the Markdown to FILE (never overwrites) instead of printing it", complete: "file" }, json },
    },
  },
} as const satisfies CommandSpec;

export const CHAT = {
  name: "chat",
  summary: "a conversation with the planner; /approve ID and /reject ID REASON in place",
  usage: [["steward chat [--conversation ID]", "a conversation with the planner; /approve ID and /reject ID REASON in place"]],
  flags: {
    conversation: { ...conversation, summary: "resume this conversation" },
    agent: { type: "string", value: "NAME", summary: "send every task to this agent" },
    restricted: { type: "boolean", default: false, summary: "restricted data: local models only" },
    timeout: { type: "string", value: "SECONDS", summary: "how long to wait for one answer (default 300)" },
  },
  traced: true,
} as const satisfies CommandSpec;

export const COST = {
  name: "cost",
  summary: "model spend by day, agent, model group and source; headroom under each cap",
  usage: [["steward cost [--json]", "model spend by day, agent, model group and source; headroom under each cap"]],
  flags: { json },
} as const satisfies CommandSpec;

export const KEYS = {
  name: "keys",
  summary: "make keys: the executor's command-signing key pair; NATS identities for every node and component; NATS TLS certificates",
  usage: [
    ["steward keys signing [--out DIR] [--json]", "a new Ed25519 pair: EXECUTOR_SIGNING_KEY for the executor only, NODE_COMMAND_PUBLIC_KEY for every node-agent"],
    ["steward keys nats --out DIR [--fleet FILE] [--rotate NAME,...] [--json]", "an nkey seed per node and component (files 0600) and nats-server's authorization include with each one's permissions"],
    ["steward keys tls --out DIR [--host HOST,...] [--days N] [--force] [--json]", "a CA and a NATS server certificate (key 0600) for the compose deployment: DIR/tls/ca.pem, server.pem, server.key"],
  ],
  flags: {},
  subcommands: {
    nats: {
      summary: "an nkey seed per node and component (files 0600) and nats-server's authorization include with each one's permissions",
      usage: [["steward keys nats --out DIR [--fleet FILE] [--rotate NAME,...] [--json]", "keeps the seeds already in DIR; prints each identity's public key and seed file, never a seed"]],
      flags: {
        out: { type: "string", value: "DIR", summary: "where nats-users.conf and seeds/<name>.nk go (seeds already there are kept)", complete: "dir" },
        fleet: { type: "string", value: "FILE", summary: "the fleet spec whose nodes get identities (default: $FLEET_SPEC)", complete: "file" },
        rotate: { type: "string", value: "NAME,...", summary: "give these identities new seeds (node.<name>, observer, supervisor, executor, planner, alerter, cli)" },
        json,
      },
    },
    tls: {
      summary: "a CA and a NATS server certificate (key 0600) for the compose deployment: DIR/tls/ca.pem, server.pem, server.key",
      usage: [["steward keys tls --out DIR [--host HOST,...] [--days N] [--force] [--json]", "valid for nats-1..3, localhost, 127.0.0.1 and each --host; refuses to replace files already there without --force"]],
      flags: {
        out: { type: "string", value: "DIR", summary: "the keys directory (the same as for `keys nats`); the files go into DIR/tls", complete: "dir" },
        host: { type: "string", value: "HOST,...", summary: "more names the certificate is valid for: the host name or address node-agents reach NATS at (STEWARD_BIND)" },
        days: { type: "string", value: "N", summary: "how long the certificates are valid (default 730); make new ones with --force before then" },
        force: { type: "boolean", default: false, summary: "replace the CA and certificate already in DIR/tls (every client then needs the new ca.pem)" },
        json,
      },
    },
    signing: {
      summary: "a new Ed25519 pair: EXECUTOR_SIGNING_KEY for the executor only, NODE_COMMAND_PUBLIC_KEY for every node-agent",
      usage: [["steward keys signing [--out DIR] [--json]", "prints both as env lines; with --out, writes them as files (private 0600) and prints only the public key"]],
      flags: {
        out: { type: "string", value: "DIR", summary: "write executor-signing.key (mode 0600) and node-command.pub into DIR (never overwrites) instead of printing the private key", complete: "dir" },
        json,
      },
    },
  },
} as const satisfies CommandSpec;

export const TOKEN = {
  name: "token",
  summary: "named API credentials (admin only): create one for a person with a role, list them, revoke one",
  usage: [
    ["steward token create NAME --role viewer|approver|admin [--json]", "a new credential; its token is printed once (the audit log shows NAME as the actor of what it does)"],
    ["steward token ls [--json]", "every credential: name, role, who created it and when, revoked or not (never a token)"],
    ["steward token revoke NAME", "the credential's token is refused at once"],
  ],
  flags: {},
  subcommands: {
    create: {
      summary: "a new credential; its token is printed once",
      usage: [["steward token create NAME --role viewer|approver|admin [--json]", "a new credential; its token is printed once"]],
      flags: {
        // The operators' roles of the contracts (OPERATOR_ROLES; the table imports nothing, a test keeps them equal).
        role: { type: "string", value: "ROLE", choices: ["viewer", "approver", "admin"], summary: "viewer reads; approver also decides; admin also manages credentials" },
        json,
      },
    },
    ls: { summary: "every credential, never a token", usage: [["steward token ls [--json]", "every credential, never a token"]], flags: { json }, aliases: ["list"] },
    revoke: { summary: "the credential's token is refused at once", usage: [["steward token revoke NAME [--json]", "the credential's token is refused at once"]], flags: { json } },
  },
} as const satisfies CommandSpec;

export const COMPLETION = {
  name: "completion",
  summary: "a shell completion script for bash, zsh or fish",
  usage: [["steward completion bash|zsh|fish", "a shell completion script (see docs/cli.md to install it)"]],
  flags: {},
  positionals: "shells",
} as const satisfies CommandSpec;

export const HELP = {
  name: "help",
  summary: "every command, or one command's usage and flags",
  usage: [["steward help [COMMAND]", "every command, or one command's usage and flags (same as steward COMMAND --help)"]],
  flags: {},
  positionals: "commands",
} as const satisfies CommandSpec;

const ORDER = [UP, STATUS, DRIFT, ACTIONS, APPROVE, REJECT, HOLD, DRILL, VALIDATE, PLAN, TASK, INCIDENT, CHAT, COST, KEYS, TOKEN, COMPLETION, HELP] as const;

/** The command names, from the table: command-runners.ts must have a runner for each. */
export type CommandName = (typeof ORDER)[number]["name"];

/** In the order `steward help` lists them. */
export const COMMANDS: readonly CommandSpec[] = ORDER;

export function findCommand(name: string | undefined): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

/** The subcommand `args` selects (its first word), if the command has one by that name or alias. */
export function findSubcommand(spec: CommandSpec, args: readonly string[]): [string, SubcommandSpec] | undefined {
  const word = args[0];
  if (!spec.subcommands || word === undefined) return undefined;
  return Object.entries(spec.subcommands).find(([name, sub]) => name === word || sub.aliases?.includes(word));
}

export const ENVIRONMENT =
  "environment: STEWARD_API_URL, STEWARD_PLANNER_URL and STEWARD_TOKEN (or the stack file written by `steward up` in $STEWARD_HOME, default ~/.steward); STEWARD_NATS_URL (or the stack file) lets status and drift read the world store when the API does not answer";
