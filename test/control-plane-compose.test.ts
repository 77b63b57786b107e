/**
 * The control plane's own docker-compose.yml and Dockerfile on a real Docker Engine (Debian's dockerd 20.10 the test
 * starts, no registry): base images made from this machine's binaries (support/host-images.ts) under the names the
 * files use, the steward image built from the Dockerfile by Compose, `up -d` with a `.env` as docs/deploy.md writes it
 * (generated secrets holding '/', '+' and '='), then:
 *
 * - NATS with auth and TLS on, as docs/deploy.md sets it up: `steward keys nats` (the built CLI) writes the users
 *   file and the seeds, `steward keys tls` the CA and the servers' certificate (clients and cluster routes), the
 *   services' seeds are given to the image's `node` user (uid 1000), each service mounts its own and the CA;
 * - every container healthy by its own healthcheck (NATS cluster, PostgreSQL, five Steward services);
 * - a node-agent on the host, pointed at the published NATS ports with its own seed as docs/deploy.md says, shows up
 *   in `steward status --json` asked through the published executor port;
 * - on a published NATS port: a plaintext client is refused (TLS only), a TLS client that does not trust the CA is
 *   refused, one with the CA but no credentials is refused, one with the CA and a seed works; a service whose seed
 *   file or certificate is missing is refused by Compose itself (the container is not created);
 * - the supervisor, the alerter and the console (executor) each hold their own narrow planner token: asked from inside
 *   each container with the token it was given, the planner answers 403 naming that component's credential on a route
 *   its role lacks, and the bootstrap admin token (the planner's own) is given to no component;
 * - the observer's snapshot is in its named volume, written by the image's `node` user.
 *
 * Test-only differences, each in the override file below: the host's nats-server is 2.9, so the NATS configs are
 * mounted without the one 2.10 setting (`sync_interval`); the image build runs on the host network (the test's
 * dockerd has no default bridge); and the Steward services' healthchecks may take 60 s instead of 5 (a loaded test
 * machine starts node slowly).
 *
 * Needs root, dockerd, Compose and `npm run build` first (the node-agent and CLI run from dist).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { generateSigningKey } from "@steward/contracts/command-keys";
import { readFileSync, statSync } from "node:fs";
import { chown, copyFile, mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Snapshot } from "@steward/contracts/world-state";
import { connectNats } from "@steward/platform/bus";
import { natsAuthFromEnv } from "@steward/platform/nats-auth";
import { dockerdUnavailable, freePort, startDockerd, stopProcess, unlessExited, waitFor, type Dockerd } from "@steward/testkit";
import { importNatsImage, importNodeBuildImage, importNodeSlimImage, importPostgresImage } from "./support/host-images.js";
import { spawnService, type ServiceProcess } from "./support/service-process.js";
import { ALL_SERVICES, COMPOSE_FILE, STEWARD_SERVICES, composeFile } from "./support/compose-file.js";

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PROJECT = "stwcp";

/** `docker compose` (v2) where present, else `docker-compose` (v1); undefined when neither runs. */
async function findCompose(): Promise<string[] | undefined> {
  for (const cmd of [["docker", "compose"], ["docker-compose"]]) {
    const ok = await run(cmd[0]!, [...cmd.slice(1), "version"]).then(() => true, () => false);
    if (ok) return cmd;
  }
  return undefined;
}

/** A secret as `openssl rand -base64 32` makes it, made sure to hold the characters a URL cannot carry raw. */
const base64Secret = () => `a/b+c${randomBytes(24).toString("base64")}=`;

const skip = dockerdUnavailable();
if (skip) console.warn(`control-plane compose on a live dockerd skipped: ${skip}`);

describe.skipIf(skip)("the control plane's compose file on a live dockerd", () => {
  let dockerd: Dockerd | undefined;
  let compose: string[] = [];
  let dir = "";
  let agent: ServiceProcess | undefined;
  const ports = { nats: [0, 0, 0], executor: 0 };
  const token = base64Secret();
  const fleetKey = base64Secret();
  const commandKeys = generateSigningKey();
  const started = Date.now();
  const timings: Record<string, number> = {};
  const mark = (what: string) => (timings[what] = Math.round((Date.now() - started) / 100) / 10);

  // docker-compose 1.x gives up on an engine call after 60 s, and creating a container on the vfs driver copies the
  // whole image: on a loaded machine that alone took longer (a clean-clone run beside two busy jobs).
  const env = () => ({ ...process.env, DOCKER_HOST: dockerd?.host ?? "", COMPOSE_HTTP_TIMEOUT: "300" });
  /** Compose on the test's engine, with the test's .env and override; a failure carries the tail of what it printed. */
  const dc = (args: string[], timeout = 300_000) =>
    run(compose[0]!, [...compose.slice(1), "-p", PROJECT, "-f", COMPOSE_FILE, "-f", join(dir, "override.json"), "--env-file", join(dir, ".env"), ...args], { env: env(), cwd: ROOT, timeout, maxBuffer: 32 << 20 }).catch(
      (err: Error & { stdout?: string }) => {
        throw new Error(`${err.message}\n${(err.stdout ?? "").slice(-4000)}`);
      },
    );
  const docker = (args: string[]) => run("docker", args, { env: env(), maxBuffer: 32 << 20 });

  /** Each service's health as the engine reports it (`healthy`, `starting`, `unhealthy`, or the state when not running). */
  async function health(): Promise<Record<string, string>> {
    const ids = (await dc(["ps", "-q"])).stdout.split("\n").filter(Boolean);
    if (ids.length === 0) return {};
    const out = (await docker(["inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}', ...ids])).stdout;
    return Object.fromEntries(out.trim().split("\n").map((l) => { const [svc, state, h] = l.split(" "); return [svc, state === "running" ? (h || "no-healthcheck") : state ?? "?"]; }));
  }

  beforeAll(async () => {
    const found = await findCompose();
    if (!found) throw new Error("no Compose on this machine: install docker-compose (Debian) or the docker compose plugin");
    compose = found;
    dir = await mkdtemp(join(tmpdir(), "stw-control-plane-"));
    dockerd = await startDockerd();
    mark("dockerd up");
    await Promise.all([importNodeSlimImage(dockerd.host), importNodeBuildImage(dockerd.host), importNatsImage(dockerd.host), importPostgresImage(dockerd.host)]);
    mark("base images imported");

    // The fleet repo the supervisor, planner and executor read: one node, the host this test runs a node-agent on.
    const repo = join(dir, "fleet-repo");
    await mkdir(repo);
    await writeFile(join(repo, "fleet.yaml"), "version: 1\nfleet: compose-test\nnodes:\n  cp-host:\n    services: {}\n");

    // The NATS identities, as docs/deploy.md makes them: the CLI writes them (seeds 0600, as whoever runs it: root
    // here), then the services' seeds are given to the image's `node` user (uid 1000), which must read them.
    await run(process.execPath, [join(ROOT, "cli", "dist", "main.js"), "keys", "nats", "--out", join(dir, "nats-keys"), "--fleet", join(repo, "fleet.yaml")], { timeout: 60_000 });
    for (const s of STEWARD_SERVICES) await chown(join(dir, "nats-keys", "seeds", `${s}.nk`), 1000, 1000);
    await run(process.execPath, [join(ROOT, "cli", "dist", "main.js"), "keys", "tls", "--out", join(dir, "nats-keys")], { timeout: 60_000 });

    ports.nats = [await freePort(), await freePort(), await freePort()];
    ports.executor = await freePort();
    // One variable a line, as docs/deploy.md writes it.
    await writeFile(join(dir, ".env"), [
      `POSTGRES_PASSWORD=${base64Secret()}`,
      `STEWARD_API_TOKEN=${token}`,
      `STEWARD_ALERTER_TOKEN=${base64Secret()}`,
      `STEWARD_PLANNER_TOKEN=${base64Secret()}`,
      `STEWARD_SUPERVISOR_PLANNER_TOKEN=${base64Secret()}`,
      `STEWARD_ALERTER_PLANNER_TOKEN=${base64Secret()}`,
      `STEWARD_CONSOLE_PLANNER_TOKEN=${base64Secret()}`,
      `STEWARD_EXECUTOR_SIGNING_KEY=${commandKeys.privateKey}`,
      `FLEET_REPO=${repo}`,
      `STEWARD_NATS_KEYS=${join(dir, "nats-keys")}`,
      `STEWARD_PUBLIC_URL=http://127.0.0.1:${ports.executor}`,
      "NTFY_URL=http://127.0.0.1:9",
      `NTFY_TOPIC=steward-${randomBytes(6).toString("hex")}`,
      "STEWARD_BIND=127.0.0.1",
      `NATS_PORT_1=${ports.nats[0]}`,
      `NATS_PORT_2=${ports.nats[1]}`,
      `NATS_PORT_3=${ports.nats[2]}`,
      `EXECUTOR_PORT=${ports.executor}`,
      "",
    ].join("\n"));

    // nats-server 2.9 here refuses `sync_interval` (2.10+): mount the same configs without that line.
    const override: { services: Record<string, unknown> } = { services: {} };
    for (const i of [1, 2, 3]) {
      const conf = readFileSync(join(ROOT, `infra/nats/nats-cluster-${i}.conf`), "utf8").replace(/^\s*sync_interval:.*$/m, "");
      await writeFile(join(dir, `nats-${i}.conf`), conf);
      override.services[`nats-${i}`] = { volumes: [`${join(dir, `nats-${i}.conf`)}:/etc/nats/nats.conf:ro`] };
    }
    // A healthcheck is `node -e fetch(...)`: on a 2-core machine shared by several test suites (load 30 seen) node
    // alone takes longer to start than the file's 5 s timeout, so the check times out while the service is fine.
    for (const s of STEWARD_SERVICES) override.services[s] = { build: { context: ROOT, network: "host" }, healthcheck: { ...composeFile.services[s]!.healthcheck, timeout: "60s" } };
    await writeFile(join(dir, "override.json"), JSON.stringify(override, null, 2));

    await dc(["build"], 600_000);
    mark("steward image built");
    await dc(["up", "-d"], 600_000);
    mark("compose up -d returned");
  }, 900_000);

  afterAll(async () => {
    if (agent) await stopProcess(agent.child, 10_000);
    if (dockerd && dir) await dc(["down", "-t", "2"], 120_000).catch(() => undefined);
    await dockerd?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    console.log(`control-plane compose timings (s since start): ${JSON.stringify(timings)}`);
  }, 180_000);

  it("brings every service up healthy by its own healthcheck", async () => {
    let last: Record<string, string> = {};
    await waitFor("every control-plane container healthy", async () => {
      last = await health();
      return ALL_SERVICES.every((s) => last[s] === "healthy");
    }, 240_000, 1000).catch(async (err: Error) => {
      const logs = (await dc(["logs", "--tail", "30"]).catch((e: Error) => ({ stdout: e.message }))).stdout;
      throw new Error(`${err.message}: ${JSON.stringify(last)}\n${logs}`);
    });
    mark("all healthy");
  }, 300_000);

  it("answers `steward status` through the published executor port, with a host's node-agent reaching the published NATS", async () => {
    agent = spawnService("node-agent", {
      NODE_NAME: "cp-host",
      NATS_URL: ports.nats.map((p) => `nats://127.0.0.1:${p}`).join(","),
      NATS_NKEY_SEED_FILE: join(dir, "nats-keys", "seeds", "node.cp-host.nk"),
      NATS_CA_FILE: join(dir, "nats-keys", "tls", "ca.pem"),
      FLEET_SPEC: join(dir, "fleet-repo", "fleet.yaml"),
      FLEET_KEY: fleetKey,
      NODE_COMMAND_PUBLIC_KEY: commandKeys.publicKey,
      HEARTBEAT_MS: "1000",
      METRICS_PORT: "0",
      STATE_DIR: join(dir, "agent-state"),
      LOG_DIR: join(dir, "agent-logs"),
    });
    const cli = join(ROOT, "cli", "dist", "main.js");
    const cliEnv = { ...process.env, STEWARD_API_URL: `http://127.0.0.1:${ports.executor}`, STEWARD_TOKEN: token, STEWARD_HOME: join(dir, "steward-home") };
    let last = "";
    await waitFor("the node-agent's node in `steward status --json`", async () => {
      const r = await run(process.execPath, [cli, "status", "--json"], { env: cliEnv, timeout: 20_000 }).catch((e: Error & { stdout?: string; stderr?: string }) => ({ stdout: "", stderr: `${e.message} ${e.stderr ?? ""}` }));
      last = r.stdout || r.stderr;
      if (!r.stdout) return false;
      const snap = Snapshot.parse(JSON.parse(r.stdout));
      return snap.world.nodes["cp-host"]?.status === "up";
    }, 120_000, 1000, unlessExited(agent)).catch((err: Error) => {
      throw new Error(`${err.message}\nlast answer: ${last.slice(0, 2000)}\nagent: ${agent?.output.slice(-2000)}`);
    });
    mark("status answered");
  }, 180_000);

  it("lets the observer write its snapshot into its named volume", async () => {
    const mountpoint = (await docker(["volume", "inspect", "--format", "{{.Mountpoint}}", `${PROJECT}_observer`])).stdout.trim();
    const file = join(mountpoint, "world.json");
    await waitFor("a snapshot naming cp-host in the observer's volume", async () => {
      try {
        return Snapshot.parse(JSON.parse(readFileSync(file, "utf8"))).world.nodes["cp-host"] !== undefined;
      } catch {
        return false;
      }
    }, 60_000, 500);
    // Written by the image's `node` user (1000), into the directory the Dockerfile made for it.
    expect(statSync(mountpoint).uid).toBe(1000);
    expect(statSync(file).uid).toBe(1000);
  }, 90_000);

  /** Connects to a published NATS port with these options; the error when refused, undefined once a round trip worked. */
  const tryNats = (name: string, opts: Parameters<typeof connectNats>[2], auth: Parameters<typeof connectNats>[3]) =>
    connectNats(`nats://127.0.0.1:${ports.nats[0]}`, name, { reconnect: false, maxReconnectAttempts: 0, timeout: 20_000, ...opts }, auth).then(
      async (nc) => {
        try {
          await nc.rtt();
          return undefined;
        } finally {
          await nc.close();
        }
      },
      (e: Error) => e,
    );

  it("refuses a plaintext client on a published NATS port: the server asks for TLS and closes on plaintext", async () => {
    const { info, rest, closed } = await new Promise<{ info: string; rest: string; closed: boolean }>((res) => {
      const sock = tcpConnect(ports.nats[0]!, "127.0.0.1");
      let text = "";
      let sent = false;
      const timer = setTimeout(() => {
        sock.destroy();
        res({ info: text.split("\r\n")[0] ?? "", rest: text.split("\r\n").slice(1).join("\r\n"), closed: false });
      }, 30_000);
      sock.on("data", (d) => {
        text += d.toString("latin1");
        // What a plaintext client sends after the server's INFO: its CONNECT and a PING.
        if (!sent && text.includes("\r\n")) {
          sent = true;
          sock.write('CONNECT {"verbose":false,"pedantic":false,"name":"plaintext"}\r\nPING\r\n');
        }
      });
      sock.on("error", () => undefined);
      sock.on("close", () => {
        clearTimeout(timer);
        res({ info: text.split("\r\n")[0] ?? "", rest: text.split("\r\n").slice(1).join("\r\n"), closed: true });
      });
    });
    expect(info).toMatch(/^INFO /);
    expect(JSON.parse(info.slice(5)) as { tls_required?: boolean }).toMatchObject({ tls_required: true });
    expect(rest).not.toContain("PONG");
    expect(closed).toBe(true);
  }, 60_000);

  it("refuses a TLS client that does not trust the installation's CA (the system's CAs do not vouch for it)", async () => {
    const err = await tryNats("untrusting", { tls: {} }, natsAuthFromEnv({ NATS_NKEY_SEED_FILE: join(dir, "nats-keys", "seeds", "cli.nk") }));
    expect(err?.message).toMatch(/certificate/i);
  }, 60_000);

  it("refuses a client with the CA but without credentials, and lets one with the CA and a seed work", async () => {
    const tls = { caFile: join(dir, "nats-keys", "tls", "ca.pem") };
    const anonymous = await tryNats("anonymous", { tls }, null);
    expect(anonymous?.message).toMatch(/authorization/i);
    const cli = await tryNats("cli", { tls }, natsAuthFromEnv({ NATS_NKEY_SEED_FILE: join(dir, "nats-keys", "seeds", "cli.nk") }));
    expect(cli).toBeUndefined();
  }, 60_000);

  /** Inside a running service's container: the planner's answers (status and body) to `calls`, with the token in `tokenEnv`. */
  async function askPlanner(service: string, tokenEnv: string, calls: [method: string, path: string][]): Promise<[number, string][]> {
    const script = `const calls = ${JSON.stringify(calls)};
Promise.all(calls.map(([method, path]) => fetch("http://planner:7071" + path, { method, headers: { authorization: "Bearer " + process.env.${tokenEnv}, "content-type": "application/json" }, body: method === "POST" ? "{}" : undefined })
  .then(async (r) => [r.status, await r.text()]))).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(String(e)); process.exit(1); });`;
    const out = (await dc(["exec", "-T", service, "node", "-e", script], 120_000)).stdout.trim().split("\n").pop() ?? "";
    return JSON.parse(out) as [number, string][];
  }

  it("gives the supervisor, the alerter and the console their own planner tokens: each refused where its role does not reach", async () => {
    // The planner's own bootstrap token reads incidents: the refusals below are the roles', not a broken planner.
    const [admin] = await askPlanner("planner", "API_TOKEN", [["GET", "/incidents"]]);
    expect(admin![0], admin![1]).toBe(200);
    // The alerter may read cost (its rules) but not the incidents list.
    const [alerterIncidents, alerterCost] = await askPlanner("alerter", "PLANNER_TOKEN", [["GET", "/incidents"], ["GET", "/cost"]]);
    expect(alerterIncidents![0], alerterIncidents![1]).toBe(403);
    expect(alerterIncidents![1]).toContain("credential 'alerter' (role alerter) may not read");
    expect(alerterCost![0], alerterCost![1]).toBe(200);
    // The supervisor only files escalations: it reads nothing.
    const [supervisorCost] = await askPlanner("supervisor", "PLANNER_TOKEN", [["GET", "/cost"]]);
    expect(supervisorCost![0], supervisorCost![1]).toBe(403);
    expect(supervisorCost![1]).toContain("credential 'supervisor' (role supervisor)");
    // The console (the executor's PLANNER_TOKEN) reads tasks but drafts no post-mortem.
    const [consoleTasks, consolePostmortem] = await askPlanner("executor", "PLANNER_TOKEN", [["GET", "/tasks"], ["POST", "/incidents/inc-none/postmortem"]]);
    expect(consoleTasks![0], consoleTasks![1]).toBe(200);
    expect(consolePostmortem![0], consolePostmortem![1]).toBe(403);
    expect(consolePostmortem![1]).toContain("credential 'console' (role console)");
  }, 300_000);

  /** Compose in a project of its own, with STEWARD_NATS_KEYS pointed elsewhere (the shell's environment overrides .env). */
  const otherKeys = (keys: string) => {
    const args = [...compose.slice(1), "-p", `${PROJECT}keys`, "-f", COMPOSE_FILE, "-f", join(dir, "override.json"), "--env-file", join(dir, ".env")];
    const opts = { env: { ...env(), STEWARD_NATS_KEYS: keys }, cwd: ROOT, timeout: 320_000, maxBuffer: 32 << 20 };
    return {
      dc: (more: string[]) => run(compose[0]!, [...args, ...more], opts).then(
        (r) => ({ ok: true, text: r.stdout + r.stderr }),
        (e: Error & { stdout?: string; stderr?: string }) => ({ ok: false, text: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
      ),
    };
  };

  it("refuses to create a service whose seed file is missing (Compose fails, naming the path)", async () => {
    // Only the seed is missing: the engine checks a container's binds in no fixed order, so with the CA missing too
    // either path could be the one named.
    const empty = await mkdtemp(join(dir, "no-keys-"));
    await mkdir(join(empty, "tls"));
    await copyFile(join(dir, "nats-keys", "tls", "ca.pem"), join(empty, "tls", "ca.pem"));
    const other = otherKeys(empty);
    const out = await other.dc(["up", "--no-start", "--no-deps", "observer"]);
    await other.dc(["down"]);
    expect(out.ok, out.text).toBe(false);
    expect(out.text).toContain(join(empty, "seeds", "observer.nk"));
  }, 180_000);

  it("refuses to create a NATS server or a service when the TLS files are missing (Compose fails, naming the path)", async () => {
    // The users file and the observer's seed are there; `steward keys tls` was not run.
    const keys = await mkdtemp(join(dir, "no-tls-"));
    await mkdir(join(keys, "seeds"));
    await copyFile(join(dir, "nats-keys", "nats-users.conf"), join(keys, "nats-users.conf"));
    await copyFile(join(dir, "nats-keys", "seeds", "observer.nk"), join(keys, "seeds", "observer.nk"));
    const other = otherKeys(keys);
    try {
      const observer = await other.dc(["up", "--no-start", "--no-deps", "observer"]);
      expect(observer.ok, observer.text).toBe(false);
      expect(observer.text).toContain(join(keys, "tls", "ca.pem"));
      const nats = await other.dc(["up", "--no-start", "--no-deps", "nats-1"]);
      expect(nats.ok, nats.text).toBe(false);
      expect(nats.text).toContain(`${join(keys, "tls")}/`);
    } finally {
      await other.dc(["down"]);
    }
  }, 180_000);

  it("shows a service that cannot read its seed (not given to uid 1000) exiting 2, naming NATS_NKEY_SEED_FILE, never the seed", async () => {
    const keys = await mkdtemp(join(dir, "root-keys-"));
    await mkdir(join(keys, "seeds"));
    const seed = readFileSync(join(dir, "nats-keys", "seeds", "observer.nk"), "utf8");
    await writeFile(join(keys, "seeds", "observer.nk"), seed, { mode: 0o600 }); // root's, as the CLI leaves it
    await mkdir(join(keys, "tls"));
    await copyFile(join(dir, "nats-keys", "tls", "ca.pem"), join(keys, "tls", "ca.pem"));
    const other = otherKeys(keys);
    try {
      const up = await other.dc(["up", "-d", "--no-deps", "observer"]);
      expect(up.ok, up.text).toBe(true);
      let logs = "";
      let exits = "";
      await waitFor("the observer exiting 2 with a message naming its seed setting", async () => {
        logs = (await other.dc(["logs", "--no-color", "observer"])).text;
        const id = (await other.dc(["ps", "-q", "observer"])).text.trim();
        // Its exit codes so far, from the engine's `die` events: it restarts at once, so on a loaded machine an
        // inspect mostly catches it running again (exit code 0).
        exits = id ? (await docker(["events", "--since", "0", "--until", String(Math.floor(Date.now() / 1000)), "--filter", `container=${id}`, "--filter", "event=die", "--format", '{{index .Actor.Attributes "exitCode"}}'])).stdout.trim() : "";
        return logs.includes("NATS_NKEY_SEED_FILE") && exits.split("\n").includes("2");
      }, 90_000, 1000).catch((err: Error) => {
        throw new Error(`${err.message}: exit codes ${JSON.stringify(exits)}\n${logs.slice(-2000)}`);
      });
      expect(exits.split("\n").every((c) => c === "2"), exits).toBe(true);
      expect(logs).toMatch(/NATS_NKEY_SEED_FILE.*cannot be read \(EACCES\)/);
      expect(logs).not.toContain(seed.trim());
    } finally {
      await other.dc(["down", "-t", "2"]);
    }
  }, 480_000);

  it("logged no permission violation on any NATS server but the readers' first-start race on creating the world store", async () => {
    const logs = (await dc(["logs", "--no-color", "nats-1", "nats-2", "nats-3"])).stdout;
    // A reader (executor, supervisor, planner, alerter) that opens the world store before the observer has created
    // it asks to create it and is refused (only the observer may); it waits for the observer (docs/deploy.md).
    // Any other violation is a permission the deployment lacks.
    const violations = logs.split("\n").filter((l) => / Violation/.test(l) && !/authentication error/.test(l));
    expect(violations.filter((l) => !/Publish Violation .*Subject "\$JS\.API\.STREAM\.CREATE\.KV_steward_world"/.test(l)).slice(0, 5)).toEqual([]);
    // The anonymous client above (with the CA, over TLS) was refused by the server itself.
    expect(logs).toMatch(/"[^"]*:anonymous" - authentication error/);
    const ids = (await dc(["ps", "-q"])).stdout.split("\n").filter(Boolean);
    const restarts = (await docker(["inspect", "--format", '{{index .Config.Labels "com.docker.compose.service"}}={{.RestartCount}}', ...ids])).stdout.trim().split("\n");
    console.log(`control-plane compose: world-store create refusals ${violations.length}; restarts ${restarts.join(" ")}`);
    // Waiting for the observer, no reader exits on a fresh deploy (each crashed once before it waited).
    expect(restarts.filter((r) => !r.endsWith("=0"))).toEqual([]);
  }, 60_000);
});
