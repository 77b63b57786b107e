import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_SERVICE } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { gitSync } from "@steward/testkit";
import { runCli } from "../src/cli.js";
import { planFromDrifts } from "../src/commands/plan.js";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: {} }, out, err };
}

let dir = "";
async function files(root: string, fs: Record<string, string>): Promise<void> {
  for (const [p, c] of Object.entries(fs)) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), c);
  }
}

/** A fixture repo: fleet.yaml plus files, in its own directory (a git repo, so .gitignore counts). */
async function fixture(name: string, fleet: string, fs: Record<string, string> = {}): Promise<string> {
  const root = join(dir, name);
  await files(root, { "fleet.yaml": fleet, ...fs });
  gitSync(root, "init", "--quiet");
  return join(root, "fleet.yaml");
}

const COMPOSE = "services:\n  web:\n    image: nginx\n";
const incident = [
  "version: 1",
  "repo: { path: . }",
  "nodes:",
  "  web1:",
  "    services:",
  "      proxy:",
  "        kind: compose",
  "        files: [stacks/proxy/compose.yml, stacks/proxy/.env]",
  "        env: { ADMIN_PASSWORD: hunter2 }",
  "        health:",
  "          - { type: http, url: 'http://127.0.0.1:8080/', via: [dashboard] }",
  "      dashboard:",
  "        kind: compose",
  "        files: [stacks/dashboard/compose.yml]",
  "        env_file: stacks/dashboard/.env",
  "        depends_on: [proxy]",
  "",
].join("\n");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-cli-validate-"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("steward validate against the repo", () => {
  it("reports every rule's problem as file:line:path lines, never the inline secret, and exits 1", async () => {
    const f = await fixture("incident", incident, {
      "stacks/proxy/compose.yml": COMPOSE,
      "stacks/proxy/.env": "TOKEN=abc\n",
      "stacks/dashboard/compose.yml": COMPOSE,
      ".gitignore": "",
    });
    const c = capture();
    expect(await runCli(["validate", f], c.io)).toBe(1);
    const lines = c.err.join("\n").split("\n");
    expect(lines).toEqual([
      `${f}:8:nodes.web1.services.proxy.files.1: 'stacks/proxy/.env' is not a compose file: it has no top-level 'services:' map (it is not a YAML mapping); an env file belongs in env_file or a secret store`,
      `${f}:9:nodes.web1.services.proxy.env.ADMIN_PASSWORD: 'ADMIN_PASSWORD' looks like a secret and has an inline value; reference it instead: ADMIN_PASSWORD: { secret: <name> } (the value is not shown)`,
      `${f}:15:nodes.web1.services.dashboard.env_file: env file 'stacks/dashboard/.env' does not exist in the repo`,
      `${f}:16:nodes.web1.services.dashboard.depends_on.0: cycle in start order and health gates on node 'web1': dashboard -[depends_on]-> proxy -[health gate]-> dashboard (none of them can ever become ready)`,
    ]);
    expect(c.err.join("\n")).not.toContain("hunter2");
  });

  it("a git-ignored env file is a warning; exit 0", async () => {
    const f = await fixture("ignored", "version: 1\nrepo: { path: . }\nnodes:\n  web1:\n    services:\n      app:\n        kind: compose\n        files: [compose.yml]\n        env_file: .env\n", {
      "compose.yml": COMPOSE,
      ".gitignore": ".env\n",
    });
    const c = capture();
    expect(await runCli(["validate", f], c.io)).toBe(0);
    expect(c.out.join("\n").split("\n")).toEqual([`${f}:9:nodes.web1.services.app.env_file: warning: env file '.env' is not in the repo (git-ignored): it must be created on each node`, `${f}: ok`]);
  });

  it("compose paths resolve against the spec's declared repo path (from its directory, as the node-agent does), or --repo", async () => {
    const root = join(dir, "split");
    const spec = (repo: string, nodeRepo = "") => `version: 1\nrepo: { path: ${repo} }\nnodes:\n  a:\n${nodeRepo}    services:\n      s: { kind: compose, files: [deploy/compose.yml] }\n`;
    await files(root, { "deploy/compose.yml": COMPOSE, "ops/fleet.yaml": spec("/srv/deploy"), "ops/relative.yaml": spec(".."), "ops/per-node.yaml": spec("/srv/deploy", "    repo_path: ..\n"), "ops/wrong.yaml": spec(".") });
    // An absolute checkout on the nodes is not here: said once, at the line that declares it.
    const c = capture();
    expect(await runCli(["validate", join(root, "ops/fleet.yaml")], c.io)).toBe(1);
    expect(c.err.join("\n").split("\n")).toEqual([`${join(root, "ops/fleet.yaml")}:2:repo.path: deploy checkout '/srv/deploy' (/srv/deploy) is not here, so its files cannot be checked: run in a checkout of the repo with --repo DIR`]);
    expect(await runCli(["validate", join(root, "ops/fleet.yaml"), "--repo", root], capture().io)).toBe(0);
    // A relative one resolves from the spec's directory, not the spec's directory itself; a node's repo_path wins.
    expect(await runCli(["validate", join(root, "ops/relative.yaml")], capture().io)).toBe(0);
    expect(await runCli(["validate", join(root, "ops/per-node.yaml")], capture().io)).toBe(0);
    const wrong = capture();
    expect(await runCli(["validate", join(root, "ops/wrong.yaml")], wrong.io)).toBe(1);
    expect(wrong.err.join("\n")).toMatch(/ops\/wrong\.yaml:6:nodes\.a\.services\.s\.files\.0: compose file 'deploy\/compose\.yml' does not exist in the repo/);
    const gone = capture();
    expect(await runCli(["validate", join(root, "ops/relative.yaml"), "--repo", join(root, "nope")], gone.io)).toBe(1);
    expect(gone.err.join("\n")).toMatch(/--repo .*nope is not a directory/);
  });

  it("--format github prints workflow annotations on stdout", async () => {
    const f = await fixture("github", "version: 1\nnodes:\n  a:\n    services:\n      s: { kind: process, command: [x], env: { API_TOKEN: 'abc,def' } }\n");
    const c = capture();
    expect(await runCli(["validate", "--format", "github", f], c.io)).toBe(1);
    expect(c.out.join("\n")).toBe(
      `::error file=${f},line=5,title=steward validate (secret_inline)::nodes.a.services.s.env.API_TOKEN: 'API_TOKEN' looks like a secret and has an inline value; reference it instead: API_TOKEN: { secret: <name> } (the value is not shown)`,
    );
    expect(await runCli(["validate", "--format", "yaml", f], capture().io)).toBe(2);
  });

  it("--json carries severity and rule", async () => {
    const f = await fixture("json", "version: 1\nnodes:\n  a:\n    services:\n      s: { kind: process, command: [x], depends_on: [t] }\n      t: { kind: process, command: [x], depends_on: [s] }\n");
    const c = capture();
    expect(await runCli(["validate", "--json", f], c.io)).toBe(1);
    const r = JSON.parse(c.out.join("")) as { ok: boolean; results: { problems: { rule: string; severity: string; message: string }[] }[] };
    expect(r.results[0]?.problems).toEqual([expect.objectContaining({ rule: "cycle", severity: "error", message: expect.stringMatching(/s -\[depends_on\]-> t -\[depends_on\]-> s/) as unknown })]);
  });
});

describe("steward plan", () => {
  const T = "2026-01-01T00:00:00.000Z";
  const svc = (name: string, over: Record<string, unknown> = {}) => ({ name, state: "running", health: "healthy", starts: 1, declared: true, since: T, updated_at: T, checks: {}, last_event_id: `e-${name}`, ...over });
  const snapshot: Snapshot = {
    world: {
      version: 1,
      last_seq: 42,
      events_applied: 42,
      event_time: T,
      nodes: {
        web1: {
          name: "web1", status: "up", last_heartbeat: T, heartbeat_interval_ms: 5000, agent_started_at: T, dropped_events: 0, host: null,
          services: { api: svc("api", { state: "exited", starts: 2, exit_code: 1 }) as never, stray: svc("stray") as never },
          repo: { path: "/srv/deploy", branch: "main", head: "a".repeat(40), remote_head: "b".repeat(40), behind: 1, ahead: 0, dirty: [], colliding_untracked: ["x.yml"], ignored_count: 1, error: null, at: T },
        },
      },
    },
    written_at: T,
    observer_id: "o",
  };
  const fleet = "version: 1\nrepo: { path: /srv/deploy }\nnodes:\n  web1:\n    services:\n      api: { kind: process, command: [x] }\n      worker: { kind: process, command: [x] }\n  web2:\n    services:\n      api: { kind: process, command: [x] }\n";

  it("prints what the supervisor would do against a saved snapshot, as of when it was written; exit 0", async () => {
    const root = join(dir, "plan");
    await files(root, { "fleet.yaml": fleet, "snap.json": JSON.stringify(snapshot) });
    const c = capture();
    expect(await runCli(["plan", join(root, "fleet.yaml"), "--snapshot", join(root, "snap.json")], c.io)).toBe(0);
    const text = c.out.join("\n");
    expect(text).toMatch(/1 create, 1 restart, 1 pull, 1 alert, 1 report/);
    expect(text).toMatch(/create\s+start\s+web1\/worker\s+missing/);
    expect(text).toMatch(/restart\s+restart\s+web1\/api\s+down/);
    expect(text).toMatch(new RegExp(`pull\\s+pull\\s+web1/${REPO_SERVICE}\\s+repo_drift\\s+.*x\\.yml`));
    expect(text).toMatch(/alert\s+-\s+web2\/api\s+unknown/);
    expect(text).toMatch(/report\s+-\s+web1\/stray\s+unmanaged/);

    const j = capture();
    expect(await runCli(["plan", join(root, "fleet.yaml"), "--snapshot", join(root, "snap.json"), "--json"], j.io)).toBe(0);
    const plan = JSON.parse(j.out.join("")) as { summary: Record<string, number>; items: { verb: string }[]; snapshot: { world_seq: number } };
    expect(plan.summary).toEqual({ create: 1, restart: 1, redeploy: 0, pull: 1, alert: 1, report: 1 });
    expect(plan.snapshot.world_seq).toBe(42);
    expect(plan.items.map((i) => i.verb)).toEqual(["create", "restart", "pull", "alert", "report"]);
  });

  it("--now later than --max-age: everything unknown, nothing would be done", async () => {
    const root = join(dir, "plan");
    const c = capture();
    expect(await runCli(["plan", join(root, "fleet.yaml"), "--snapshot", join(root, "snap.json"), "--now", "2026-01-01T01:00:00Z", "--json"], c.io)).toBe(0);
    const plan = JSON.parse(c.out.join("")) as { items: { verb: string }[] };
    expect(new Set(plan.items.map((i) => i.verb))).toEqual(new Set(["alert"]));
  });

  it("an unreadable snapshot or an invalid spec is exit 1 with the reason", async () => {
    const root = join(dir, "plan");
    const c = capture();
    expect(await runCli(["plan", join(root, "fleet.yaml"), "--snapshot", join(root, "nope.json")], c.io)).toBe(1);
    expect(c.err.join("\n")).toMatch(/nope\.json: cannot read: ENOENT/);
    await writeFile(join(root, "bad.yaml"), "version: 2\n");
    const b = capture();
    expect(await runCli(["plan", join(root, "bad.yaml"), "--snapshot", join(root, "snap.json")], b.io)).toBe(1);
    expect(b.err.join("\n")).toMatch(/supervisor would skip its cycles \(spec_invalid\)/);
  });

  it("maps drifts to verbs: a never-deployed stack is created, a changed one redeployed", () => {
    const d = (kind: string, proposes: string | null, severity = "action") => ({ key: `${kind}:n/s`, kind, node: "n", service: "s", severity, message: "", since: null, proposes }) as never;
    expect(planFromDrifts([d("missing", "deploy"), d("config_drift", "deploy"), d("secret_drift", null, "alert")]).items.map((i) => i.verb)).toEqual(["create", "redeploy", "alert"]);
  });
});
