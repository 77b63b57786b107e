import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gitSync } from "@steward/testkit";
import { diffSpecs, HIDDEN, renderSpecChanges } from "../src/spec-diff.js";
import { checkCall, fleetSpecDiffTool, type ToolContext } from "../src/tools.js";

const svc = (extra: Record<string, unknown> = {}) => ({ kind: "process", command: "run", env: { DB_URL: "postgres://u:hunter2@db/app", LOG_LEVEL: "info" }, ...extra });
const spec = (api: Record<string, unknown> = svc()) => ({ version: 1, nodes: { n1: { services: { api } } } });

describe("diffSpecs: what a commit changed in the declared spec, values of env and secrets hidden", () => {
  const cases: { name: string; before: unknown; after: unknown; lines: string[] }[] = [
    { name: "nothing", before: spec(), after: spec(), lines: [] },
    { name: "a field changed", before: spec(svc({ command: "run" })), after: spec(svc({ command: "run --pool 50" })), lines: ['~ nodes.n1.services.api.command: "run" -> "run --pool 50"'] },
    { name: "an env value changed: named, its values hidden", before: spec(), after: spec(svc({ env: { DB_URL: "postgres://u:swordfish@db/app", LOG_LEVEL: "info" } })), lines: [`~ nodes.n1.services.api.env.DB_URL: "${HIDDEN}" -> "${HIDDEN}"`] },
    { name: "an env variable added and one removed", before: spec(), after: spec(svc({ env: { DB_URL: "postgres://u:hunter2@db/app", NEW_FLAG: "on" } })), lines: ["- nodes.n1.services.api.env.LOG_LEVEL (was \"(value hidden)\")", `+ nodes.n1.services.api.env.NEW_FLAG: "${HIDDEN}"`] },
    { name: "a secret reference is a name and is shown", before: spec(), after: spec(svc({ env: { DB_URL: { secret: "db_url" }, LOG_LEVEL: "info" } })), lines: [`~ nodes.n1.services.api.env.DB_URL: "${HIDDEN}" -> {"secret":"db_url"}`] },
    { name: "a service added: its env values hidden inside", before: { version: 1, nodes: { n1: { services: {} } } }, after: spec(), lines: [`+ nodes.n1.services.api: {"kind":"process","command":"run","env":{"DB_URL":"${HIDDEN}","LOG_LEVEL":"${HIDDEN}"}}`] },
    { name: "the first commit: everything added", before: {}, after: { version: 1 }, lines: ["+ version: 1"] },
    { name: "a secret-looking key outside env", before: spec(svc({ api_token: "abc" })), after: spec(svc({ api_token: "def" })), lines: [`~ nodes.n1.services.api.api_token: "${HIDDEN}" -> "${HIDDEN}"`] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = renderSpecChanges(diffSpecs(c.before, c.after));
      expect(out).toBe(c.lines.length ? c.lines.join("\n") : "no change to the declared spec");
      expect(out).not.toMatch(/hunter2|swordfish|"abc"|"def"|"on"/);
    });
  }
});

describe("the fleet_spec_diff tool on a real git repo", () => {
  it("shows a commit's change to fleet.yaml against its parent, hides env values, and refuses a bad commit", async () => {
    const repo = await mkdtemp(join(tmpdir(), "steward-spec-diff-"));
    try {
      const file = join(repo, "fleet.yaml");
      const yaml = (pool: string, password: string) =>
        `version: 1\nnodes:\n  n1:\n    services:\n      api:\n        kind: process\n        command: ["api", "--pool", "${pool}"]\n        env:\n          DB_PASSWORD: "${password}"\n`;
      gitSync(repo, "init", "-q");
      await writeFile(file, yaml("10", "hunter2"));
      gitSync(repo, "add", ".");
      gitSync(repo, "commit", "-q", "-m", "first");
      await writeFile(file, yaml("50", "swordfish"));
      gitSync(repo, "commit", "-q", "-am", "api: raise the pool");
      const head = gitSync(repo, "rev-parse", "--short", "HEAD").trim();
      const first = gitSync(repo, "rev-list", "--max-parents=0", "HEAD").trim().slice(0, 7);
      const tool = fleetSpecDiffTool(file);
      const ctx = { signal: new AbortController().signal } as ToolContext;
      const out = String(await tool.run({ commit: head }, ctx));
      expect(out).toBe(`~ nodes.n1.services.api.command: ["api","--pool","10"] -> ["api","--pool","50"]\n~ nodes.n1.services.api.env.DB_PASSWORD: "${HIDDEN}" -> "${HIDDEN}"`);
      const root = String(await tool.run({ commit: first }, ctx));
      expect(root).toMatch(/^\+ nodes: /m);
      for (const o of [out, root]) expect(o).not.toMatch(/hunter2|swordfish/);
      await expect(tool.run({ commit: "deadbeef" }, ctx)).rejects.toThrow(/git show failed/);
      expect(checkCall([tool], "fleet_spec_diff", { commit: "HEAD; rm -rf /" })).toMatchObject({ ok: false, reason: expect.stringMatching(/commit: must be a commit hash/) });
    } finally {
      await rm(repo, { recursive: true, force: true });
    }
  });
});
