import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listenOnLoopback, readText, freePort, type LoopbackServer } from "@steward/testkit";
import { ApiBadResponse, ApiError, ApiUnreachable, createJsonHttp, errorFromAnswer, type HttpTransport, type ResponseSchema } from "../src/http-client.js";

/** A hand-written schema: the helper must work with anything that has safeParse, zod or not. */
const Greeting: ResponseSchema<{ hello: string }> = {
  safeParse: (v) =>
    typeof (v as { hello?: unknown } | null)?.hello === "string"
      ? { success: true, data: v as { hello: string } }
      : { success: false, error: { issues: [{ path: ["hello"], message: "expected a string" }] } },
};

describe("errorFromAnswer", () => {
  it.each<[string, number, unknown, { code: string; message: string }]>([
    ["the API's own code and message", 409, { error: { code: "invalid_transition", message: "action is approved, not pending", state: "approved" } }, { code: "invalid_transition", message: "action is approved, not pending" }],
    ["a 422 naming its field once", 422, { error: { code: "invalid", field: "content", message: "must not be blank" } }, { code: "invalid", message: "content: must not be blank" }],
    ["a 422 whose message already names the field", 422, { error: { code: "invalid", field: "reason", message: "reason: is required" } }, { code: "invalid", message: "reason: is required" }],
    ["a code without a message", 404, { error: { code: "not_found" } }, { code: "not_found", message: "not_found" }],
    ["a 401 without an error body", 401, undefined, { code: "unauthorized", message: "the API refused the token (STEWARD_TOKEN or the stack file's token)" }],
    ["anything else without an error body", 502, { oops: true }, { code: "http_error", message: "the API answered 502" }],
  ])("%s", (_name, status, json, want) => {
    const e = errorFromAnswer(status, json, "the API");
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status, ...want });
    expect(e.body).toEqual(json);
  });
});

describe("createJsonHttp against a stand-in", () => {
  let api: LoopbackServer;
  const seen: { method: string; url: string; auth: string | undefined; type: string | undefined; traceparent: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    api = await listenOnLoopback(async (req, res) => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", auth: req.headers.authorization, type: req.headers["content-type"], traceparent: req.headers.traceparent as string | undefined, body: await readText(req) });
      const reply = (status: number, body: string) => res.writeHead(status, { "content-type": "application/json" }).end(body);
      const path = (req.url ?? "").split("?")[0];
      if (path === "/prefix/hello") return reply(200, JSON.stringify({ hello: "world" }));
      if (path === "/stamped") return res.writeHead(200, { "content-type": "application/json", "x-stamp": "stack-1" }).end(JSON.stringify({ hello: "stamped" }));
      if (path === "/created") return reply(201, JSON.stringify({ hello: "new" }));
      if (path === "/garbage") return reply(200, "<html>not json</html>");
      if (path === "/garbage-502") return reply(502, "Bad Gateway");
      if (path === "/off-contract") return reply(200, JSON.stringify({ hello: 42 }));
      if (path === "/refused") return reply(409, JSON.stringify({ error: { code: "invalid_transition", message: "action is approved, not pending", state: "approved" } }));
      if (path === "/silent") return; // never answers
      reply(404, JSON.stringify({ error: { code: "not_found", message: `no route ${req.method} ${req.url}` } }));
    });
  });
  afterAll(async () => {
    await api?.close();
  });

  it("sends the token, the JSON body and extra headers; keeps a base path; answers the typed body", async () => {
    const http = createJsonHttp({ url: `${api.url}/prefix/`, token: "tok-123", label: "the API" });
    expect(await http.call("POST", "/hello", Greeting, { body: { a: 1 }, headers: { traceparent: "00-abc-def-01" } })).toEqual({ status: 200, data: { hello: "world" } });
    expect(seen.at(-1)).toEqual({ method: "POST", url: "/prefix/hello", auth: "Bearer tok-123", type: "application/json", traceparent: "00-abc-def-01", body: '{"a":1}' });
    const anon = createJsonHttp({ url: api.url, label: "the API" });
    expect(await anon.call("GET", "/created", Greeting)).toEqual({ status: 201, data: { hello: "new" } });
    expect(seen.at(-1)).toMatchObject({ method: "GET", auth: undefined, type: undefined, body: "" });
  });

  it.each<[string, string, (e: unknown) => void]>([
    ["an error body → ApiError with the API's code and body", "/refused", (e) => {
      expect(e).toBeInstanceOf(ApiError);
      expect(e).not.toBeInstanceOf(ApiBadResponse);
      expect(e).toMatchObject({ status: 409, code: "invalid_transition", message: "action is approved, not pending", body: { error: { state: "approved" } } });
    }],
    ["a body that is not JSON → ApiBadResponse not_json", "/garbage", (e) => {
      expect(e).toBeInstanceOf(ApiBadResponse);
      expect(e).toMatchObject({ status: 200, code: "bad_response", problem: "not_json", message: "the API answered 200 with a body that is not JSON" });
    }],
    ["a 502 that is not JSON → ApiBadResponse with its status", "/garbage-502", (e) => {
      expect(e).toBeInstanceOf(ApiBadResponse);
      expect(e).toMatchObject({ status: 502, problem: "not_json" });
    }],
    ["JSON off the contract → ApiBadResponse off_contract naming the path", "/off-contract", (e) => {
      expect(e).toBeInstanceOf(ApiBadResponse);
      expect(e).toMatchObject({ status: 200, problem: "off_contract", detail: "hello: expected a string", message: "unexpected answer from the API's /off-contract: hello: expected a string" });
    }],
    ["a query string is not part of the route named", "/off-contract?limit=5", (e) => {
      expect((e as Error).message).toBe("unexpected answer from the API's /off-contract: hello: expected a string");
    }],
  ])("%s", async (_name, path, check) => {
    const err = await createJsonHttp({ url: api.url, token: "t", label: "the API" }).call("GET", path, Greeting).then(() => undefined, (e: unknown) => e);
    expect(err).toBeDefined();
    check(err);
  });

  it("no answer within the timeout → ApiUnreachable saying so", async () => {
    const err = await createJsonHttp({ url: api.url, label: "the API", timeoutMs: 200 }).call("GET", "/silent", Greeting).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect(err).toMatchObject({ status: 0, code: "unreachable", url: api.url, reason: "no answer within 200 ms" });
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach the API at ${api.url}: `));
  });

  it("nothing listening → ApiUnreachable with the connection error, never the token", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const err = await createJsonHttp({ url, token: "secret-token-value", label: "the API" }).call("GET", "/hello", Greeting).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect((err as ApiUnreachable).reason).toMatch(/ECONNREFUSED/);
    expect((err as Error).message).toMatch(new RegExp(`^cannot reach the API at ${url}: `));
    expect(JSON.stringify({ m: (err as Error).message, r: (err as ApiUnreachable).reason })).not.toContain("secret-token-value");
  });

  /** A transport that is not fetch: node:http, as the CLI uses (counted, so a test sees it was the one used). */
  let nodeHttpCalls = 0;
  const nodeHttp: HttpTransport = (url, init) =>
    new Promise((resolve, reject) => {
      nodeHttpCalls += 1;
      const req = request(url, { method: init.method, headers: init.headers, signal: init.signal, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          resolve({ ok: status >= 200 && status < 300, status, headers: { get: (n) => (res.headers[n.toLowerCase()] as string | undefined) ?? null }, text: async () => Buffer.concat(chunks).toString("utf8") });
        });
      });
      req.on("error", reject);
      req.end(init.body);
    });

  it("uses the transport it is given, and a reply hook sees the headers first: what it throws is what the call throws", async () => {
    const seenStamps: (string | null)[] = [];
    const accept = createJsonHttp({ url: api.url, label: "the API", fetch: nodeHttp, onReply: (r) => void seenStamps.push(r.headers.get("x-stamp")) });
    const before = nodeHttpCalls;
    expect(await accept.call("GET", "/stamped", Greeting)).toEqual({ status: 200, data: { hello: "stamped" } });
    expect(nodeHttpCalls).toBe(before + 1);
    expect(seenStamps).toEqual(["stack-1"]);

    const refusal = new ApiError(0, "wrong_stack", "not our stack");
    const refuse = createJsonHttp({ url: api.url, label: "the API", fetch: nodeHttp, onReply: (r) => { if (r.headers.get("x-stamp") !== "stack-2") throw refusal; } });
    // Refused before the body is looked at: an answer off the contract is still the hook's refusal.
    expect(await refuse.call("GET", "/stamped", Greeting).catch((e: unknown) => e)).toBe(refusal);
    expect(await refuse.call("GET", "/off-contract", Greeting).catch((e: unknown) => e)).toBe(refusal);
  });

  it("jitless: the schema is asked to parse without its compiled fast path (a CLI parses once); by default it is not", async () => {
    const contexts: unknown[] = [];
    const Recording: ResponseSchema<{ hello: string }> = { safeParse: (v, ctx) => (contexts.push(ctx), Greeting.safeParse(v)) };
    await createJsonHttp({ url: `${api.url}/prefix`, label: "the API", jitless: true }).call("GET", "/hello", Recording);
    await createJsonHttp({ url: `${api.url}/prefix`, label: "the API" }).call("GET", "/hello", Recording);
    expect(contexts).toEqual([{ jitless: true }, undefined]);
  });

  it("a node:http transport that gets no answer within the timeout → ApiUnreachable saying so", async () => {
    const err = await createJsonHttp({ url: api.url, label: "the API", timeoutMs: 200, fetch: nodeHttp }).call("GET", "/silent", Greeting).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachable);
    expect(err).toMatchObject({ status: 0, code: "unreachable", reason: "no answer within 200 ms" });
  });
});
