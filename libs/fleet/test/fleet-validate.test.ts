import { describe, expect, it } from "vitest";
import { findLabeledCycle, formatCycle, hasUrlPassword, looksLikeSecretKey, notComposeReason, validateFleetSpec, type RepoFileRead, type RepoFiles } from "@steward/fleet/fleet-validate";

const COMPOSE = "services:\n  web:\n    image: nginx\n";

/** An in-memory repo: path → content; `ignored` paths are git-ignored and absent. */
function repo(files: Record<string, string>, ignored: string[] = [], dirs: string[] = []): RepoFiles {
  return {
    read(p): RepoFileRead {
      if (dirs.includes(p)) return { ok: false, reason: "not_a_file" };
      const text = files[p];
      return text === undefined ? { ok: false, reason: "missing", ignored: ignored.includes(p) } : { ok: true, text };
    },
  };
}

/** A spec as JSON (which is YAML) with one node `web1`. */
function spec(services: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ version: 1, repo: { path: "/srv/deploy" }, nodes: { web1: { services } }, ...extra }, null, 2);
}

const proc = (extra: Record<string, unknown> = {}) => ({ kind: "process", command: ["x"], ...extra });
const compose = (files: string[], extra: Record<string, unknown> = {}) => ({ kind: "compose", files, ...extra });
const check = (via: string[]) => ({ type: "tcp", port: 80, via });

interface Case {
  name: string;
  text: string;
  files?: RepoFiles;
  /** Expected problems as `severity rule path` plus a message fragment; [] means valid. */
  want: { severity?: "error" | "warning"; rule: string; path: string; message: RegExp }[];
}

const cases: Case[] = [
  { name: "a valid fleet with compose, process, secrets", text: spec({ app: compose(["stacks/app/compose.yml"], { env: { DB_PASSWORD: { secret: "db" } } }), worker: proc({ depends_on: ["app"] }) }, { secrets: { db: { stores: [{ type: "service_env", node: "web1", service: "app", key: "DB_PASSWORD" }] } } }), files: repo({ "stacks/app/compose.yml": COMPOSE }), want: [] },
  // schema
  { name: "schema problems are reported with their path", text: spec({ a: proc({ command: [] }) }), want: [{ rule: "schema", path: "nodes.web1.services.a.command", message: /at least the program/ }] },
  // files exist
  { name: "a missing compose file", text: spec({ app: compose(["stacks/app/compose.yml"]) }), files: repo({}), want: [{ rule: "file_exists", path: "nodes.web1.services.app.files.0", message: /compose file 'stacks\/app\/compose.yml' does not exist in the repo/ }] },
  { name: "a compose file outside the repo", text: spec({ app: compose(["../other/compose.yml"]) }), files: repo({}), want: [{ rule: "file_exists", path: "nodes.web1.services.app.files.0", message: /relative to the repo root/ }] },
  { name: "a compose file that is a directory", text: spec({ app: compose(["stacks/app"]) }), files: repo({}, [], ["stacks/app"]), want: [{ rule: "file_exists", path: "nodes.web1.services.app.files.0", message: /is not a file/ }] },
  { name: "an env_file that is neither in the repo nor ignored", text: spec({ app: compose(["c.yml"], { env_file: "stacks/app/.env" }) }), files: repo({ "c.yml": COMPOSE }), want: [{ rule: "file_exists", path: "nodes.web1.services.app.env_file", message: /env file 'stacks\/app\/.env' does not exist/ }] },
  { name: "a git-ignored env_file is a warning only", text: spec({ app: compose(["c.yml"], { env_file: "stacks/app/.env" }) }), files: repo({ "c.yml": COMPOSE }, ["stacks/app/.env"]), want: [{ severity: "warning", rule: "file_exists", path: "nodes.web1.services.app.env_file", message: /git-ignored/ }] },
  { name: "an env_file secret store with a relative path must exist", text: spec({ a: proc() }, { secrets: { db: { stores: [{ type: "env_file", node: "web1", path: "stacks/app/.env", key: "DB_PASSWORD" }] } } }), files: repo({}), want: [{ rule: "file_exists", path: "secrets.db.stores.0.path", message: /does not exist/ }] },
  { name: "an env_file secret store with an absolute path is on the node, not in the repo", text: spec({ a: proc() }, { secrets: { db: { stores: [{ type: "env_file", node: "web1", path: "/etc/app/.env", key: "DB_PASSWORD" }] } } }), files: repo({}), want: [] },
  // compose files only
  { name: "a .env in the compose file list", text: spec({ app: compose(["c.yml", "stacks/app/.env"]) }), files: repo({ "c.yml": COMPOSE, "stacks/app/.env": "DB_PASSWORD=hunter2\n" }), want: [{ rule: "compose_file", path: "nodes.web1.services.app.files.1", message: /'stacks\/app\/.env' is not a compose file: .*no top-level 'services:' map.*env file belongs in env_file/ }] },
  { name: "a README in the compose file list", text: spec({ app: compose(["c.yml", "README.md"]) }), files: repo({ "c.yml": COMPOSE, "README.md": "# App\n\nRun it: `docker compose up`\n" }), want: [{ rule: "compose_file", path: "nodes.web1.services.app.files.1", message: /'README.md' is not a compose file/ }] },
  { name: "a YAML file without services", text: spec({ app: compose(["c.yml"]) }), files: repo({ "c.yml": "version: '3'\nvolumes: {}\n" }), want: [{ rule: "compose_file", path: "nodes.web1.services.app.files.0", message: /no top-level 'services:' map/ }] },
  { name: "a compose file listed twice", text: spec({ app: compose(["c.yml", "c.yml"]) }), files: repo({ "c.yml": COMPOSE }), want: [{ rule: "compose_file", path: "nodes.web1.services.app.files.1", message: /listed twice/ }] },
  { name: "compose without any deploy checkout", text: JSON.stringify({ version: 1, nodes: { web1: { services: { app: compose(["c.yml"]) } } } }), files: repo({ "c.yml": COMPOSE }), want: [{ rule: "placement", path: "nodes.web1.services.app.files", message: /declare 'repo'/ }] },
  // placement
  { name: "depends_on an undeclared service", text: spec({ a: proc({ depends_on: ["ghost"] }) }), want: [{ rule: "placement", path: "nodes.web1.services.a.depends_on.0", message: /'ghost', which is not declared on node 'web1'/ }] },
  { name: "a health check via an undeclared service", text: spec({ a: proc({ health: [check(["ghost"])] }) }), want: [{ rule: "placement", path: "nodes.web1.services.a.health.0.via.0", message: /goes through 'ghost'/ }] },
  { name: "a secret store on an undeclared node", text: spec({ a: proc() }, { secrets: { db: { stores: [{ type: "file", node: "db9", path: "/run/secrets/db" }] } } }), want: [{ rule: "placement", path: "secrets.db.stores.0.node", message: /node 'db9', which is not declared/ }] },
  { name: "a service_env store naming a service not on that node", text: spec({ a: proc() }, { secrets: { db: { stores: [{ type: "service_env", node: "web1", service: "api", key: "K" }] } } }), want: [{ rule: "placement", path: "secrets.db.stores.0.service", message: /environment of 'api', which is not declared on node 'web1'/ }] },
  { name: "a reference to an undeclared secret", text: spec({ a: proc({ env: { DB_PASSWORD: { secret: "nope" } } }) }), want: [{ rule: "placement", path: "nodes.web1.services.a.env.DB_PASSWORD", message: /secret 'nope', which is not declared/ }] },
  // secrets only as references
  { name: "an inline password", text: spec({ a: proc({ env: { DB_PASSWORD: "hunter2" } }) }), want: [{ rule: "secret_inline", path: "nodes.web1.services.a.env.DB_PASSWORD", message: /looks like a secret and has an inline value/ }] },
  { name: "an inline API key in a compose env", text: spec({ app: compose(["c.yml"], { env: { STRIPE_API_KEY: "sk_live_123" } }) }), files: repo({ "c.yml": COMPOSE }), want: [{ rule: "secret_inline", path: "nodes.web1.services.app.env.STRIPE_API_KEY", message: /inline value/ }] },
  { name: "a URL with a password inline", text: spec({ a: proc({ env: { DATABASE_URL: "postgres://app:hunter2@db/app" } }) }), want: [{ rule: "secret_inline", path: "nodes.web1.services.a.env.DATABASE_URL", message: /URL with an inline password/ }] },
  { name: "non-secret settings next to secret words are fine", text: spec({ a: proc({ env: { TOKEN_TTL: "3600", DB_PASSWORD_FILE: "/run/secrets/db", DATABASE_URL: "postgres://db/app", LOG_LEVEL: "info" } }) }), want: [] },
  // one graph of start-order and health-gate edges
  { name: "a proxy whose health gate waits for a dashboard ordered after it", text: spec({ proxy: proc({ health: [check(["dashboard"])] }), dashboard: proc({ depends_on: ["proxy"] }) }), want: [{ rule: "cycle", path: "nodes.web1.services.dashboard.depends_on.0", message: /dashboard -\[depends_on\]-> proxy -\[health gate\]-> dashboard/ }] },
  { name: "a depends_on-only cycle is reported once", text: spec({ a: proc({ depends_on: ["b"] }), b: proc({ depends_on: ["a"] }) }), want: [{ rule: "cycle", path: "nodes.web1.services.a.depends_on.0", message: /a -\[depends_on\]-> b -\[depends_on\]-> a/ }] },
  { name: "a health gate in the same direction as depends_on is no cycle", text: spec({ proxy: proc({ depends_on: ["dashboard"], health: [check(["dashboard"])] }), dashboard: proc() }), want: [] },
  { name: "a health check via its own service", text: spec({ a: proc({ health: [check(["a"])] }) }), want: [{ rule: "placement", path: "nodes.web1.services.a.health.0.via.0", message: /its own service/ }] },
];

describe("validateFleetSpec rules", () => {
  it.each(cases)("$name", ({ text, files, want }) => {
    const r = validateFleetSpec(text, "fleet.yaml", files ?? repo({}));
    const got = r.problems.map((p) => ({ severity: p.severity, rule: p.rule, path: p.path, message: p.message }));
    expect(got).toHaveLength(want.length);
    want.forEach((w, i) => {
      expect(got[i]).toMatchObject({ severity: w.severity ?? "error", rule: w.rule, path: w.path });
      expect(got[i]?.message).toMatch(w.message);
    });
    expect(r.ok).toBe(!want.some((w) => (w.severity ?? "error") === "error"));
    // Secrets never echo: no inline value from any case appears in any message.
    for (const p of r.problems) expect(p.message).not.toMatch(/hunter2|sk_live_123/);
  });

  it("points problems at the line of their path", () => {
    const text = ["version: 1", "repo: { path: /srv/deploy }", "nodes:", "  web1:", "    services:", "      app:", "        kind: compose", "        files:", "          - c.yml", "          - .env"].join("\n");
    const r = validateFleetSpec(text, "fleet.yaml", repo({ "c.yml": COMPOSE, ".env": "A=b\n" }));
    expect(r.problems).toEqual([expect.objectContaining({ file: "fleet.yaml", line: 10, path: "nodes.web1.services.app.files.1" })]);
  });

  it("keeps the spec when only repo rules fail", () => {
    const r = validateFleetSpec(spec({ a: proc({ depends_on: ["b"] }), b: proc({ depends_on: ["a"] }) }), "f", repo({}));
    expect(r.ok).toBe(false);
    expect(r.spec?.nodes["web1"]).toBeDefined();
  });
});

describe("rule helpers", () => {
  it.each([
    ["DB_PASSWORD", true], ["POSTGRES_PASSWORD", true], ["GITHUB_TOKEN", true], ["API_KEY", true], ["OPENAI_APIKEY", true], ["JWT_SECRET", true], ["SECRET_KEY_BASE", true],
    ["SSH_PRIVATE_KEY", true], ["AWS_SECRET_ACCESS_KEY", true], ["SMTP_PASS", true], ["TOKEN_TTL", false], ["DB_PASSWORD_FILE", false], ["LOG_LEVEL", false], ["PORT", false], ["PASSAGE", false],
  ])("looksLikeSecretKey(%s) = %s", (key, want) => expect(looksLikeSecretKey(key)).toBe(want));

  it.each([
    ["postgres://app:pw@db/app", true], ["redis://:pw@cache:6379", true], ["https://example.com/a:b@c", false], ["postgres://db/app", false], ["amqp://u:p@mq", true],
  ])("hasUrlPassword(%s) = %s", (v, want) => expect(hasUrlPassword(v)).toBe(want));

  it.each([
    [COMPOSE, undefined], ["services: {}\n", undefined], ["services:\n", /no top-level/], ["A=b\nC=d\n", /not a YAML mapping/], ["- a\n- b\n", /not a YAML mapping/], ["services: [\n", /not valid YAML \(line/],
  ])("notComposeReason(%j)", (text, want) => {
    const r = notComposeReason(text);
    if (want === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(want);
  });

  it("labels each edge of a cycle", () => {
    const c = findLabeledCycle({ proxy: [{ to: "dashboard", kind: "via" }], dashboard: [{ to: "proxy", kind: "depends_on" }] });
    expect(c && formatCycle(c)).toBe("dashboard -[depends_on]-> proxy -[health gate]-> dashboard");
    expect(findLabeledCycle({ a: [{ to: "b", kind: "via" }], b: [] })).toBeUndefined();
  });
});
