import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { startNats, unlessExited, waitFor } from "../src/index.js";

describe("waitFor", () => {
  it("retries through errors until the value comes", async () => {
    let tries = 0;
    const v = await waitFor("the third try", () => {
      tries++;
      if (tries < 3) throw new Error("not yet");
      return tries;
    }, 10_000, 1);
    expect(v).toBe(3);
  });

  it("with unlessExited, a watched child that dies fails the wait at once, naming it, how it ended and its output", async () => {
    const child = spawn(process.execPath, ["-e", "console.error('listen EADDRINUSE'); process.exit(3)"], { stdio: ["ignore", "ignore", "pipe"] });
    const p = { child, name: "the service", output: "" };
    child.stderr.on("data", (d: Buffer) => (p.output += d.toString()));
    // The wait's own deadline is ten minutes: only the exit can end it within the test's timeout.
    await expect(waitFor("the service answering", () => false, 600_000, 20, unlessExited(p))).rejects.toThrow(/gave up waiting for the service answering: the service exited \(code 3\); its last output: listen EADDRINUSE/);
  }, 60_000);

  it("a live watched child does not end the wait", async () => {
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"], { stdio: "ignore" });
    try {
      let tries = 0;
      await expect(waitFor("five tries", () => ++tries >= 5, 30_000, 1, unlessExited({ child }))).resolves.toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("startNats fails at once, with the server's words, when nats-server cannot start", async () => {
    await expect(startNats({ config: "this is not { valid" })).rejects.toThrow(/gave up waiting for nats-server on port \d+: nats-server exited \(code \d+\); its last output: .+/);
  });
});
