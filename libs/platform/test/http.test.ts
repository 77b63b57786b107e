import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IncomingMessage } from "node:http";
import { HttpError, allowMethod, bearerMatches, parseListLimit, readBodyText, requestTarget, sendJson } from "@steward/platform/http";

describe("request helpers", () => {
  it("requestTarget drops trailing slashes and keeps the query", () => {
    const t = requestTarget({ url: "/api/actions//?limit=3", method: "POST" } as IncomingMessage);
    expect([t.path, t.method, t.url.searchParams.get("limit")]).toEqual(["/api/actions", "POST", "3"]);
    expect(requestTarget({ url: "/" } as IncomingMessage)).toMatchObject({ path: "/", method: "GET" });
  });

  it("requestTarget keeps a path that starts with // a path (no host taken from it), and `///` is no 500", () => {
    expect(requestTarget({ url: "//api/actions" } as IncomingMessage).path).toBe("//api/actions");
    expect(requestTarget({ url: "///" } as IncomingMessage).path).toBe("/");
    expect(requestTarget({ url: "http://other.example/api/actions?limit=2" } as IncomingMessage)).toMatchObject({ path: "/api/actions" });
  });

  it.each([
    [null, 50],
    ["", 50],
    ["1", 1],
    ["200", 200],
  ])("parseListLimit(%j) is %d", (raw, want) => expect(parseListLimit(raw, 200)).toBe(want));

  it.each(["0", "201", "-1", "1.5", "ten", " 5"])("parseListLimit(%j) is a 400 naming limit", (raw) => {
    const err = (() => {
      try {
        parseListLimit(raw, 200);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(HttpError);
    expect(err).toMatchObject({ status: 400, body: { field: "limit", message: "limit must be an integer from 1 to 200" } });
  });

  it("allowMethod passes the allowed method and answers 405 naming the route otherwise", () => {
    expect(() => allowMethod("GET", "GET", "/tasks")).not.toThrow();
    expect(() => allowMethod("POST", "GET", "/tasks")).toThrow(expect.objectContaining({ status: 405, body: { code: "method_not_allowed", message: "/tasks allows GET only", route: "/tasks" } }));
  });
});

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
