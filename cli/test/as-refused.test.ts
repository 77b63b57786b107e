import { describe, expect, it } from "vitest";
import { runCli } from "../src/cli.js";

// The executor records the credential's name as the audit actor; a name typed with --as would be dropped without a
// word, so the CLI refuses it, before it looks for a stack (no stack exists here: the refusal comes first).
describe("--as is refused, not silently ignored", () => {
  it.each([
    [["approve", "1a2b3c4d", "--as", "bob"]],
    [["reject", "1a2b3c4d", "--reason", "no", "--as", "bob"]],
    [["hold", "release", "1a2b3c4d", "--as", "bob"]],
    [["drill", "web", "--as", "bob"]],
  ])("steward %j", async (args) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(args, { out: (s) => out.push(s), err: (s) => err.push(s), env: { STEWARD_HOME: "/nonexistent-steward-home" } });
    expect(code).toBe(2);
    expect(err.join("\n")).toMatch(/--as is no longer used: the audit log records the name of the API credential you use/);
    expect(out).toEqual([]);
  });
});
