import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpError, bearerMatches, readBodyText, sendJson } from "@steward/platform/http";

describe("bearerMatches", () => {
  it.each([
    ["Bearer s3cr3t-token-value", true],
    ["bearer s3cr3t-token-value", true],
    ["Bearer  s3cr3t-token-value ", true],
    ["Bearer s3cr3t-token-valuE", false],
    ["Bearer s3cr3t-token-value-and-more", false],
    ["Basic s3cr3t-token-value", false],
    ["Bearer ", false],
    ["", false],
    [undefined, false],
  ])("%j → %s", (header, want) => {
    expect(bearerMatches(header, "s3cr3t-token-value")).toBe(want);
  });
});

describe("readBodyText and sendJson", () => {
  let server: Server;
  let url = "";
  beforeAll(async () => {
    server = createServer((req, res) => {
      readBodyText(req, 16).then(
        (text) => sendJson(res, 200, { text }),
        (err: unknown) => (err instanceof HttpError ? sendJson(res, err.status, { error: err.body }) : sendJson(res, 500, {})),
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const a = server.address();
    url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("returns the body", async () => {
    const r = await fetch(url, { method: "POST", body: "hello" });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ text: "hello" });
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
  });
  it("refuses a body over the limit with 413", async () => {
    const r = await fetch(url, { method: "POST", body: "x".repeat(17) });
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ error: { code: "too_large", message: "request body is larger than 16 bytes" } });
  });
});
