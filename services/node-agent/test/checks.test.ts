import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import { HealthCheck } from "@steward/fleet/fleet-spec";
import { freePort } from "@steward/testkit";
import { runCheck } from "../src/checks.js";

let server: Server;
let port: number;
let closedPort: number;

beforeAll(async () => {
  port = await freePort();
  closedPort = await freePort();
  server = createServer((req, res) => {
    // Far longer than the 300 ms the slow cases allow, so a timer that fires late on a busy machine still fires first.
    if (req.url === "/slow") return void setTimeout(() => res.end("late"), 30_000).unref();
    res.statusCode = req.url === "/ok" ? 200 : 503;
    res.end();
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
});
afterAll(
  () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
);

const ctx = { cwd: process.cwd(), env: { PATH: process.env["PATH"] } };
// Checks that should finish get a deadline no busy machine reaches (spawning node can take a second under load);
// the ones that must time out say 300ms and wait on something that takes far longer.
const check = (c: Record<string, unknown>) => HealthCheck.parse({ timeout: "20s", ...c });

describe("runCheck", () => {
  it.each([
    ["http 200", () => ({ type: "http", url: `http://127.0.0.1:${port}/ok` }), true, "HTTP 200"],
    ["http 503", () => ({ type: "http", url: `http://127.0.0.1:${port}/bad` }), false, "HTTP 503, expected 200"],
    ["http expecting 503", () => ({ type: "http", url: `http://127.0.0.1:${port}/bad`, expect_status: 503 }), true, "HTTP 503"],
    ["http too slow", () => ({ type: "http", url: `http://127.0.0.1:${port}/slow`, timeout: "300ms" }), false, "no answer within 300 ms"],
    ["http refused", () => ({ type: "http", url: `http://127.0.0.1:${closedPort}/` }), false, "ECONNREFUSED"],
    ["http on a port fetch refuses", () => ({ type: "http", url: "http://127.0.0.1:1/" }), false, "bad port"],
    ["tcp open", () => ({ type: "tcp", port }), true, () => `connected to 127.0.0.1:${port}`],
    ["tcp refused", () => ({ type: "tcp", port: closedPort }), false, "ECONNREFUSED"],
    ["command exit 0", () => ({ type: "command", command: [process.execPath, "-e", "process.exit(0)"] }), true, "exit 0"],
    ["command exit 3", () => ({ type: "command", command: [process.execPath, "-e", "console.error('db down');process.exit(3)"] }), false, "exit 3: db down"],
    ["command too slow", () => ({ type: "command", command: [process.execPath, "-e", "setTimeout(()=>{},60000)"], timeout: "300ms" }), false, "no result within 300 ms"],
    ["command missing", () => ({ type: "command", command: ["/nonexistent/steward-check"] }), false, "ENOENT"],
  ] as [string, () => Record<string, unknown>, boolean, string | (() => string)][])("%s", async (_what, c, ok, detail) => {
    expect(await runCheck(check(c()), ctx)).toEqual({ ok, detail: typeof detail === "function" ? detail() : detail });
  });
});
