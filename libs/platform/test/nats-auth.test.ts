import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { createAccount } from "@nats-io/nkeys";
import { NATS_COMPONENTS, natsInboxPrefix, natsPermissions } from "@steward/contracts/nats-permissions";
import { DRIFT_HEADER_KEY, EVENTS_STREAM, WORLD_BUCKET, WORLD_HEADER_KEY, commandSubject, containerInspectSubject, dlqSubject, driftNodeKey, eventSubject, logTailSubject, worldNodeKey } from "@steward/contracts/subjects";
import { ConfigError } from "../src/config.js";
import { natsAuthFromEnv, natsCaFileFromEnv, newNatsUserKey, planNatsUsers, renderNatsAuthorization, type NatsKeyPair } from "../src/nats-auth.js";

/** NATS subject matching: `*` one token, `>` one or more at the end. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

const key = (name: string): NatsKeyPair => ({ publicKey: `U${name.toUpperCase().replace(/[^A-Z0-9]/g, "X").padEnd(55, "A")}`, seed: `seed-of-${name}` });
const users = planNatsUsers(["a", "b"], NATS_COMPONENTS, key);
const pub = (subject: string) => users.filter((u) => u.permissions.publish.some((p) => matches(p, subject))).map((u) => u.name).sort();
const sub = (subject: string) => users.filter((u) => u.permissions.subscribe.some((p) => matches(p, subject))).map((u) => u.name).sort();
const kv = (k: string) => `$KV.${WORLD_BUCKET}.${k}`;

describe("NATS permissions derived from the contracts' subjects", () => {
  it("one user per node and per component, in that order, named for the config's comments", () => {
    expect(users.map((u) => u.name)).toEqual(["node.a", "node.b", ...NATS_COMPONENTS]);
    expect(planNatsUsers(["a", "a"], ["cli", "cli"], key).map((u) => u.name)).toEqual(["node.a", "cli"]);
  });

  it.each([
    // [what, subject, who may publish it]
    ["node a's events", eventSubject("a", "heartbeat"), ["node.a"]],
    ["node b's events", eventSubject("b", "service"), ["node.b"]],
    ["a command to a", commandSubject("a"), ["executor"]],
    ["a log tail request to b", logTailSubject("b"), ["planner"]],
    ["a container inspect request to b", containerInspectSubject("b"), ["planner"]],
    ["a world node record", kv(worldNodeKey("a")), ["observer"]],
    ["the world header", kv(WORLD_HEADER_KEY), ["observer"]],
    ["the legacy world key", kv("world"), ["observer"]],
    ["a drift record", kv(driftNodeKey("a")), ["supervisor"]],
    ["the drift header", kv(DRIFT_HEADER_KEY), ["supervisor"]],
    ["the observer's DLQ", dlqSubject("observer"), ["observer"]],
    ["creating the events stream", `$JS.API.STREAM.CREATE.${EVENTS_STREAM}`, ["observer"]],
    ["deleting the events stream", `$JS.API.STREAM.DELETE.${EVENTS_STREAM}`, []],
    ["purging the events stream", `$JS.API.STREAM.PURGE.${EVENTS_STREAM}`, []],
    ["deleting the world bucket", `$JS.API.STREAM.DELETE.KV_${WORLD_BUCKET}`, []],
    ["deleting a message", `$JS.API.STREAM.MSG.DELETE.${EVENTS_STREAM}`, []],
    ["deleting the observer's durable", `$JS.API.CONSUMER.DELETE.${EVENTS_STREAM}.observer`, ["observer"]],
    ["acking the observer's deliveries", `$JS.ACK.${EVENTS_STREAM}.observer.1.2.3.4.5`, ["observer"]],
    ["reading the world bucket", `$JS.API.DIRECT.GET.KV_${WORLD_BUCKET}.$KV.${WORLD_BUCKET}.world.header`, ["alerter", "cli", "executor", "observer", "planner", "supervisor"]],
    ["a world watch's flow control", `$JS.FC.KV_${WORLD_BUCKET}.oc_x_1.abc`, ["alerter", "cli", "executor", "observer", "planner", "supervisor"]],
    ["flow control of the events stream", `$JS.FC.${EVENTS_STREAM}.oc_x_1.abc`, []],
    ["the server's own subjects", "$SYS.REQ.SERVER.PING", []],
  ])("publish %s (%s): only %j", (_what, subject, who) => {
    expect(pub(subject)).toEqual([...who].sort());
  });

  it.each([
    ["node a's commands", commandSubject("a"), ["node.a"]],
    ["node b's log tail requests", logTailSubject("b"), ["node.b"]],
    ["node b's container inspect requests", containerInspectSubject("b"), ["node.b"]],
    ["every node's container inspect requests", containerInspectSubject("*"), []],
    ["every node's commands", commandSubject("*"), []],
    ["every event", eventSubject("a", "heartbeat"), []],
    ["node b's inbox", `${natsInboxPrefix(key("node.b").publicKey)}.x`, ["node.b"]],
    ["the executor's inbox", `${natsInboxPrefix(key("executor").publicKey)}.x`, ["executor"]],
    ["anyone's inbox", "_INBOX.x", []],
  ])("subscribe %s (%s): only %j", (_what, subject, who) => {
    expect(sub(subject)).toEqual([...who].sort());
  });

  it("answering requests it did not ask for: the nodes (commands, log tails, container inspects) and the alerter (recent alerts) only", () => {
    expect(users.filter((u) => u.permissions.allowResponses).map((u) => u.name)).toEqual(["node.a", "node.b", "alerter"]);
  });

  it("a node name that is not a subject token is refused", () => {
    expect(() => natsPermissions({ kind: "node", node: "a.>" }, key("x").publicKey)).toThrow(/subject token/);
  });
});

describe("the server config", () => {
  const work = mkdtemp(join(tmpdir(), "steward-nats-auth-conf-"));
  afterAll(async () => rm(await work, { recursive: true, force: true }));

  it("holds public keys only, and the real nats-server accepts it", async () => {
    const real = planNatsUsers(["a", "b"], NATS_COMPONENTS, () => newNatsUserKey());
    const text = renderNatsAuthorization(real);
    for (const u of real) {
      expect(text).toContain(u.publicKey);
      expect(text).not.toContain(u.seed);
      expect(text).toContain(`# ${u.name}`);
    }
    const dir = await work;
    await writeFile(join(dir, "auth.conf"), text);
    await writeFile(join(dir, "server.conf"), `listen: 127.0.0.1:4222\ninclude ./auth.conf\n`);
    const out = await promisify(execFile)(process.env["NATS_SERVER_BIN"] ?? "nats-server", ["-t", "-c", join(dir, "server.conf")]);
    expect(out.stdout + out.stderr).toMatch(/configuration file .* is valid|test is successful/i);
  });
});

describe("a process's seed from its environment", () => {
  const real = newNatsUserKey();
  const fail = (env: Record<string, string>): ConfigError => {
    try {
      natsAuthFromEnv(env);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).not.toContain(real.seed);
      return err as ConfigError;
    }
    throw new Error("expected a ConfigError");
  };

  it("none set: no identity (an open server)", () => {
    expect(natsAuthFromEnv({})).toBeUndefined();
  });

  it("the value or a file: the seed and its public key", async () => {
    expect(natsAuthFromEnv({ NATS_NKEY_SEED: real.seed })).toEqual(real);
    const dir = await mkdtemp(join(tmpdir(), "steward-seed-"));
    await writeFile(join(dir, "seed"), `${real.seed}\n`, { mode: 0o600 });
    expect(natsAuthFromEnv({ NATS_NKEY_SEED_FILE: join(dir, "seed") })).toEqual(real);
    await rm(dir, { recursive: true });
  });

  it.each([
    ["an empty file setting", { NATS_NKEY_SEED_FILE: "" }, "NATS_NKEY_SEED_FILE", /empty/],
    ["a missing file", { NATS_NKEY_SEED_FILE: "/nonexistent/seed" }, "NATS_NKEY_SEED_FILE", /cannot be read \(ENOENT\)/],
    ["an empty value", { NATS_NKEY_SEED: "" }, "NATS_NKEY_SEED", /placeholder/],
    ["a placeholder", { NATS_NKEY_SEED: "changeme" }, "NATS_NKEY_SEED", /placeholder/],
    ["not a seed (a bad checksum)", { NATS_NKEY_SEED: "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORZBU" }, "NATS_NKEY_SEED", /not an nkey seed/],
    ["the NATS documentation's example seed", { NATS_NKEY_SEED: "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU" }, "NATS_NKEY_SEED", /published example/],
    ["an account's seed", { NATS_NKEY_SEED: new TextDecoder().decode(createAccount().getSeed()) }, "NATS_NKEY_SEED", /not a user's/],
    ["a public key", { NATS_NKEY_SEED: real.publicKey }, "NATS_NKEY_SEED", /not an nkey seed/],
  ])("%s refuses to start, naming the setting", (_what, env, setting, message) => {
    const e = fail(env);
    expect(e.problems[0]!.setting).toBe(setting);
    expect(e.problems[0]!.message).toMatch(message);
  });
});

describe("the NATS CA file from the environment", () => {
  it("unset: none; a PEM certificate file: its path; empty, missing or not a certificate: a ConfigError naming NATS_CA_FILE", async () => {
    expect(natsCaFileFromEnv({})).toBeUndefined();
    const dir = await mkdtemp(join(tmpdir(), "steward-ca-"));
    await writeFile(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    await writeFile(join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n");
    expect(natsCaFileFromEnv({ NATS_CA_FILE: join(dir, "ca.pem") })).toBe(join(dir, "ca.pem"));
    for (const [value, message] of [["", /empty/], [join(dir, "none.pem"), /ENOENT/], [join(dir, "key.pem"), /no PEM certificate/]] as const) {
      try {
        natsCaFileFromEnv({ NATS_CA_FILE: value });
        throw new Error("expected a ConfigError");
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).problems[0]).toMatchObject({ setting: "NATS_CA_FILE", message: expect.stringMatching(message) });
      }
    }
    await rm(dir, { recursive: true });
  });
});
