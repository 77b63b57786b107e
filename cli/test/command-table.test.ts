import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Snapshot } from "@steward/contracts/world-state";
import { runCli, USAGE } from "../src/cli.js";
import { COMMANDS, type CommandSpec, type FlagSet } from "../src/command-table.js";
import { completionScript, SHELLS } from "../src/completion.js";
import { renderCliDoc, VERSION } from "../src/help.js";
import { parseCommandLine } from "../src/parse.js";

const CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const DOC = fileURLToPath(new URL("../../docs/cli.md", import.meta.url));

function capture(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env }, out: () => out.join("\n"), err: () => err.join("\n") };
}

const visibleFlags = (flags: FlagSet): string[] => Object.entries(flags).filter(([, f]) => !f.hidden).map(([n]) => `--${n}`);
const everyFlag = (c: CommandSpec): string[] => [...visibleFlags(c.flags), ...Object.values(c.subcommands ?? {}).flatMap((s) => visibleFlags(s.flags))];

describe("steward --version and help", () => {
  it("--version prints the package version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    for (const flag of ["--version", "-V"]) {
      const c = capture();
      expect(await runCli([flag], c.io)).toBe(0);
      expect(c.out()).toBe(`steward ${pkg.version}`);
    }
    expect(VERSION).toBe(pkg.version);
  });

  it("`steward help` and --help list every command; no command at all is a usage error (exit 2)", async () => {
    for (const argv of [["help"], ["--help"], ["-h"]]) {
      const c = capture();
      expect(await runCli(argv, c.io)).toBe(0);
      expect(c.out()).toBe(USAGE);
    }
    for (const cmd of COMMANDS) for (const [synopsis] of cmd.usage) expect(USAGE).toContain(synopsis);
    const none = capture();
    expect(await runCli([], none.io)).toBe(2);
  });

  it.each(COMMANDS.map((c) => [c.name, c] as const))("steward %s: COMMAND --help and help COMMAND show its usage and every flag, and run nothing", async (name, cmd) => {
    // No API configured: were the command to run, it would fail with exit 1.
    const a = capture({ STEWARD_HOME: join(tmpdir(), "steward-nowhere") });
    expect(await runCli([name, "--help"], a.io)).toBe(0);
    for (const [synopsis] of cmd.usage) expect(a.out()).toContain(synopsis);
    for (const f of visibleFlags(cmd.flags)) expect(a.out()).toContain(f);
    const b = capture();
    expect(await runCli(["help", name], b.io)).toBe(0);
    expect(b.out()).toBe(a.out());
    for (const [sub, spec] of Object.entries(cmd.subcommands ?? {})) {
      const s = capture();
      expect(await runCli([name, sub, "--help"], s.io)).toBe(0);
      for (const f of visibleFlags(spec.flags)) expect(s.out()).toContain(f);
      expect(s.out()).toContain(spec.usage[0]![0]);
    }
  });

  it("help for a command that does not exist is exit 2", async () => {
    const c = capture();
    expect(await runCli(["help", "frobnicate"], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown command 'frobnicate'; the commands are: up, status/);
  });
});

describe("usage mistakes: exit 2 with a specific message, nothing runs", () => {
  it("an unknown command", async () => {
    const c = capture();
    expect(await runCli(["stauts"], c.io)).toBe(2);
    expect(c.err()).toMatch(/^unknown command 'stauts'/);
  });
  it("an unknown flag names the flag, the command and the nearest flag", async () => {
    const c = capture({ STEWARD_API_URL: "http://127.0.0.1:1", STEWARD_TOKEN: "t" });
    expect(await runCli(["status", "--jsn"], c.io)).toBe(2);
    expect(c.err()).toBe("error: unknown flag '--jsn' for 'steward status'; did you mean '--json'? (see 'steward status --help')");
    const t = capture();
    expect(await runCli(["task", "add", "--bogus", "x"], t.io)).toBe(2);
    expect(t.err()).toMatch(/unknown flag '--bogus' for 'steward task add'/);
    const s = capture();
    expect(await runCli(["cost", "-x"], s.io)).toBe(2);
    expect(s.err()).toMatch(/unknown flag '-x' for 'steward cost'/);
  });
  it("a flag of another subcommand is unknown here", async () => {
    const c = capture();
    expect(await runCli(["task", "show", "--no-wait", "abc"], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown flag '--no-wait' for 'steward task show'/);
  });
  it("a value outside a flag's choices", async () => {
    const c = capture();
    expect(await runCli(["validate", "--format", "xml", "fleet.yaml"], c.io)).toBe(2);
    expect(c.err()).toMatch(/--format must be one of text, github, got 'xml'/);
  });
});

describe("parseCommandLine (pure)", () => {
  it.each([
    [[], "usage"],
    [["--help"], "usage"],
    [["--version"], "version"],
    [["nope"], "unknown-command"],
    [["status", "--json"], "run"],
    [["status", "-h"], "command-help"],
    [["task", "add", "--", "what does --help do?"], "run"],
    [["actions", "--state", "--json"], "run"],
    [["actions", "--state=pending", "--bogus"], "bad-flag"],
    [["help", "status"], "run"],
  ] as const)("%j → %s", (argv, kind) => {
    expect(parseCommandLine(argv).kind).toBe(kind);
  });
});

describe("steward completion", () => {
  it.each(SHELLS.map((s) => [s] as const))("%s: every command and every flag from the table", async (shell) => {
    const c = capture();
    expect(await runCli(["completion", shell], c.io)).toBe(0);
    expect(c.out()).toBe(completionScript(shell).trimEnd());
    for (const cmd of COMMANDS) {
      expect(c.out()).toContain(cmd.name);
      for (const f of everyFlag(cmd)) expect(c.out()).toContain(shell === "fish" ? `-l ${f.slice(2)}` : f);
    }
  });

  it("bash: the script parses (bash -n) and completes commands, subcommands, flags and flag values", () => {
    const script = completionScript("bash");
    expect(spawnSync("bash", ["-n"], { input: script }).status).toBe(0);
    const complete = (...words: string[]): string[] => {
      const r = spawnSync("bash", ["-c", `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _steward; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout.split("\n").filter(Boolean).sort();
    };
    expect(complete("steward", "st")).toEqual(["status"]);
    expect(complete("steward", "task", "")).toEqual(["add", "list", "ls", "show"]);
    expect(complete("steward", "task", "add", "--no")).toEqual(["--no-wait"]);
    expect(complete("steward", "validate", "--format", "")).toEqual(["github", "text"]);
    expect(complete("steward", "completion", "")).toEqual(["bash", "fish", "zsh"]);
    expect(complete("steward", "status", "--")).toEqual(["--help", "--json"]);
    // A hidden flag is accepted but not offered.
    expect(complete("steward", "approve", "--")).not.toContain("--reason");
  });

  it("zsh and fish: well-formed registrations", () => {
    const zsh = completionScript("zsh");
    expect(zsh.startsWith("#compdef steward\n")).toBe(true);
    expect(zsh).toContain("compdef _steward steward");
    const fish = completionScript("fish").trim().split("\n").filter((l) => !l.startsWith("#"));
    for (const line of fish) {
      expect(line.startsWith("complete -c steward ")).toBe(true);
      // Quotes balance once escaped quotes are removed.
      expect((line.replace(/\\[\\']/g, "").match(/'/g) ?? []).length % 2, line).toBe(0);
    }
  });

  it("an unknown shell is exit 2", async () => {
    const c = capture();
    expect(await runCli(["completion", "powershell"], c.io)).toBe(2);
    expect(c.err()).toMatch(/no completion for 'powershell': steward completion bash\|zsh\|fish/);
  });
});

describe("docs/cli.md", () => {
  it("is the table, rendered (regenerate with `npm run docs -w @steward/cli`)", async () => {
    expect(await readFile(DOC, "utf8")).toBe(renderCliDoc());
  });
});

/**
 * Runs the built CLI (cli/dist/main.js: the bundle, which the test setup keeps current) with a loader hook that writes
 * the URL of every file it loads. The bundle's manifest says which modules each of its files holds, so the checks
 * below are about modules (`/node_modules/zod/…`), whether they were loaded as files of their own or in a chunk.
 */
describe("what each command loads (the built CLI, a real process)", () => {
  const DIST = fileURLToPath(new URL("../dist/", import.meta.url));
  const ZOD = /\/node_modules\/zod\//;
  // stack-member.js (the stack id header) and http-client.js (the API clients' errors) are the platform modules the
  // dispatcher and the stack file need; neither imports anything. The NATS client is heavy; the contracts' pure
  // nats-permissions table (the reserved credential names derive from it) is not.
  const HEAVY = [/\/libs\/platform\/(?!dist\/(stack-member|http-client)\.js$)/, /@opentelemetry/, /\/node_modules\/(@nats-io|nats)\//, /postgres/, /pino/, /prom-client/, /\/libs\/fleet\//, /\/node_modules\/yaml\//];
  /** File in cli/dist → the modules it holds (repo-relative), from the bundle's manifest. */
  let bundled: Record<string, string[]> = {};
  let dir = "";
  let api: Server;
  let apiUrl = "";
  const at = new Date().toISOString();
  const snapshot = Snapshot.parse({
    world: { version: 1, last_seq: 7, events_applied: 7, event_time: at, nodes: { n1: { name: "n1", status: "up", last_heartbeat: at, heartbeat_interval_ms: 5000, agent_started_at: at, dropped_events: 0, host: null, repo: null, secrets: {}, services: { web: { name: "web", state: "running", health: "healthy", pid: 42, starts: 1, declared: true, since: at, updated_at: at, checks: {}, last_event_id: "e1" } } } } },
    written_at: at,
    observer_id: "test",
  });

  beforeAll(async () => {
    bundled = (JSON.parse(await readFile(join(DIST, "chunks/manifest.json"), "utf8")) as { chunks: Record<string, string[]> }).chunks;
    dir = await mkdtemp(join(tmpdir(), "steward-loads-"));
    await writeFile(join(dir, "hooks.mjs"), `import { appendFileSync } from "node:fs";\nexport async function load(url, context, next) {\n  appendFileSync(process.env.LOADED_FILE, url + "\\n");\n  return next(url, context);\n}\n`);
    await writeFile(join(dir, "record.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(join(dir, "hooks.mjs")).href)});\n`);
    api = createServer((req, res) => {
      if (req.headers.authorization !== "Bearer t" || req.url !== "/api/world") res.writeHead(404).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(snapshot));
    });
    await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
    apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    api.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Async spawn: the API above answers from this process's event loop. */
  async function loads(args: string[]): Promise<{ code: number | null; stdout: string; files: string[]; modules: string[] }> {
    const file = join(dir, `loaded-${args.join("-")}.txt`);
    await writeFile(file, "");
    const child = spawn(process.execPath, ["--import", join(dir, "record.mjs"), CLI, ...args], {
      env: { ...process.env, LOADED_FILE: file, STEWARD_API_URL: apiUrl, STEWARD_TOKEN: "t", STEWARD_HOME: dir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const code = await new Promise<number | null>((r) => child.on("close", r));
    const loaded = (await readFile(file, "utf8")).split("\n").filter(Boolean);
    const inDist = (u: string): string | undefined => {
      const p = u.startsWith("file:") ? fileURLToPath(u) : "";
      return p.startsWith(DIST) ? p.slice(DIST.length) : undefined;
    };
    return {
      code,
      stdout,
      files: loaded.flatMap((u) => inDist(u) ?? []),
      modules: loaded.flatMap((u) => bundled[inDist(u) ?? ""]?.map((m) => `/${m}`) ?? [u]),
    };
  }

  it("cli/dist/main.js is the current bundle: `steward --help` reads that one file of the CLI's", async () => {
    const check = spawnSync(process.execPath, [fileURLToPath(new URL("../bundle.js", import.meta.url)), "--check"], { encoding: "utf8" });
    expect(check.status, check.stderr).toBe(0);
    expect(await readFile(CLI, "utf8")).toContain("// steward CLI bundle");
    const r = await loads(["--help"]);
    expect(r.code).toBe(0);
    expect(r.files).toEqual(["main.js"]);
  });

  it.each([["--help"], ["--version"], ["completion", "bash"], ["status", "--help"]])("steward %s loads no zod, platform, fleet or tracing", async (...args) => {
    const r = await loads(args);
    expect(r.code).toBe(0);
    // The recorder sees the CLI's own modules: a hook that saw nothing would prove nothing.
    expect(r.modules.some((m) => /\/cli\/(src|dist)\/command-table\.(ts|js)$/.test(m))).toBe(true);
    for (const heavy of [ZOD, ...HEAVY]) expect(r.modules.filter((m) => heavy.test(m))).toEqual([]);
    if (args[0] === "--version") expect(r.stdout).toBe(`steward ${VERSION}\n`);
  });

  it("steward status --json loads zod and the contracts (it validates the answer) but no platform, fleet, YAML or tracing", async () => {
    const r = await loads(["status", "--json"]);
    expect(r.code).toBe(0);
    expect(Snapshot.parse(JSON.parse(r.stdout))).toEqual(snapshot);
    expect(r.modules.some((m) => ZOD.test(m))).toBe(true);
    expect(r.modules.some((m) => m.endsWith("/libs/contracts/dist/world-state.js"))).toBe(true);
    for (const heavy of HEAVY) expect(r.modules.filter((m) => heavy.test(m))).toEqual([]);
    expect(r.modules.filter((m) => /\/(commands\/(plan|task|chat|validate|cost)|up\/up-command)\.(js|ts)$/.test(m))).toEqual([]);
    // zod builds every schema of a file it loads: the planner's contracts are not the status path's to pay for.
    expect(r.modules.filter((m) => /\/libs\/contracts\/dist\/(task|planner-api|node-command)\.js$/.test(m))).toEqual([]);
  });
});
