import { spawn, type ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import { isStackReport, STACK_ID_HEADER, type StackReport } from "@steward/platform/stack-member";

/** A service main as `steward up` starts it: an IPC channel and STEWARD_STACK_ID (unless `stackId` is undefined). */
function member(body: string, stackId: string | undefined): { child: ChildProcess; reports: StackReport[]; exited: Promise<number | null>; stdout: () => string } {
  const src = `import { writeSync } from "node:fs";
import { runService } from "@steward/platform/service-main";
import { listenHttp } from "@steward/platform/http";
const say = (s) => writeSync(1, s + "\\n");
${body}`;
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "silent" };
  delete env["STEWARD_STACK_ID"];
  if (stackId) env["STEWARD_STACK_ID"] = stackId;
  const child = spawn(process.execPath, ["--input-type=module", "-e", src], { cwd: process.cwd(), env, stdio: ["ignore", "pipe", "pipe", "ipc"] });
  const reports: StackReport[] = [];
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.on("message", (m) => {
    if (isStackReport(m)) reports.push(m);
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, reports, exited, stdout: () => out };
}

const serve = `runService("t", async ({ onStop }) => {
  const l = await listenHttp((req, res) => res.end("ok"), 0, "127.0.0.1");
  onStop("http", async () => { say("stopping http"); await l.close(); });
  say("listening " + l.port);
});`;

describe("stack membership (steward up)", () => {
  it("a member reports the port it bound and stamps every answer with the stack id", async () => {
    const m = member(serve, "stack-abc");
    try {
      const report = await waitFor("listening report", () => m.reports[0], 20_000, 20);
      await waitFor("the port the service itself saw", () => m.stdout().includes(`listening ${report.port}`), 10_000, 20);
      const res = await fetch(`http://127.0.0.1:${report.port}/anything`);
      expect(res.headers.get(STACK_ID_HEADER)).toBe("stack-abc");
    } finally {
      m.child.kill("SIGKILL");
    }
  });

  it("outside a stack (an IPC channel but no stack id, like a test runner's worker) nothing is reported or stamped", async () => {
    const m = member(serve, undefined);
    try {
      const port = await waitFor("listening", () => /listening (\d+)/.exec(m.stdout())?.[1], 20_000, 20);
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.headers.get(STACK_ID_HEADER)).toBeNull();
      expect(m.reports).toEqual([]);
    } finally {
      m.child.kill("SIGKILL");
    }
  });

  it("when `up` goes away (the IPC channel closes) a member drains and exits 0 by itself", async () => {
    const m = member(serve, "stack-gone");
    await waitFor("listening report", () => m.reports[0], 20_000, 20);
    m.child.disconnect();
    expect(await m.exited).toBe(0);
    expect(m.stdout()).toContain("stopping http");
  });
});
