/** The pure decisions of `steward up`: stop order, what each service is given, settings, the claim on STEWARD_HOME. */
import { describe, expect, it } from "vitest";
import { checkSettings, passThroughSettings, renderSettingsHelp, serviceEnv, UP_SERVICES, WIRING } from "../src/up/settings.js";
import { join } from "node:path";
import { defaultsFor, nodeFlagsFor, operatorStateDir, placeholderWires, stopOrder, wiringFor } from "../src/up/stack-plan.js";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { decideClaim } from "../src/up/home-claim.js";
import { natsUrlFromPortsFile } from "../src/up/local-nats.js";
import { wrongStack } from "../src/stack-file.js";
import { readyText } from "../src/up/up-command.js";

describe("stop order", () => {
  it("is the reverse of the start order for services, with the engines (NATS, PostgreSQL) last", () => {
    const started = ["nats-server", "postgres", "observer", "planner", "executor", "supervisor", "alerter", "node-agent-a", "node-agent-b"].map((name) => ({ name, engine: name === "nats-server" || name === "postgres" }));
    expect(stopOrder(started).map((m) => m.name)).toEqual(["node-agent-b", "node-agent-a", "alerter", "supervisor", "executor", "planner", "observer", "postgres", "nats-server"]);
  });

  it("engines given from outside (NATS_URL, DATABASE_URL) are simply absent", () => {
    expect(stopOrder([{ name: "observer", engine: false }, { name: "executor", engine: false }]).map((m) => m.name)).toEqual(["executor", "observer"]);
  });
});

describe("what each service is given", () => {
  const wires = { ...placeholderWires("/stack", "/stack/fleet.yaml", 0, true), apiUrl: "http://127.0.0.1:4000", plannerUrl: "http://127.0.0.1:4001" };

  it("settings from the environment reach exactly the services that read them (RECHECK_MS, VERIFY_TIMEOUT_MS)", () => {
    const env = { PATH: "/bin", RECHECK_MS: "700", VERIFY_TIMEOUT_MS: "9000", UNRELATED: "x" };
    const sup = serviceEnv("supervisor", { env, stackId: "s1", wiring: wiringFor("supervisor", wires) });
    const exe = serviceEnv("executor", { env, stackId: "s1", wiring: wiringFor("executor", wires) });
    const obs = serviceEnv("observer", { env, stackId: "s1", wiring: wiringFor("observer", wires) });
    expect(sup["RECHECK_MS"]).toBe("700");
    expect(exe["VERIFY_TIMEOUT_MS"]).toBe("9000");
    expect(obs["RECHECK_MS"]).toBeUndefined();
    expect(obs["VERIFY_TIMEOUT_MS"]).toBeUndefined();
    for (const e of [sup, exe, obs]) {
      expect(e["UNRELATED"]).toBeUndefined();
      expect(e["STEWARD_STACK_ID"]).toBe("s1");
    }
  });

  it("the wiring always wins: a stray HTTP_PORT or NATS_URL in the environment cannot move a service", () => {
    const env = { HTTP_PORT: "7070", METRICS_PORT: "9466", NATS_URL: "nats://elsewhere:4222", API_TOKEN: "someone-elses-token-123" };
    const exe = serviceEnv("executor", { env, stackId: "s1", wiring: wiringFor("executor", wires) });
    expect(exe["HTTP_PORT"]).toBe("0");
    expect(exe["NATS_URL"]).toBe(wires.natsUrl);
    expect(exe["API_TOKEN"]).toBe(wires.token);
    expect(serviceEnv("supervisor", { env, stackId: "s1", wiring: wiringFor("supervisor", wires) })["METRICS_PORT"]).toBe("0");
  });

  it("the command key: the executor alone gets the private half, every agent only the public half", () => {
    const env = { EXECUTOR_SIGNING_KEY: "ed25519-private:someone-elses", NODE_COMMAND_PUBLIC_KEY: "ed25519-public:someone-elses" };
    const all = (["observer", "planner", "executor", "supervisor", "alerter", "node-agent"] as const).map((svc) => [svc, serviceEnv(svc, { env, stackId: "s1", wiring: wiringFor(svc, wires) })] as const);
    const holding = (value: string) => all.filter(([, e]) => Object.values(e).includes(value)).map(([svc]) => svc);
    expect(holding(wires.commandKeys.privateKey)).toEqual(["executor"]);
    expect(holding(wires.commandKeys.publicKey)).toEqual(["node-agent"]);
    expect(wires.commandKeys.privateKey).toMatch(/^ed25519-private:/);
    expect(placeholderWires("/stack", "/stack/fleet.yaml", 0, true).commandKeys.privateKey).not.toBe(wires.commandKeys.privateKey);
  });

  it("an empty setting is passed on (the service refuses it loudly rather than silently using a default)", () => {
    const al = serviceEnv("alerter", { env: { NTFY_URL: "" }, stackId: "s1", wiring: wiringFor("alerter", wires), defaults: defaultsFor("alerter", wires) });
    expect(al["NTFY_URL"]).toBe("");
    expect(al["CONSOLE_URL"]).toBe("http://127.0.0.1:4000/console");
  });

  it("the alerter always runs: with no push sink set it prints alerts on up's terminal (ALERT_CONSOLE), with one it pushes", () => {
    expect(defaultsFor("alerter", wires, {})["ALERT_CONSOLE"]).toBe("true");
    expect(defaultsFor("alerter", wires, { NTFY_URL: "https://ntfy.sh", NTFY_TOPIC: "ops" })["ALERT_CONSOLE"]).toBeUndefined();
    // An empty sink setting counts as set: it refuses to start loudly instead of quietly printing here.
    expect(defaultsFor("alerter", wires, { WEBHOOK_URL: "" })["ALERT_CONSOLE"]).toBeUndefined();
  });

  it("up's defaults give way to the environment (HEARTBEAT_MS)", () => {
    const w = { ...wires, node: "n1" };
    expect(serviceEnv("node-agent", { env: {}, stackId: "s", wiring: wiringFor("node-agent", w), defaults: defaultsFor("node-agent", w) })["HEARTBEAT_MS"]).toBe("2000");
    expect(serviceEnv("node-agent", { env: { HEARTBEAT_MS: "300" }, stackId: "s", wiring: wiringFor("node-agent", w), defaults: defaultsFor("node-agent", w) })["HEARTBEAT_MS"]).toBe("300");
  });

  it("the executor gets the planner's URL and the fleet spec; node-agent state and logs live under the stack dir", () => {
    const exe = wiringFor("executor", wires);
    expect(exe["PLANNER_URL"]).toBe("http://127.0.0.1:4001");
    expect(exe["FLEET_SPEC"]).toBe("/stack/fleet.yaml");
    const agent = wiringFor("node-agent", { ...wires, node: "demo-a" });
    expect(agent["STATE_DIR"]).toBe("/stack/node-state/demo-a");
    expect(agent["LOG_DIR"]).toBe("/stack/service-logs/demo-a");
    expect(wiringFor("supervisor", wires)["PLANNER_URL"]).toBe("http://127.0.0.1:4001");
  });

  it("node-agents get the operator's Docker settings (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_PROBE_MS, COMPOSE_APPLY)", () => {
    const env = { DOCKER_HOST: "unix:///run/steward-test/docker.sock", DOCKER_API_VERSION: "v1.41", DOCKER_PROBE_MS: "700", COMPOSE_APPLY: "cli" };
    const agent = serviceEnv("node-agent", { env, stackId: "s", wiring: wiringFor("node-agent", { ...wires, node: "n1" }), defaults: defaultsFor("node-agent", wires) });
    expect(agent).toMatchObject(env);
    expect(checkSettings("node-agent", agent)).toBeUndefined();
    for (const k of Object.keys(env)) expect(passThroughSettings("node-agent")).toContain(k);
    // Only to the agents: no other service reads them.
    expect(serviceEnv("executor", { env, stackId: "s", wiring: wiringFor("executor", wires) })["DOCKER_HOST"]).toBeUndefined();
  });

  it("node-agent state: under the stack dir (removed with it) unless the operator set STATE_DIR, then <STATE_DIR>/<node>", () => {
    const env = { STATE_DIR: "/var/lib/steward" };
    const own = serviceEnv("node-agent", { env: {}, stackId: "s", wiring: wiringFor("node-agent", { ...wires, node: "n1" }) });
    expect(own["STATE_DIR"]).toBe("/stack/node-state/n1");
    const given = { ...wires, stateDir: operatorStateDir(env) };
    const a = serviceEnv("node-agent", { env, stackId: "s", wiring: wiringFor("node-agent", { ...given, node: "n1" }) });
    const b = serviceEnv("node-agent", { env, stackId: "s", wiring: wiringFor("node-agent", { ...given, node: "n2" }) });
    expect([a["STATE_DIR"], b["STATE_DIR"]]).toEqual(["/var/lib/steward/n1", "/var/lib/steward/n2"]);
    expect(operatorStateDir({ STATE_DIR: "rel/state" })).toBe(join(process.cwd(), "rel/state"));
    expect(operatorStateDir({ STATE_DIR: "" })).toBeUndefined();
  });

  it("every service binds port 0 unless the operator asked for an API port", () => {
    for (const svc of UP_SERVICES) {
      const w = wiringFor(svc, wires);
      for (const k of ["HTTP_PORT", "METRICS_PORT"]) if (w[k] !== undefined) expect(w[k], `${svc} ${k}`).toBe("0");
    }
    expect(wiringFor("executor", { ...wires, apiPort: 7070 })["HTTP_PORT"]).toBe("7070");
  });
});

describe("node flags (the observer's bounded heap)", () => {
  it("docker-compose.yml runs each service with the flags `steward up` gives it, and the observer with some", () => {
    const compose = parseYaml(readFileSync(fileURLToPath(new URL("../../docker-compose.yml", import.meta.url)), "utf8")) as { services: Record<string, { command?: unknown }> };
    const checked: string[] = [];
    for (const [name, def] of Object.entries(compose.services)) {
      const command = def.command;
      if (!Array.isArray(command) || !String(command.at(-1)).match(/^services\/[a-z-]+\/dist\/main\.js$/)) continue;
      const svc = UP_SERVICES.find((s) => command.at(-1) === `services/${s}/dist/main.js`);
      expect(svc, `${name}: ${String(command.at(-1))} is not a service steward up runs`).toBeDefined();
      expect(command.slice(0, -1), `${name}'s node flags`).toEqual([...nodeFlagsFor(svc as (typeof UP_SERVICES)[number])]);
      checked.push(name);
    }
    expect(checked).toContain("observer");
    expect(nodeFlagsFor("observer").length).toBeGreaterThan(0);
    expect(nodeFlagsFor("supervisor")).toEqual([]);
  });

  it("this Node.js accepts them (a V8 flag a Node.js upgrade dropped would stop the observer from starting)", () => {
    expect(execFileSync(process.execPath, [...nodeFlagsFor("observer"), "-e", "process.stdout.write('ok')"], { encoding: "utf8" })).toBe("ok");
  });
});

describe("settings", () => {
  it("the pass-through list comes from each service's SETTINGS, minus the wiring, and --help shows it", () => {
    expect(passThroughSettings("supervisor")).toContain("RECHECK_MS");
    expect(passThroughSettings("executor")).toContain("VERIFY_TIMEOUT_MS");
    expect(passThroughSettings("alerter")).toContain("TELEGRAM_BOT_TOKEN");
    expect(passThroughSettings("planner")).toContain("OLLAMA_URL");
    for (const k of ["WORKERS", "CLAUDE_MAX_TOKENS", "CLAUDE_PRICE_INPUT_PER_MTOK", "CLAUDE_PRICE_OUTPUT_PER_MTOK"]) expect(passThroughSettings("planner")).toContain(k);
    for (const svc of UP_SERVICES) for (const k of passThroughSettings(svc)) expect(WIRING.has(k), `${svc} ${k}`).toBe(false);
    const help = renderSettingsHelp();
    for (const k of ["RECHECK_MS", "VERIFY_TIMEOUT_MS", "ESCALATE_WINDOW_MS", "OLLAMA_URL", "STOP_GRACE_MS"]) expect(help).toContain(k);
  });

  it("a bad setting is refused by the service's own parser, naming it (never its value)", () => {
    const wires = placeholderWires("/stack", "/stack/fleet.yaml", 0, true);
    const e = checkSettings("supervisor", serviceEnv("supervisor", { env: { RECHECK_MS: "soon-ish" }, stackId: "s", wiring: wiringFor("supervisor", wires) }));
    expect(e?.message).toMatch(/RECHECK_MS/);
    expect(e?.message).not.toContain("soon-ish");
    expect(checkSettings("supervisor", serviceEnv("supervisor", { env: { RECHECK_MS: "500" }, stackId: "s", wiring: wiringFor("supervisor", wires) }))).toBeUndefined();
  });

  it("the OpenTelemetry variables reach every service, except OTEL_SERVICE_NAME (each keeps steward-<service>); a malformed one is refused before anything starts", () => {
    const wires = placeholderWires("/stack", "/stack/fleet.yaml", 0, true);
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=lab", OTEL_SERVICE_NAME: "one-name-for-all" };
    for (const svc of UP_SERVICES) {
      const e = serviceEnv(svc, { env, stackId: "s", wiring: wiringFor(svc, wires) });
      expect(e).toMatchObject({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=lab" });
      expect(e["OTEL_SERVICE_NAME"]).toBeUndefined();
    }
    const bad = checkSettings("observer", serviceEnv("observer", { env: { OTEL_RESOURCE_ATTRIBUTES: "a=1,oops" }, stackId: "s", wiring: wiringFor("observer", wires) }));
    expect(bad?.message).toMatch(/OTEL_RESOURCE_ATTRIBUTES: entry 2 of 2 is not key=value/);
    expect(bad?.message).not.toContain("oops");
  });

  it("the planner's WORKERS, CLAUDE_MAX_TOKENS and CLAUDE_PRICE_* reach it; WORKERS=0 (an API-only planner) is refused in a stack of one planner", () => {
    const wires = placeholderWires("/stack", "/stack/fleet.yaml", 0, true);
    const env = { WORKERS: "3", CLAUDE_MAX_TOKENS: "4096", CLAUDE_PRICE_INPUT_PER_MTOK: "1.5", CLAUDE_PRICE_OUTPUT_PER_MTOK: "7" };
    const pl = serviceEnv("planner", { env, stackId: "s", wiring: wiringFor("planner", wires) });
    expect(pl).toMatchObject(env);
    expect(checkSettings("planner", pl)).toBeUndefined();
    const zero = checkSettings("planner", serviceEnv("planner", { env: { WORKERS: "0" }, stackId: "s", wiring: wiringFor("planner", wires) }));
    expect(zero?.message).toMatch(/^planner: .*\n {2}WORKERS: is 0/s);
  });
});

describe("one stack per STEWARD_HOME", () => {
  const lock = { pid: 4242, stack_id: "abc", dir: "/tmp/s", started_at: "2026-01-01T00:00:00Z" };
  it.each([
    ["no lock", undefined, false, "take"],
    ["a running stack", lock, true, "refuse"],
    ["a lock whose up is gone", lock, false, "stale"],
    ["a lock being written", "unreadable" as const, false, "refuse"],
  ])("%s", (_name, existing, running, want) => {
    const d = decideClaim("/home/op/.steward", existing, running);
    const got = "refuse" in d ? "refuse" : d.take ? "take" : "stale";
    expect(got).toBe(want);
    if ("refuse" in d && existing !== "unreadable") expect(d.refuse).toMatch(/already running.*pid 4242.*own STEWARD_HOME/s);
  });
});

describe("identity", () => {
  it("nats-server's ports file gives the client URL; a half-written one gives nothing yet", () => {
    expect(natsUrlFromPortsFile(`{"nats":["nats://127.0.0.1:38379"]}`)).toBe("nats://127.0.0.1:38379");
    expect(natsUrlFromPortsFile(`{"nats":["nats://127.0.`)).toBeUndefined();
    expect(natsUrlFromPortsFile("")).toBeUndefined();
  });

  it("the CLI accepts only answers carrying its stack's id", () => {
    const res = (id?: string) => ({ headers: new Headers(id ? { "x-steward-stack": id } : {}) });
    expect(wrongStack(res("s1"), "s1", "http://x")).toBeUndefined();
    expect(wrongStack(res("s2"), "s1", "http://x")).toMatch(/not the stack in the stack file.*for stack s2/);
    expect(wrongStack(res(), "s1", "http://x")).toMatch(/without a stack id/);
    expect(wrongStack(res(), undefined, "http://x")).toBeUndefined();
  });
});

describe("what up prints once the stack runs", () => {
  it("each service's metrics URL is the one it reported (the executor's is on its API port), the planner and console from the running stack", () => {
    const metrics = { observer: "http://127.0.0.1:41001/metrics", planner: "http://127.0.0.1:41002/metrics", executor: "http://127.0.0.1:41003/metrics", supervisor: "http://127.0.0.1:41004/metrics" };
    const text = readyText({ stackId: "s1", apiUrl: "http://127.0.0.1:41003", plannerUrl: "http://127.0.0.1:41002", fleetFile: "/stack/fleet.yaml", dir: "/stack", metrics }, "/home/.steward/stack.json", false);
    for (const [name, u] of Object.entries(metrics)) expect(text).toMatch(new RegExp(`^\\s+(metrics\\s+)?${name} ${u.replace(/[.]/g, "\\.")}$`, "m"));
    expect(text).toMatch(/^ {2}console {5}http:\/\/127\.0\.0\.1:41003\/console /m);
    expect(text).toMatch(/^ {2}planner {5}http:\/\/127\.0\.0\.1:41002 /m);
    // Only the URLs the services reported: no default port of a service run outside `up`.
    expect(text).not.toMatch(/:(7070|7071|9464|9465|9466|9467)\b/);
  });

  it("without a planner the executor is given no PLANNER_URL (the console then hides Tasks & cost) and nothing about a planner is printed", () => {
    const w = { ...placeholderWires("/stack", "/stack/fleet.yaml", 0, false), apiUrl: "http://127.0.0.1:4000" };
    expect(wiringFor("executor", w)["PLANNER_URL"]).toBeUndefined();
    expect(readyText({ stackId: "s1", apiUrl: w.apiUrl, plannerUrl: undefined, fleetFile: "/f", dir: "/d", metrics: {} }, "/s.json", true)).not.toMatch(/planner/);
  });
});
