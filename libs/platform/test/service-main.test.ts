import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";

// runService ends the process, so it runs in a child: a tiny main.ts written inline.
// With sigtermOn, the parent sends SIGTERM as soon as the child has printed that line (a signal, not a delay).
function runMain(body: string, sigtermOn?: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  // writeSync: the process exits right after draining, and piped stdout is otherwise asynchronous.
  // The interval stands for the sockets a real service holds open.
  const src = `import { writeSync } from "node:fs";\nimport { runService } from "@steward/platform/service-main";
import { ConfigError } from "@steward/platform/config";\nconst say = (s) => writeSync(1, s + "\\n");\nsetInterval(() => {}, 1000);\n${body}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", src], { cwd: process.cwd(), env: { ...process.env, LOG_LEVEL: "silent" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let signalled = false;
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    if (sigtermOn !== undefined && !signalled && stdout.split("\n").includes(sigtermOn)) {
      signalled = true;
      child.kill("SIGTERM");
    }
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((r) => child.on("exit", (code, signal) => r({ code, signal, stdout, stderr })));
}

describe("runService", () => {
  it("invalid settings exit 2 with the message naming the setting", async () => {
    const r = await runMain(`runService("t", async () => { throw new ConfigError("t", [{ setting: "API_TOKEN", message: "is empty or a placeholder" }]); });`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("API_TOKEN: is empty or a placeholder");
  });

  it("any other start-up failure exits 1", async () => {
    const r = await runMain(`runService("t", async () => { throw new Error("cannot connect"); });`);
    expect(r.code).toBe(1);
  });

  it("SIGTERM undoes what was started, newest first, even if a step fails, then exits 0", async () => {
    const r = await runMain(
      `runService("t", async ({ onStop }) => {
        onStop("a", async () => say("stop a"));
        onStop("b", async () => { throw new Error("b broke"); });
        onStop("c", async () => say("stop c"));
        say("ready");
      });`,
      "ready",
    );
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["ready", "stop c", "stop a"]);
  });

  it("a signal at the very first instant of start-up is handled, not met by the default action", async () => {
    // The signal is delivered before kill() returns, while start() is still synchronous: the handler must exist already.
    const r = await runMain(
      `runService("t", async ({ onStop }) => {
        process.kill(process.pid, "SIGTERM");
        onStop("a", async () => say("stop a"));
        say("started");
      });`,
    );
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["started", "stop a"]);
  });

  it("a signal during start-up waits for start-up, then drains newest first", async () => {
    // Start-up goes on only once the signal has been handled (this listener runs after runService's own), so the
    // signal is certainly seen mid start-up.
    const r = await runMain(
      `runService("t", async ({ onStop }) => {
        onStop("early", async () => say("stop early"));
        const signalled = new Promise((res) => process.once("SIGTERM", res));
        say("ready");
        await signalled;
        onStop("late", async () => say("stop late"));
        say("started");
      });`,
      "ready",
    );
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["ready", "started", "stop late", "stop early"]);
  });
});
