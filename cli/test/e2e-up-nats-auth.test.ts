/**
 * `steward up` runs its nats-server with auth and TLS on (issue 13): every service and node-agent is its own nkey
 * user with the generated permissions, over TLS checked against the stack's own CA. The demo fleet works end to end (heartbeats, drift, an approved start on a node), the
 * server refuses a client without credentials, the seeds are 0600, and the server logs no permission violation.
 */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { Snapshot } from "@steward/contracts/world-state";
import { connectNats } from "@steward/platform/bus";
import { natsAuthFromEnv } from "@steward/platform/nats-auth";
import { ApiUnreachable } from "@steward/platform/http-client";
import { waitFor } from "@steward/testkit";
import { StackFile } from "../src/stack-file.js";
import { readWorldDirect } from "../src/world-direct.js";
import { runSteward, startUp, type RunningUp } from "./steward-process.js";

let home = "";
let dir = "";
let up: RunningUp | undefined;
const steward = <T = unknown>(...args: string[]) => runSteward<T>(home, args);
const natsLog = () => readFile(join(dir, "logs", "nats-server.log"), "utf8");

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "steward-e2e-nats-auth-"));
  dir = join(home, "stack");
  up = await startUp(home, ["--dir", dir, "--keep", "--heartbeat-ms", "500", "--api-port", "0"]);
}, 120_000);

afterAll(async () => {
  await up?.stop();
  await rm(home, { recursive: true, force: true });
}, 60_000);

describe("steward up: NATS with auth on", () => {
  it("runs nats-server with the generated nkey users, one per node and component", async () => {
    const conf = await readFile(join(dir, "nats", "nats-server.conf"), "utf8");
    expect(conf).toMatch(/include ".*nats-users\.conf"/);
    const users = await readFile(join(dir, "nats", "keys", "nats-users.conf"), "utf8");
    for (const name of ["node.demo-a", "node.demo-b", "observer", "supervisor", "executor", "planner", "alerter", "cli"]) expect(users).toContain(`# ${name}\n`);
    const seeds = await readdir(join(dir, "nats", "keys", "seeds"));
    expect(seeds).toHaveLength(8);
    for (const s of seeds) expect((await stat(join(dir, "nats", "keys", "seeds", s))).mode & 0o777).toBe(0o600);
    expect(up!.output()).toMatch(/nkey users: 8/);
    expect(up!.output()).not.toMatch(/\bSU[A-Z2-7]{50,}/);
  });

  it("requires TLS with the stack's own CA, and refuses a client without credentials", async () => {
    const stack = StackFile.parse(JSON.parse(await readFile(join(home, "stack.json"), "utf8")));
    expect(stack.nats_seed_file).toMatch(/cli\.nk$/);
    expect(stack.nats_url).toMatch(/^tls:\/\/127\.0\.0\.1:\d+$/);
    const opts = { reconnect: false, maxReconnectAttempts: 0, timeout: 5000 };
    const tls = { tls: { caFile: stack.nats_ca_file! } };
    const cli = natsAuthFromEnv({ NATS_NKEY_SEED_FILE: stack.nats_seed_file! })!;
    // The right seed, but the server's certificate is not trusted without the stack's CA.
    await expect(connectNats(stack.nats_url, "no-ca", { ...opts, tls: {} }, cli)).rejects.toThrow(/certificate|self[- ]signed|tls/i);
    await expect(connectNats(stack.nats_url, "anonymous", { ...opts, ...tls }, null)).rejects.toThrow(/authorization/i);
    const nc = await connectNats(stack.nats_url, "cli-with-ca", { ...opts, ...tls }, cli);
    expect(nc.info?.tls_required).toBe(true);
    await nc.close();
    expect((await stat(join(dir, "nats", "tls", "server.key"))).mode & 0o777).toBe(0o600);
    await expect(stat(join(dir, "nats", "tls", "ca.key"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("the demo fleet works: both nodes report, a declared-never-started service is started on approval", async () => {
    await waitFor("both nodes up", () => {
      const w = steward<Snapshot>("status", "--json").json;
      return w?.world.nodes["demo-a"]?.last_heartbeat && w.world.nodes["demo-b"]?.last_heartbeat;
    }, 60_000, 300);
    const start = await waitFor("pending start", () => steward<{ actions: Action[] }>("actions", "--json").json?.actions.find((a) => a.node === "demo-b" && a.service === "reports" && a.state === "pending"), 60_000, 300);
    expect(steward("approve", start.id.slice(0, 8)).code).toBe(0);
    await waitFor("reports healthy", () => steward<Snapshot>("status", "--json").json?.world.nodes["demo-b"]?.services["reports"]?.health === "healthy", 60_000, 300);
  });

  it("the CLI reads the world straight from NATS as its own identity (the stack file's seed)", async () => {
    const r = await readWorldDirect({ STEWARD_HOME: home }, new ApiUnreachable("http://127.0.0.1:1", "test", "not asked"));
    expect(Object.keys(r.value.world.nodes).sort()).toEqual(["demo-a", "demo-b"]);
  });

  it("a stack file naming a seed that is gone: the direct read fails saying so, naming no seed", async () => {
    const other = await mkdtemp(join(tmpdir(), "steward-e2e-nats-auth-home-"));
    const stack = StackFile.parse(JSON.parse(await readFile(join(home, "stack.json"), "utf8")));
    await writeFile(join(other, "stack.json"), JSON.stringify({ ...stack, nats_seed_file: join(other, "gone.nk") }));
    const err = await readWorldDirect({ STEWARD_HOME: other }, new ApiUnreachable("http://127.0.0.1:1", "test", "the API is down")).catch((e: unknown) => e as Error);
    expect(String(err)).toMatch(/the API is down; and the world store cannot be read as this CLI's NATS identity: NATS_NKEY_SEED_FILE: cannot be read \(ENOENT\)/);
    await rm(other, { recursive: true, force: true });
  });

  it("no service ran into a permission violation", async () => {
    const log = await natsLog();
    expect(log).toMatch(/Server is ready/);
    // The anonymous client above is an authentication error, not a violation.
    expect(log).toMatch(/authentication error/);
    expect(log.split("\n").filter((l) => /Violation/.test(l))).toEqual([]);
  });
});
