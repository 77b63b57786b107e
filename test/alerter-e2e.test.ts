/**
 * The whole path, every component real and in this process: a supervised process is killed → the observer sees it →
 * the supervisor reports drift and proposes a restart → the alerter pushes the drift and the pending action to ntfy
 * with Approve/Reject buttons → the test presses Approve the way the ntfy app does (an HTTP call to the executor's
 * approval route) → the executor restarts the process through the node-agent → the drift clears → resolved pushes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditOf, only, stateOf } from "@steward/actions/testing";
import { freePort, startFakeNtfy, waitFor, type FakeNtfy } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let ntfy: FakeNtfy;

beforeAll(async () => {
  const port = await freePort();
  // An access-controlled topic (the server needs a token): the buttons decide by themselves. On an open topic they
  // only open the console's confirmation (alerter.test.ts).
  ntfy = await startFakeNtfy({ token: "tk_e2e_ntfy_token" });
  stack = await startStack({
    dbPrefix: "steward_alerter_e2e",
    // retries 3: a restarted node process can take more than one 300 ms check to listen on a busy machine, and the
    // executor fails a restart as soon as the world shows it unhealthy.
    fleet: `version: 1\nnodes:\n  e1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        restart: never\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 3\n`,
    observer: { SNAPSHOT_MAX_INTERVAL_MS: "1000" },
    supervisor: true,
    executor: { POLL_MS: "200" },
    agents: { e1: {} },
    // Short group timing: the path is what this test is about (grouping has its own tests).
    alerter: { NTFY_URL: ntfy.url, NTFY_TOPIC: "steward-e2e", NTFY_TOKEN: "tk_e2e_ntfy_token", ALERT_EVAL_MS: "500", RETRY_BASE_MS: "100", ALERT_GROUP_WAIT_MS: "500", ALERT_GROUP_INTERVAL_MS: "1000" },
  });
});

afterAll(async () => {
  await stack?.stop();
  await ntfy?.close();
});

describe("killed process → push with buttons → press → restart → resolved", () => {
  it("runs the whole path", async () => {
    const running = () => stack.agents["e1"]?.status().find((x) => x.service === "web" && x.state === "running" && x.health === "healthy");
    const pid = await waitFor("web healthy", () => running()?.pid, 30_000, 50);
    process.kill(pid, "SIGKILL");

    const drift = await ntfy.waitFor((m) => /^Drift (down|unhealthy): e1\/web$/.test(m.title ?? ""), 20_000);
    const push = await ntfy.waitFor((m) => m.title === "Approve restart e1/web?", 20_000);
    expect(push.actions.map((a) => a.label)).toEqual(["Approve", "Reject", "Console"]);
    expect(push.message).toContain("Will run: restart e1/web");
    const approve = push.actions[0]!;
    expect(approve.method).toBe("POST");
    expect(approve.url).toMatch(/\/approvals\/[0-9a-f-]{36}\/approve$/);

    const pressed = await ntfy.press(push, "Approve");
    expect(pressed.status).toBe(200);
    const actionId = approve.url!.split("/").at(-2)!;
    const approved = (await auditOf(stack.sql, actionId)).filter((a) => a.to_state === "approved");
    expect(only(approved, "channel", "actor")).toEqual([{ channel: "ntfy", actor: "ntfy-button" }]);

    await waitFor("action succeeded", async () => (await stateOf(stack.sql, actionId)) === "succeeded", 30_000, 100);
    const back = await waitFor("web running again with a new pid", () => {
      const s = running();
      return s && s.pid !== pid ? s : undefined;
    }, 30_000, 50);
    expect(back.pid).not.toBe(pid);

    await ntfy.waitFor((m) => m.title === `Resolved: ${drift.title}`, 20_000);
    const resolvedPush = await ntfy.waitFor((m) => m.title === "Resolved: Approve restart e1/web?", 20_000);
    expect(resolvedPush.message).toContain("approved by ntfy-button via ntfy");
    expect(resolvedPush.actions.filter((a) => a.action === "http")).toEqual([]);
  });
});
