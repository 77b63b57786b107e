import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { DriftReport } from "@steward/contracts/drift";
import { ActionState, UNSTARTED_ACTION_STATES } from "@steward/contracts/action";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";
import { renderAction, renderActions } from "../src/commands/read.js";
import { table } from "../src/format.js";
import { colorOn } from "../src/color.js";

function capture(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env }, out, err };
}

describe("steward validate", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-cli-"));
    await writeFile(join(dir, "good.yaml"), "version: 1\nnodes:\n  a:\n    services:\n      s:\n        kind: process\n        command: [x]\n");
    await writeFile(join(dir, "bad.yaml"), "version: 1\nnodes:\n  a:\n    services:\n      s:\n        kind: process\n        command: []\n        depends_on: [ghost]\n");
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("exits 0 on a valid spec", async () => {
    const c = capture();
    expect(await runCli(["validate", join(dir, "good.yaml")], c.io)).toBe(0);
    expect(c.out.join("\n")).toMatch(/good\.yaml: ok/);
  });

  it("exits 1 with one file:line:path line per problem", async () => {
    const c = capture();
    const f = join(dir, "bad.yaml");
    expect(await runCli(["validate", f], c.io)).toBe(1);
    const lines = c.err.join("\n").split("\n");
    expect(lines).toContain(`${f}:7:nodes.a.services.s.command: command needs at least the program`);
    expect(lines).toHaveLength(1);
  });

  it("reports an unreadable file", async () => {
    const c = capture();
    expect(await runCli(["validate", join(dir, "nope.yaml")], c.io)).toBe(1);
    expect(c.err.join("\n")).toMatch(/nope\.yaml:\(root\): cannot read: ENOENT/);
  });

  it("--json gives a machine-readable result", async () => {
    const c = capture();
    expect(await runCli(["validate", "--json", join(dir, "bad.yaml"), join(dir, "good.yaml")], c.io)).toBe(1);
    const r = JSON.parse(c.out.join("\n")) as { ok: boolean; results: { ok: boolean }[] };
    expect(r.ok).toBe(false);
    expect(r.results.map((x) => x.ok)).toEqual([false, true]);
  });
});

const composeBin = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"].some((p) => existsSync(p)) || ["/usr/libexec/docker/cli-plugins/docker-compose", "/usr/local/lib/docker/cli-plugins/docker-compose"].some((p) => existsSync(p));

describe.skipIf(!composeBin)("steward validate with Compose's own config (the real binary)", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-cli-compose-"));
    // The checkout is declared relative to the spec: compose paths resolve there, not in the spec's folder.
    await mkdir(join(dir, "deploy"));
    await writeFile(join(dir, "fleet.yaml"), "version: 1\nrepo: { path: deploy }\nnodes:\n  a:\n    services:\n      web:\n        kind: compose\n        files: [compose.yaml]\n        env_file: .env\n");
    await writeFile(join(dir, "deploy", ".env"), "TAG=1.27\nAPI_TOKEN=hunter2-not-shown\n");
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));
  const compose = (text: string) => writeFile(join(dir, "deploy", "compose.yaml"), text);

  it("a key Compose refuses is reported at its line in the compose file, values from the env file never shown", async () => {
    await compose("services:\n  web:\n    image: nginx:${TAG}\n    imagee: hunter2-not-shown\n");
    const bad = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], bad.io)).toBe(1);
    const text = bad.err.join("\n");
    expect(text).toMatch(/deploy\/compose\.yaml:4:services\.web\.imagee: docker[ -]compose \S+ config: .*imagee/);
    expect(text).not.toContain("hunter2-not-shown");
  }, 60_000);

  it("what only Compose applies (networks, ${VAR} from the env file, long ports, devices, deploy.resources) is ok with Compose", async () => {
    await compose(
      "services:\n  web:\n    image: nginx:${TAG}\n    networks: [front]\n    ports:\n      - target: 80\n        published: 8080\n    devices: ['/dev/null:/dev/null']\n    deploy:\n      resources:\n        limits: { cpus: '0.5', memory: 256M }\nnetworks:\n  front: {}\n",
    );
    const good = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], good.io)).toBe(0);
    expect(good.out.join("\n")).toBe(`${join(dir, "fleet.yaml")}: ok`);
  }, 60_000);

  it("a wrong type and bad YAML are placed on their lines; an unset variable is a warning on the line using it", async () => {
    await compose("services:\n  web:\n    image: nginx\n    ports: 80\n");
    const typed = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], typed.io)).toBe(1);
    expect(typed.err.join("\n")).toMatch(/deploy\/compose\.yaml:4:services\.web\.ports: .*config: .*services\.web\.ports contains an invalid type/);

    await compose("services:\n  web:\n    image: nginx\n     ports: [1]\n");
    const yaml = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], yaml.io)).toBe(1);
    expect(yaml.err.join("\n")).toMatch(/deploy\/compose\.yaml:3: YAML: /);

    await compose("services:\n  web:\n    image: nginx:${TAG}\n    environment: [\"MODE=${MODE_UNSET_IN_TEST}\"]\n");
    const unset = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], unset.io)).toBe(0);
    expect(unset.out.join("\n")).toMatch(/deploy\/compose\.yaml:4: warning: \$\{MODE_UNSET_IN_TEST\} is not set/);
  }, 60_000);

  it("--compose-apply engine-api: the nodes have no Compose, so what the Engine-API applier cannot apply is an error", async () => {
    await compose("services:\n  web:\n    image: nginx:${TAG}\n    devices: ['/dev/null:/dev/null']\n");
    const c = capture();
    expect(await runCli(["validate", "--compose-apply", "engine-api", join(dir, "fleet.yaml")], c.io)).toBe(1);
    expect(c.err.join("\n").split("\n")).toEqual([
      expect.stringMatching(/deploy\/compose\.yaml:3:services\.web\.image: variable interpolation/),
      expect.stringMatching(/deploy\/compose\.yaml:4:services\.web\.devices: 'devices' is applied only by Compose/),
    ]);
  }, 60_000);
});

describe("steward validate without a Compose binary", () => {
  let dir = "";
  let path: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "steward-cli-nocompose-"));
    await mkdir(join(dir, "empty-bin"));
    await writeFile(join(dir, "fleet.yaml"), "version: 1\nrepo: { path: . }\nnodes:\n  a:\n    services:\n      web:\n        kind: compose\n        files: [compose.yaml]\n");
    await writeFile(join(dir, "compose.yaml"), "services:\n  web:\n    image: nginx\n    networks: [front]\n    imagee: typo\nnetworks:\n  front: {}\n");
    path = process.env["PATH"];
    process.env["PATH"] = join(dir, "empty-bin"); // neither docker nor docker-compose is found
  });
  afterAll(async () => {
    process.env["PATH"] = path;
    await rm(dir, { recursive: true, force: true });
  });

  it("never says ok while ignoring parts: keys only Compose applies are errors (warnings with --compose-apply cli), a typo always an error", async () => {
    const c = capture();
    expect(await runCli(["validate", join(dir, "fleet.yaml")], c.io)).toBe(1);
    const f = join(dir, "compose.yaml");
    expect(c.err.join("\n").split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${f}:4:services\\.web\\.networks: 'networks' is applied only by Compose.*install Compose`)),
      expect.stringMatching(new RegExp(`^${f}:5:services\\.web\\.imagee: 'imagee' is not a Compose service key$`)),
      expect.stringMatching(new RegExp(`^${f}:6:networks: top-level 'networks'`)),
    ]);
    const cli = capture();
    await writeFile(join(dir, "compose.yaml"), "services:\n  web:\n    image: nginx\n    networks: [front]\nnetworks:\n  front: {}\n");
    expect(await runCli(["validate", "--compose-apply", "cli", join(dir, "fleet.yaml")], cli.io)).toBe(0);
    expect(cli.out.join("\n").split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${f}:4:services\\.web\\.networks: warning: .*not checked: no Compose binary here`)),
      expect.stringMatching(new RegExp(`^${f}:5:networks: warning: `)),
      `${join(dir, "fleet.yaml")}: ok`,
    ]);
  });
});

describe("steward usage errors", () => {
  it("unknown command → exit 2 with usage", async () => {
    const c = capture();
    expect(await runCli(["frobnicate"], c.io)).toBe(2);
    expect(c.err.join("\n")).toMatch(/unknown command 'frobnicate'/);
  });
  it("reject without a reason → exit 2, nothing sent", async () => {
    const c = capture({ STEWARD_API_URL: "http://127.0.0.1:1", STEWARD_TOKEN: "t" });
    expect(await runCli(["reject", "abcd"], c.io)).toBe(2);
    expect(c.err.join("\n")).toMatch(/--reason is required/);
  });
  it("no API configured → a clear error", async () => {
    const c = capture({ STEWARD_HOME: join(tmpdir(), "steward-nowhere-" + process.pid) });
    expect(await runCli(["status"], c.io)).toBe(1);
    expect(c.err.join("\n")).toMatch(/no Steward API configured/);
  });
  it("API unreachable → a clear error, exit 1", async () => {
    const c = capture({ STEWARD_API_URL: "http://127.0.0.1:1", STEWARD_TOKEN: "t" });
    expect(await runCli(["drift"], c.io)).toBe(1);
    expect(c.err.join("\n")).toMatch(/cannot reach the Steward API at http:\/\/127\.0\.0\.1:1/);
  });
});

describe("formatting", () => {
  it("aligns columns", () => {
    expect(table(["A", "BB"], [["xxx", 1], [null, "y"]])).toBe("A    BB\nxxx  1\n-    y");
  });
  // Every state from the contracts: an expiry is shown exactly for those not started yet (the ones that can expire).
  it.each(ActionState.options.map((s) => [s, (UNSTARTED_ACTION_STATES as readonly string[]).includes(s)] as const))("actions show: a %s action shows expires: %s (only while it can still expire)", (state, shown) => {
    const action = { id: "0123456789ab-cdef", node: "n", service: "s", kind: "restart" as const, state, reason: "down", drift_key: null, proposed_by: "sup", diagnosis: null, created_at: "", updated_at: "", expires_at: "2026-01-01T00:05:00.000Z", result: null, traceparent: null };
    expect(renderAction({ action, audit: [] }).includes("expires:")).toBe(shown);
  });
  it("actions show labels the texts a model wrote as unverified", () => {
    const action = { id: "0123456789ab-cdef", node: "n", service: "s", kind: "restart" as const, state: "pending" as const, reason: "db keeps dying", drift_key: null, proposed_by: "planner", diagnosis: "oom", created_at: "", updated_at: "", expires_at: "", result: null, traceparent: null, task_id: "t-1" };
    const shown = renderAction({ action: { ...action, model_written: ["reason", "diagnosis"] }, audit: [] });
    expect(shown).toMatch(/reason \(written by a model, unverified\):\n\s+db keeps dying/);
    expect(shown).toMatch(/diagnosis \(written by a model, unverified\):\n\s+oom/);
    expect(renderAction({ action, audit: [] })).not.toContain("written by a model");
  });
  it("lists actions with short ids", () => {
    const s = renderActions(
      [{ id: "0123456789ab-cdef", node: "n", service: "s", kind: "restart", state: "pending", reason: "down", drift_key: null, proposed_by: "sup", diagnosis: null, created_at: new Date(0).toISOString(), updated_at: "", expires_at: "", result: null, traceparent: null }],
      60_000,
    );
    expect(s).toMatch(/^ID\s+STATE/);
    expect(s).toMatch(/01234567\s+pending\s+restart\s+n\/s\s+1m ago\s+down/);
  });
});

describe("steward drift: --exit-code for scripts, colour on a terminal", () => {
  const report = (drifts: DriftReport["drifts"]): DriftReport => ({ computed_at: new Date().toISOString(), snapshot_written_at: null, world_seq: 7, supervisor_id: "sup", skipped: null, drifts });
  const down: DriftReport["drifts"][number] = { key: "down:n1/web", kind: "down", node: "n1", service: "web", severity: "action", message: "exited", since: null, proposes: "restart" };
  let answer: { status: number; body: unknown } = { status: 200, body: report([]) };
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url !== "/api/drift" || req.headers.authorization !== "Bearer t0ken-for-the-drift-test") return void res.writeHead(404, { "content-type": "application/json" }).end("{}");
      res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  const env = (more: NodeJS.ProcessEnv = {}) => ({ STEWARD_API_URL: url, STEWARD_TOKEN: "t0ken-for-the-drift-test", ...more });

  it.each([
    ["no drift, --exit-code", [], ["--exit-code"], 0],
    ["drift, --exit-code", [down], ["--exit-code"], 1],
    ["drift, --exit-code --json", [down], ["--exit-code", "--json"], 1],
    ["drift without --exit-code", [down], [], 0],
  ] as const)("%s → exit %i", async (_what, drifts, flags, code) => {
    answer = { status: 200, body: report([...drifts]) };
    const c = capture(env());
    expect(await runCli(["drift", ...flags], c.io)).toBe(code);
    expect(c.out.join("\n")).toMatch(drifts.length ? /down|"drifts": \[\n/ : /no drift|"drifts": \[\]/);
  });

  it("an error keeps its own code with --exit-code: the API refusing is 1 with the error said, a bad flag 2", async () => {
    answer = { status: 503, body: { error: { code: "world_unavailable", message: "no drift report yet" } } };
    const c = capture(env());
    expect(await runCli(["drift", "--exit-code"], c.io)).toBe(1);
    expect(c.err.join("\n")).toMatch(/error: /);
    expect(await runCli(["drift", "--exit-code=maybe"], capture(env()).io)).toBe(2);
  });

  it.each([
    ["a terminal", {}, true, true],
    ["not a terminal", {}, false, false],
    ["a terminal with NO_COLOR=1", { NO_COLOR: "1" }, true, false],
    ["a terminal with NO_COLOR empty (unset, per no-color.org)", { NO_COLOR: "" }, true, true],
    ["a terminal with TERM=dumb", { TERM: "dumb" }, true, false],
    ["a pipe with FORCE_COLOR=1", { FORCE_COLOR: "1" }, false, true],
    ["a terminal with FORCE_COLOR=0", { FORCE_COLOR: "0" }, true, false],
    ["FORCE_COLOR=1 beside NO_COLOR=1 (FORCE_COLOR wins, as in Node)", { FORCE_COLOR: "1", NO_COLOR: "1" }, false, true],
  ] as const)("on %s colour is %s", async (_what, more, isTTY, coloured) => {
    expect(colorOn({ env: more, isTTY })).toBe(coloured);
    answer = { status: 200, body: report([down, { ...down, key: "secret_drift:n1/db", kind: "secret_drift", service: "db", severity: "alert", proposes: null }]) };
    const c = capture(env(more));
    expect(await runCli(["drift"], { ...c.io, isTTY })).toBe(0);
    const text = c.out.join("\n");
    // eslint-disable-next-line no-control-regex
    expect(/\u001b\[/.test(text)).toBe(coloured);
    // eslint-disable-next-line no-control-regex
    const plain = text.replace(/\u001b\[[0-9;]*m/g, "");
    expect(plain).toMatch(/^down\s+n1\s+web\s+action\s+restart/m);
    expect(plain).toMatch(/^secret_drift\s+n1\s+db\s+alert\s+-/m);
  });
});
