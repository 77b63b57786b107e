import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** Git with a fixed identity and no user or system config, so fixtures behave the same on every machine. */
export function gitSync(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=Steward Test", "-c", "user.email=test@steward.invalid", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", ...args], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
  });
}

export interface GitFixture {
  root: string;
  /** The bare "remote" (origin). */
  remote: string;
  /** A developer's clone that pushes to the remote. */
  dev: string;
  /** The node's deploy checkout: `<root>/node/app`. */
  checkout: string;
  /** Writes files in the developer clone, commits them (`git add -f`, so ignored paths too) and pushes. */
  push(files: Record<string, string>, message?: string): Promise<string>;
  /** Commits in the node's checkout (a local commit, for divergence). */
  commitOnNode(files: Record<string, string>, message?: string): Promise<string>;
  head(dir: string): string;
  cleanup(): Promise<void>;
}

async function writeAll(dir: string, files: Record<string, string>): Promise<void> {
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), content);
  }
}

/**
 * A bare remote, a developer clone and a node's deploy checkout, all at the first commit of `initial`.
 * The node checkout is cloned with `origin` pointing at the bare repo, branch `main`.
 */
export async function createGitFixture(initial: Record<string, string>): Promise<GitFixture> {
  const root = await mkdtemp(join(tmpdir(), "steward-git-"));
  const remote = join(root, "remote.git");
  const dev = join(root, "dev");
  const checkout = join(root, "node", "app");
  gitSync(root, "init", "--quiet", "--bare", remote);
  gitSync(root, "clone", "--quiet", remote, dev);
  await writeAll(dev, initial);
  gitSync(dev, "add", "-A", "-f");
  gitSync(dev, "commit", "--quiet", "-m", "initial");
  gitSync(dev, "push", "--quiet", "origin", "HEAD:main");
  await mkdir(join(root, "node"));
  gitSync(root, "clone", "--quiet", "--branch", "main", remote, checkout);
  const head = (dir: string) => gitSync(dir, "rev-parse", "HEAD").trim();
  return {
    root,
    remote,
    dev,
    checkout,
    async push(files, message = "incoming") {
      await writeAll(dev, files);
      gitSync(dev, "add", "-A", "-f", ...Object.keys(files));
      gitSync(dev, "commit", "--quiet", "-m", message);
      gitSync(dev, "push", "--quiet", "origin", "HEAD:main");
      return head(dev);
    },
    async commitOnNode(files, message = "local change") {
      await writeAll(checkout, files);
      gitSync(checkout, "add", "-f", ...Object.keys(files));
      gitSync(checkout, "commit", "--quiet", "-m", message);
      return head(checkout);
    },
    head,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
