/**
 * The incident, with real git repositories: files copied onto the host outside git (untracked copies of files
 * that later arrive in commits) block every `git pull`; the clean-up must not delete the git-ignored `.env`
 * that lives in the same folder.
 */
import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createGitFixture, gitSync, type GitFixture } from "@steward/testkit";
import { REPO_SERVICE } from "@steward/contracts/drift";
import { silentLogger } from "@steward/platform/logger";
import type { NodeCommandBody } from "@steward/contracts/node-command";
import type { NodeEvent } from "@steward/contracts/events";
import { PullRefusedError, collidingPaths, createRepoWatcher, describePull, probeRepo, pullRepo, type RepoTarget } from "../src/index.js";
import { redactUrlCredentialsInText as redactUrls } from "@steward/platform/redact";

const INITIAL = {
  ".gitignore": ".env\n*.local\n",
  "README.md": "# deploy\n",
  "stacks/app/compose.yml": "services:\n  app:\n    image: app:1\n",
};
const ENV = "DB_PASSWORD=do-not-lose-me\n";
const opts = { fetch: true, fetchTimeoutMs: 10_000, timeoutMs: 10_000 };

let fx: GitFixture | undefined;
afterEach(async () => {
  await fx?.cleanup();
  fx = undefined;
});

/** The incident's checkout: an ignored .env, two incoming files already copied in by hand, an unrelated untracked note. */
async function incident(): Promise<{ fx: GitFixture; t: RepoTarget; incomingHead: string }> {
  fx = await createGitFixture(INITIAL);
  await writeFile(join(fx.checkout, "stacks/app/.env"), ENV);
  const incomingHead = await fx.push({ "stacks/app/config.yml": "upstream config\n", "stacks/app/nginx.conf": "upstream nginx\n", "stacks/app/compose.yml": "services:\n  app:\n    image: app:2\n" });
  await writeFile(join(fx.checkout, "stacks/app/config.yml"), "copied by hand\n");
  await writeFile(join(fx.checkout, "stacks/app/nginx.conf"), "copied by hand too\n");
  await writeFile(join(fx.checkout, "notes.txt"), "operator notes\n");
  return { fx, t: { path: fx.checkout, remote: "origin", branch: "main" }, incomingHead };
}

describe("repo probe (real git)", () => {
  it("reproduces the incident: a plain git pull fails on the untracked copies", async () => {
    const { fx } = await incident();
    expect(() => gitSync(fx.checkout, "pull", "--ff-only", "origin", "main")).toThrow(/untracked working tree files would be overwritten/);
  });

  it("reports behind, the colliding untracked files, and the ignored file count, before any pull", async () => {
    const { fx, t, incomingHead } = await incident();
    const r = await probeRepo(t, opts);
    expect(r).toMatchObject({
      path: fx.checkout,
      branch: "main",
      head: fx.head(fx.checkout),
      remote_head: incomingHead,
      behind: 1,
      ahead: 0,
      dirty: [],
      colliding_untracked: ["stacks/app/config.yml", "stacks/app/nginx.conf"],
      colliding_dirty: [],
      colliding_ignored: [],
      error: null,
    });
    expect(r.ignored_count).toBe(1);
  });

  it("reports dirty tracked files the incoming commits also change", async () => {
    fx = await createGitFixture(INITIAL);
    await fx.push({ "stacks/app/compose.yml": "services:\n  app:\n    image: app:2\n" });
    await writeFile(join(fx.checkout, "stacks/app/compose.yml"), "services:\n  app:\n    image: hotfix\n");
    await writeFile(join(fx.checkout, "README.md"), "# edited on the host\n");
    const r = await probeRepo({ path: fx.checkout, remote: "origin", branch: "main" }, opts);
    expect(r.dirty).toEqual(["README.md", "stacks/app/compose.yml"]);
    expect(r.colliding_dirty).toEqual(["stacks/app/compose.yml"]);
  });

  it("reports a fetch that fails without hanging, and still reads the checkout", async () => {
    fx = await createGitFixture(INITIAL);
    gitSync(fx.checkout, "remote", "set-url", "origin", join(fx.root, "gone.git"));
    const r = await probeRepo({ path: fx.checkout, remote: "origin", branch: "main" }, opts);
    expect(r.error).toMatch(/fetch from origin failed/);
    expect(r.head).toBe(fx.head(fx.checkout));
    expect(r.behind).toBe(0);
  });

  it("says so when the path is not a git checkout", async () => {
    fx = await createGitFixture(INITIAL);
    const r = await probeRepo({ path: join(fx.root, "node"), remote: "origin", branch: "main" }, opts);
    expect(r.error).toMatch(/^not a git checkout/);
  });
});

describe("pull (real git)", () => {
  it("quarantines the colliding untracked files (content kept), leaves .env and other files alone, fast-forwards", async () => {
    const { fx, t, incomingHead } = await incident();
    const envBefore = await readFile(join(fx.checkout, "stacks/app/.env"));
    const r = await pullRepo(t, { ...opts, now: new Date("2026-01-02T03:04:05.678Z") });

    expect(fx.head(fx.checkout)).toBe(incomingHead);
    expect(r).toMatchObject({ to: incomingHead, commits: 1, quarantineDir: join(fx.root, "node", ".steward-quarantine", "app-2026-01-02T03-04-05-678Z") });
    expect(r.quarantined.map((q) => q.path)).toEqual(["stacks/app/config.yml", "stacks/app/nginx.conf"]);
    // Moved, never deleted: the hand-made copies are in quarantine with their content.
    expect(await readFile(join(r.quarantineDir!, "stacks/app/config.yml"), "utf8")).toBe("copied by hand\n");
    expect(await readFile(join(r.quarantineDir!, "stacks/app/nginx.conf"), "utf8")).toBe("copied by hand too\n");
    // The incoming versions are now in the checkout.
    expect(await readFile(join(fx.checkout, "stacks/app/config.yml"), "utf8")).toBe("upstream config\n");
    // The git-ignored .env: same bytes, same file.
    expect(Buffer.compare(await readFile(join(fx.checkout, "stacks/app/.env")), envBefore)).toBe(0);
    expect(await readFile(join(fx.checkout, "notes.txt"), "utf8")).toBe("operator notes\n");
    // The quarantine is outside the work tree: git does not see it as untracked.
    expect(gitSync(fx.checkout, "status", "--porcelain")).toBe("?? notes.txt\n");
    expect(r.after).toMatchObject({ head: incomingHead, remote_head: incomingHead, behind: 0, colliding_untracked: [], error: null });
    const line = describePull(t, r);
    expect(line).toContain(`quarantined 2 untracked file(s) that blocked the pull to ${r.quarantineDir}: stacks/app/config.yml, stacks/app/nginx.conf`);
    expect(line).toMatch(/git-ignored files untouched$/);
  });

  it("refuses a diverged checkout (non-fast-forward) and changes nothing", async () => {
    const { fx, t } = await incident();
    const local = await fx.commitOnNode({ "local.txt": "a commit made on the host\n" });
    const statusBefore = gitSync(fx.checkout, "status", "--porcelain", "--ignored");
    const err = await pullRepo(t, { ...opts, now: new Date() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PullRefusedError);
    expect(err).toMatchObject({ reason: "non_fast_forward" });
    expect((err as Error).message).toMatch(/not a fast-forward.*1 local commit.*diverged/);
    expect(fx.head(fx.checkout)).toBe(local);
    expect(gitSync(fx.checkout, "status", "--porcelain", "--ignored")).toBe(statusBefore);
    expect(await readFile(join(fx.checkout, "stacks/app/config.yml"), "utf8")).toBe("copied by hand\n");
    await expect(stat(join(fx.root, "node", ".steward-quarantine"))).rejects.toThrow(/ENOENT/);
  });

  it("refuses when local changes collide with incoming ones, keeping the changes", async () => {
    fx = await createGitFixture(INITIAL);
    await fx.push({ "stacks/app/compose.yml": "services:\n  app:\n    image: app:2\n" });
    await writeFile(join(fx.checkout, "stacks/app/compose.yml"), "hotfix\n");
    const before = fx.head(fx.checkout);
    await expect(pullRepo({ path: fx.checkout, remote: "origin", branch: "main" }, { ...opts, now: new Date() })).rejects.toMatchObject({ reason: "dirty_collision" });
    expect(fx.head(fx.checkout)).toBe(before);
    expect(await readFile(join(fx.checkout, "stacks/app/compose.yml"), "utf8")).toBe("hotfix\n");
  });

  it("never overwrites a git-ignored file, even when incoming commits add that path", async () => {
    fx = await createGitFixture(INITIAL);
    await writeFile(join(fx.checkout, "site.local"), "node-only settings\n");
    await fx.push({ "site.local": "forced into git upstream\n" });
    const t = { path: fx.checkout, remote: "origin", branch: "main" };
    expect((await probeRepo(t, opts)).colliding_ignored).toEqual(["site.local"]);
    await expect(pullRepo(t, { ...opts, now: new Date() })).rejects.toMatchObject({ reason: "ignored_collision" });
    expect(await readFile(join(fx.checkout, "site.local"), "utf8")).toBe("node-only settings\n");
  });

  it("is a no-op when already up to date", async () => {
    fx = await createGitFixture(INITIAL);
    const r = await pullRepo({ path: fx.checkout, remote: "origin", branch: "main" }, { ...opts, now: new Date() });
    expect(r).toMatchObject({ commits: 0, quarantined: [], quarantineDir: null });
    expect(await readdir(join(fx.root, "node"))).toEqual(["app"]);
  });
});

describe("pure helpers", () => {
  it.each([
    [["a"], ["a"], ["a"]],
    [["a/b"], ["a"], ["a/b"]], // a file inside a directory where a file comes
    [["a"], ["a/b"], ["a"]], // a file where a directory comes
    [["x/.env/"], ["x/.env/k"], ["x/.env"]], // ignored directory entry from --directory
    [["a/bc"], ["a/b"], []],
    [["notes.txt", "s/a.yml"], ["s/a.yml", "s/b.yml"], ["s/a.yml"]],
  ])("collidingPaths(%j, %j) = %j", (local, incoming, want) => expect(collidingPaths(local, incoming)).toEqual(want));

  it("redacts credentials in URLs", () => {
    expect(redactUrls("fatal: unable to access 'https://bot:ghp_secret@github.com/o/r.git/'")).toBe("fatal: unable to access 'https://***@github.com/o/r.git/'");
  });
});

describe("repo watcher (the agent's hook)", () => {
  const cmd = (service: string): NodeCommandBody => ({ id: "cmd-00000001", node: "web1", op: "pull", service, action_id: "a1", issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 60_000).toISOString() });

  it("pulls on a command for the checkout, publishes the checkout after, and refuses other targets", async () => {
    const { fx, incomingHead } = await incident();
    const fleet = join(fx.root, "fleet.yaml");
    await writeFile(fleet, JSON.stringify({ version: 1, repo: { path: "node/app" }, nodes: { web1: {} } }));
    const events: NodeEvent[] = [];
    const w = createRepoWatcher({ node: "web1", fleetSpec: fleet, publish: (e) => events.push(e), logger: silentLogger(), clock: () => new Date(), fetchTimeoutMs: 10_000, gitTimeoutMs: 10_000 });

    await w.probe();
    expect(events.at(-1)).toMatchObject({ type: "repo", node: "web1", path: fx.checkout, behind: 1, colliding_untracked: ["stacks/app/config.yml", "stacks/app/nginx.conf"] });
    expect(await w.pull(cmd("api"))).toMatchObject({ ok: false, code: "unknown_service" });
    const reply = await w.pull(cmd(REPO_SERVICE));
    expect(reply).toMatchObject({ ok: true, service: REPO_SERVICE, pid: null });
    expect(reply.ok && reply.detail).toMatch(/quarantined 2 untracked file\(s\)/);
    expect(events.at(-1)).toMatchObject({ type: "repo", head: incomingHead, remote_head: incomingHead, behind: 0 });
  });

  it("a node without a checkout in the spec publishes nothing and refuses a pull", async () => {
    fx = await createGitFixture(INITIAL);
    const fleet = join(fx.root, "fleet.yaml");
    await writeFile(fleet, JSON.stringify({ version: 1, nodes: { web1: {} } }));
    const events: NodeEvent[] = [];
    const w = createRepoWatcher({ node: "web1", fleetSpec: fleet, publish: (e) => events.push(e), logger: silentLogger(), clock: () => new Date(), fetchTimeoutMs: 10_000, gitTimeoutMs: 10_000 });
    await w.probe();
    expect(events).toEqual([]);
    expect(await w.pull(cmd(REPO_SERVICE))).toMatchObject({ ok: false, code: "failed", message: expect.stringMatching(/no deploy checkout/) as unknown });
  });
});

describe("pull when the fetch fails", () => {
  it("fast-forwards to the remote branch as last fetched, and says the fetch failed", async () => {
    const { fx, t, incomingHead } = await incident();
    await probeRepo(t, opts); // the probe that saw the drift fetched the incoming commit
    gitSync(fx.checkout, "remote", "set-url", "origin", join(fx.root, "gone.git"));
    const r = await pullRepo(t, { ...opts, now: new Date() });
    expect(fx.head(fx.checkout)).toBe(incomingHead);
    expect(r.fetchFailed).toBeTruthy();
    expect(describePull(t, r)).toMatch(/\(fetch failed: .*; used origin\/main as last fetched\)/);
  });
});
