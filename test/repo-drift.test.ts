/**
 * The blocked-pull incident end to end, with real git repositories and every Steward process in-process:
 * untracked copies of incoming files block `git pull`; the agent reports the collision, the supervisor flags
 * repo_drift naming the files and proposes a pull, the operator approves, the executor sends the signed pull,
 * the agent quarantines the copies (never deletes), leaves the git-ignored .env alone, fast-forwards, and the
 * executor verifies HEAD == remote head from the next repo event.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_SERVICE } from "@steward/contracts/drift";
import { createGitFixture, waitFor, type GitFixture } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let fx: GitFixture;
let incomingHead = "";
let token = "";
const ENV = "DB_PASSWORD=do-not-lose-me\n";
let apiUrl = "";

beforeAll(async () => {
  fx = await createGitFixture({ ".gitignore": ".env\n", "stacks/app/compose.yml": "services:\n  app:\n    image: app:1\n" });
  await writeFile(join(fx.checkout, "stacks/app/.env"), ENV);
  incomingHead = await fx.push({ "stacks/app/config.yml": "upstream\n", "stacks/app/nginx.conf": "upstream\n" });
  await writeFile(join(fx.checkout, "stacks/app/config.yml"), "copied by hand\n");
  await writeFile(join(fx.checkout, "stacks/app/nginx.conf"), "copied by hand\n");

  stack = await startStack({
    dir: fx.root,
    fleet: `version: 1\nrepo:\n  path: ${JSON.stringify(fx.checkout)}\nnodes:\n  t1: {}\n`,
    observer: true,
    supervisor: { RECHECK_MS: "1000" },
    executor: { VERIFY_TIMEOUT_MS: "20000" },
    agents: { t1: { HEARTBEAT_MS: "500", REPO_PROBE_MS: "500", STATE_DIR: join(fx.root, "state") } },
  });
  ({ token, executorUrl: apiUrl } = stack);
});

afterAll(async () => {
  await stack?.stop();
  await fx?.cleanup();
});

const api = async (path: string, init: RequestInit = {}) => {
  const r = await fetch(apiUrl + path, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } });
  return (await r.json()) as Record<string, unknown>;
};
type DriftRow = { key: string; severity: string; proposes: string | null; message: string };
const drifts = async () => ((await api("/api/drift"))["drifts"] as DriftRow[] | undefined) ?? [];

describe("repo drift and the pull action, end to end", () => {
  it("flags the blocked pull before it fails, then quarantines, keeps .env, fast-forwards and verifies", async () => {
    const d = await waitFor("repo drift", async () => (await drifts()).find((x) => x.key === `repo_drift:t1/${REPO_SERVICE}`), 20_000, 100);
    expect(d).toMatchObject({ severity: "action", proposes: "pull" });
    expect(d.message).toMatch(/1 commit\(s\) behind .*a plain git pull would fail: untracked files would be overwritten by the incoming commits: stacks\/app\/config\.yml, stacks\/app\/nginx\.conf/);

    const action = await waitFor("pending pull", async () => {
      const r = await api("/api/actions?state=pending");
      return (r["actions"] as { id: string; kind: string; service: string; node: string }[]).find((a) => a.kind === "pull");
    }, 15_000, 100);
    expect(action).toMatchObject({ node: "t1", service: REPO_SERVICE });
    const envBefore = await readFile(join(fx.checkout, "stacks/app/.env"));
    await api(`/api/actions/${action.id}/approve`, { method: "POST", body: JSON.stringify({ actor: "tester", channel: "api" }) });

    const done = await waitFor("pull finished", async () => {
      const r = await api(`/api/actions/${action.id}`);
      const a = r["action"] as { state: string; result: string | null };
      return a.state === "succeeded" || a.state === "failed" || a.state === "failed_unknown" ? r : undefined;
    }, 30_000, 100);
    const finished = done["action"] as { state: string; result: string };
    expect(finished.state, finished.result).toBe("succeeded");
    expect(finished.result).toMatch(/quarantined 2 untracked file\(s\) that blocked the pull to .*\.steward-quarantine.*: stacks\/app\/config\.yml, stacks\/app\/nginx\.conf/);
    expect(finished.result).toMatch(/verified: deploy checkout .* is at the remote head/);
    const audit = done["audit"] as { to_state: string; detail: string | null }[];
    expect(audit.find((e) => e.to_state === "succeeded")?.detail).toMatch(/quarantined 2 untracked file/);

    expect(fx.head(fx.checkout)).toBe(incomingHead);
    expect(Buffer.compare(await readFile(join(fx.checkout, "stacks/app/.env")), envBefore)).toBe(0);
    expect(await readFile(join(fx.checkout, "stacks/app/config.yml"), "utf8")).toBe("upstream\n");
    const dir = /to (\S+\.steward-quarantine\/[^:]+):/.exec(finished.result)?.[1];
    expect(dir).toBeDefined();
    expect(await readFile(join(dir!, "stacks/app/config.yml"), "utf8")).toBe("copied by hand\n");

    await waitFor("repo drift cleared", async () => !(await drifts()).some((x) => x.key.startsWith("repo_drift:")), 15_000, 100);
  });
});
