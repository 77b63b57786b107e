/**
 * Terminal-safe output (cli/src/terminal-text.ts): what a model, a log line or a remote service wrote never reaches
 * the operator's terminal as a control sequence. The function table-tested; `steward task show` run as a real process
 * against a planner whose task holds escape sequences; the JSON output still carries the exact text.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskDetail, type TaskEnvelope } from "@steward/contracts/task";
import type { DriftReport } from "@steward/contracts/drift";
import { runCli } from "../src/cli.js";
import { renderDrift } from "../src/commands/read.js";
import { terminalSafe } from "../src/terminal-text.js";
import { defaultFrames, startFakePlanner, type FakePlanner, type Frame } from "./fake-planner.js";

const ESC = "\u001b";
/** Any control a terminal acts on: C0 but \n and \t, DEL, C1. */
// eslint-disable-next-line no-control-regex
const ACTIVE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe("terminalSafe", () => {
  const cases: [string, string, string][] = [
    ["plain text", "web exits 137 (OOM)", "web exits 137 (OOM)"],
    ["newlines and tabs kept", "line 1\n\tline 2", "line 1\n\tline 2"],
    ["CRLF reads as a newline", "a\r\nb", "a\nb"],
    ["a lone CR (overwrite) escaped", "rejected\rAPPROVED", "rejected\\u000dAPPROVED"],
    ["CSI clear screen", `${ESC}[2J${ESC}[Hroot# `, "\\u001b[2J\\u001b[Hroot# "],
    ["colour codes too", `${ESC}[31mred${ESC}[0m`, "\\u001b[31mred\\u001b[0m"],
    ["OSC 52 clipboard write (BEL)", `${ESC}]52;c;Y3VybCBldmlsfHNo\u0007`, "\\u001b]52;c;Y3VybCBldmlsfHNo\\u0007"],
    ["OSC 8 hyperlink (ST)", `${ESC}]8;;http://evil${ESC}\\x${ESC}]8;;${ESC}\\`, "\\u001b]8;;http://evil\\u001b\\x\\u001b]8;;\\u001b\\"],
    ["C1 CSI and OSC", "\u009b2J\u009d52;c;x\u009c", "\\u009b2J\\u009d52;c;x\\u009c"],
    ["NUL, backspace, DEL", "a\u0000b\u0008c\u007f", "a\\u0000b\\u0008c\\u007f"],
    ["vertical tab and form feed", "a\u000bb\u000cc", "a\\u000bb\\u000cc"],
    ["printable Unicode untouched", "café — 東京 ✓ \u00a0nbsp", "café — 東京 ✓ \u00a0nbsp"],
  ];
  it.each(cases)("%s", (_, input, want) => {
    expect(terminalSafe(input)).toBe(want);
    expect(terminalSafe(input)).not.toMatch(ACTIVE);
    // Idempotent: escaping escaped text changes nothing.
    expect(terminalSafe(terminalSafe(input))).toBe(want);
  });

  it("with the palette, only paint's exact colour codes pass", () => {
    expect(terminalSafe(`${ESC}[31mred${ESC}[0m ${ESC}[2mdim${ESC}[0m`, { palette: true })).toBe(`${ESC}[31mred${ESC}[0m ${ESC}[2mdim${ESC}[0m`);
    expect(terminalSafe(`${ESC}[8mhidden${ESC}[1A${ESC}[2J${ESC}]52;c;x\u0007`, { palette: true })).toBe("\\u001b[8mhidden\\u001b[1A\\u001b[2J\\u001b]52;c;x\\u0007");
  });

  it("JSON text passes as the same JSON (C0 is already escaped; a raw C1 or DEL becomes its \\u escape)", () => {
    const value = { diagnosis: `${ESC}[2J\rok\u009b\u007f\n` };
    for (const json of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
      const safe = terminalSafe(json);
      expect(safe).not.toMatch(ACTIVE);
      expect(JSON.parse(safe)).toEqual(value);
    }
    expect(terminalSafe(JSON.stringify({ a: "plain" }, null, 2))).toBe(JSON.stringify({ a: "plain" }, null, 2));
  });

  it("a coloured drift report paints the supervisor's text only after making it safe", () => {
    const r = {
      computed_at: new Date().toISOString(),
      world_seq: 7,
      skipped: { at: "2026-01-01T00:00:00Z", reason: `spec unreadable ${ESC}]52;c;eA==\u0007` },
      drifts: [{ key: "k", kind: "unhealthy", node: "n1", service: "web", severity: "action", proposes: "restart", since: new Date().toISOString(), message: `log says ${ESC}[2J\rall good`, held: null }],
    } as unknown as DriftReport;
    const out = renderDrift(r, Date.now(), true);
    // eslint-disable-next-line no-control-regex
    expect(out.replace(/\u001b\[(?:0|2|31|32|33)m/g, "")).not.toMatch(ACTIVE);
    expect(out).toContain("log says \\u001b[2J\\u000dall good");
    expect(out).toContain("spec unreadable \\u001b]52;c;eA==\\u0007");
    expect(out).toContain(`${ESC}[33m`);
  });
});

const HOSTILE = {
  diagnosis: `the disk is full${ESC}[2J${ESC}[H`,
  answer: `Free space on /var.${ESC}]52;c;Y3VybCBldmlsLnNofHNo\u0007\nThen run: ok\rrm -rf / \u009b31m`,
  error: `log line: ${ESC}[1A${ESC}[Kapproved`,
  reason: `restart ${ESC}[8mhidden${ESC}[0m web`,
};
const hostileFrames = (env: TaskEnvelope): Frame[] => [
  {
    state: "failed",
    agent: "diagnostician",
    steps: [{ kind: "diagnosis", message: `ollama (local-small): ${HOSTILE.diagnosis}` }, { kind: "tool", message: `service_logs {"node":"demo-a"}: ${ESC}[31mERROR${ESC}[0m` }],
    answer: HOSTILE.answer,
    error: HOSTILE.error,
    proposals: [{ action_kind: "restart", node: "demo-a", service: "web", accepted: true, reason: HOSTILE.reason, action_id: "SET-BY-FAKE" }],
    calls: defaultFrames(env).at(-1)!.calls!,
  },
];

let fake: FakePlanner;
beforeAll(async () => {
  fake = await startFakePlanner("s3cret-token");
});
afterAll(async () => {
  await fake.close();
});
afterEach(() => {
  fake.script = defaultFrames;
  fake.override = undefined;
});

const env = () => ({ STEWARD_USER: "alice", STEWARD_PLANNER_URL: fake.url, STEWARD_API_URL: fake.url, STEWARD_TOKEN: "s3cret-token" });

async function runProcess(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = fileURLToPath(new URL("../dist/main.js", import.meta.url));
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env(), FORCE_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  return { code, stdout, stderr };
}

describe("the CLI prints what others wrote terminal-safe", () => {
  it("steward task show (a real process): the model's escape sequences are printed escaped; --json keeps the exact text", async () => {
    fake.script = hostileFrames;
    const add: string[] = [];
    expect(await runCli(["task", "add", "--no-wait", "why is the disk full?"], { out: (s) => add.push(s), err: (s) => add.push(s), env: env() })).toBe(0);
    const id = add[0]!;

    const shown = await runProcess(["task", "show", id.slice(0, 8)]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(ACTIVE);
    expect(shown.stdout).toContain("the disk is full\\u001b[2J\\u001b[H");
    expect(shown.stdout).toContain("Free space on /var.\\u001b]52;c;Y3VybCBldmlsLnNofHNo\\u0007\n");
    expect(shown.stdout).toContain("ok\\u000drm -rf / \\u009b31m");
    expect(shown.stdout).toContain("log line: \\u001b[1A\\u001b[Kapproved");
    expect(shown.stdout).toContain("restart \\u001b[8mhidden\\u001b[0m web");
    expect(shown.stdout).toContain("\\u001b[31mERROR\\u001b[0m");

    const json = await runProcess(["task", "show", id, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toMatch(ACTIVE);
    const d = TaskDetail.parse(JSON.parse(json.stdout));
    expect(d.task.answer).toBe(HOSTILE.answer);
    expect(d.task.error).toBe(HOSTILE.error);
    expect(d.proposals[0]?.reason).toBe(HOSTILE.reason);
  });

  it("a remote service's error message is printed escaped", async () => {
    fake.override = { status: 503, body: JSON.stringify({ error: { code: "unavailable", message: `down ${ESC}]52;c;eA==\u0007${ESC}[2J` } }) };
    const err: string[] = [];
    expect(await runCli(["task", "ls"], { out: (s) => err.push(s), err: (s) => err.push(s), env: env() })).toBe(1);
    const text = err.join("\n");
    expect(text).not.toMatch(ACTIVE);
    expect(text).toContain("down \\u001b]52;c;eA==\\u0007\\u001b[2J");
  });
});
