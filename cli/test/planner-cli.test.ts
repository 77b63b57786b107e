/**
 * `steward task`, `steward cost` and `steward chat` against a local server that speaks the planner's HTTP contract.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { CostReport, TaskDetail, type TaskEnvelope } from "@steward/contracts/task";
import { initTracing } from "@steward/platform/tracing";
import { waitFor } from "@steward/testkit";
import { runCli } from "../src/cli.js";
import { parseChatLine } from "../src/commands/chat.js";
import { connectPlanner } from "../src/connect-planner.js";
import { defaultFrames, startFakePlanner, type FakePlanner } from "./fake-planner.js";

const exporter = new InMemorySpanExporter();
const tracing = initTracing({ component: "cli-test", exporter });

let fake: FakePlanner;
let home = "";

beforeAll(async () => {
  fake = await startFakePlanner("s3cret-token");
  home = await mkdtemp(join(tmpdir(), "steward-planner-cli-"));
});
afterAll(async () => {
  await fake.close();
  await rm(home, { recursive: true, force: true });
  await tracing.shutdown();
});
afterEach(() => {
  fake.script = defaultFrames;
  fake.override = undefined;
});

function capture(env: NodeJS.ProcessEnv = {}, input?: NodeJS.ReadableStream) {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env: { STEWARD_HOME: home, STEWARD_USER: "alice", STEWARD_PLANNER_URL: fake.url, STEWARD_API_URL: fake.url, STEWARD_TOKEN: "s3cret-token", ...env }, ...(input ? { in: input } : {}) };
  return { io, out, err, text: () => out.join("\n"), errText: () => err.join("\n") };
}

const lastEnvelope = (): TaskEnvelope => fake.envelopes[fake.envelopes.length - 1]!;

describe("steward task add", () => {
  it("sends a cli envelope, shows each step once in order, then the answer, proposals, model groups and cost", async () => {
    const c = capture();
    const before = fake.envelopes.length;
    expect(await runCli(["task", "add", "why", "does web keep restarting?", "--timeout", "10"], c.io)).toBe(0);
    expect(fake.envelopes.length).toBe(before + 1);
    const env = lastEnvelope();
    expect(env).toMatchObject({ content: "why does web keep restarting?", source: "cli", user: "alice", restricted: false });
    expect(env.task_id).toMatch(/^[0-9a-f-]{36}$/);
    const text = c.text();
    const order = ["[queued]", "[running] diagnostician", "[triage] diagnostician", "[tool] recent events", "[diagnosis] crash loop", "[report] answered", "[succeeded]", "answer:", "proposed actions:", "model calls:"];
    let at = -1;
    for (const o of order) {
      const i = text.indexOf(o);
      expect(i, `${o} after position ${at} in:\n${text}`).toBeGreaterThan(at);
      at = i;
    }
    expect(text.match(/\[tool\] recent events/g)).toHaveLength(1);
    const task = fake.tasks.get(env.task_id)!;
    const accepted = task.proposals.find((p) => p.accepted)!;
    expect(text).toContain(`steward approve ${accepted.action_id!.slice(0, 8)}`);
    expect(text).toMatch(/restart\s+demo-a\/web\s+accepted/);
    expect(text).toMatch(/shell\s+demo-a\s+DROPPED\s+not in the action catalog/);
    expect(text).toMatch(/model groups: local-small/);
    expect(text).toMatch(/ollama\s+local-small\s+qwen2\.5:7b\s+local\s+within_context\s+812\/96/);
  });

  it("starts the trace: the envelope and the traceparent header carry the CLI span's context", async () => {
    exporter.reset();
    const c = capture();
    expect(await runCli(["task", "add", "--no-wait", "trace me"], c.io)).toBe(0);
    const post = fake.received.filter((r) => r.method === "POST" && r.path === "/inbox").at(-1)!;
    const header = post.headers["traceparent"] as string;
    expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(lastEnvelope().traceparent).toBe(header);
    const span = exporter.getFinishedSpans().find((s) => s.name === "cli.task_add")!;
    expect(span).toBeDefined();
    expect(header).toBe(`00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`);
    expect(span.attributes["steward.task_id"]).toBe(lastEnvelope().task_id);
  });

  it("--no-wait prints only the id and never polls the task", async () => {
    const c = capture();
    const gets = () => fake.received.filter((r) => r.method === "GET" && r.path.startsWith("/tasks/")).length;
    const g0 = gets();
    expect(await runCli(["task", "add", "--no-wait", "is the disk on demo-b ok?"], c.io)).toBe(0);
    expect(c.out).toEqual([lastEnvelope().task_id]);
    expect(gets()).toBe(g0);
  });

  it("--json prints the final TaskDetail on stdout and the progress on stderr", async () => {
    const c = capture();
    expect(await runCli(["task", "add", "--json", "--conversation", "conv-7", "--agent", "diagnostician", "--ttl", "60", "--restricted", "hello"], c.io)).toBe(0);
    const d = TaskDetail.parse(JSON.parse(c.text()));
    expect(d.task.state).toBe("succeeded");
    expect(d.task.conversation_id).toBe("conv-7");
    expect(lastEnvelope()).toMatchObject({ conversation_id: "conv-7", target_agent: "diagnostician", ttl_s: 60, restricted: true });
    expect(c.errText()).toMatch(/\[triage\]/);
  });

  it("a task that fails exits 1 and says why", async () => {
    fake.script = () => [{ state: "running" }, { state: "dead", error: "expired after 3 attempts: model backend down" }];
    const c = capture();
    expect(await runCli(["task", "add", "x"], c.io)).toBe(1);
    expect(c.text()).toMatch(/: dead/);
    expect(c.text()).toMatch(/error:\s+expired after 3 attempts/);
  });

  it("still running at --timeout → exit 3 and how to follow it", async () => {
    fake.script = () => [{ state: "running" }];
    const c = capture();
    const t0 = Date.now();
    expect(await runCli(["task", "add", "--timeout", "0.3", "slow one"], c.io)).toBe(3);
    const tookS = (Date.now() - t0) / 1000;
    const m = /still running after (\d+) s; follow it with `steward task show [0-9a-f]{8}`/.exec(c.errText());
    expect(m, c.errText()).not.toBeNull();
    // Whole seconds of what it waited: no more than the call took (on a busy machine that can pass the half second
    // that rounds to 1, so 0 is not a given).
    expect(Number(m![1])).toBeLessThanOrEqual(Math.round(tookS));
  });

  it("the planner's 422 names the field; exit 1", async () => {
    const c = capture();
    expect(await runCli(["task", "add", "--agent", "poet", "write me a poem"], c.io)).toBe(1);
    expect(c.errText()).toMatch(/error: target_agent: unknown agent 'poet' \(HTTP 422, invalid\)/);
  });

  it("blank text or a bad --ttl is refused locally (exit 2), nothing sent", async () => {
    const n = fake.envelopes.length;
    const posts = fake.received.length;
    const c = capture();
    expect(await runCli(["task", "add", "   "], c.io)).toBe(2);
    expect(await runCli(["task", "add", "--ttl", "0", "x"], c.io)).toBe(2);
    expect(await runCli(["task", "add", "--bogus", "x"], c.io)).toBe(2);
    expect(c.errText()).toMatch(/--ttl must be a positive number/);
    expect(fake.envelopes.length).toBe(n);
    expect(fake.received.length).toBe(posts);
  });

  it("the same idempotency key twice returns the first task and runs nothing twice", async () => {
    const a = capture();
    expect(await runCli(["task", "add", "--no-wait", "--idempotency-key", "k-1", "once"], a.io)).toBe(0);
    const n = fake.envelopes.length;
    const b = capture();
    expect(await runCli(["task", "add", "--idempotency-key", "k-1", "once"], b.io)).toBe(0);
    expect(fake.envelopes.length).toBe(n);
    expect(b.text()).toContain(`a task with this idempotency key exists already: ${a.out[0]}`);
  });

  it("a wrong token is a clear error, not a crash", async () => {
    const c = capture({ STEWARD_TOKEN: "wrong" });
    expect(await runCli(["task", "ls"], c.io)).toBe(1);
    expect(c.errText()).toMatch(/missing or wrong bearer token \(HTTP 401, unauthorized\)/);
  });

  it("an answer that does not match the schema is reported, not printed half-parsed", async () => {
    fake.override = { status: 200, body: JSON.stringify({ tasks: [{ id: 1 }] }) };
    const c = capture();
    expect(await runCli(["task", "ls"], c.io)).toBe(1);
    expect(c.errText()).toMatch(/unexpected answer from the planner's \/tasks: tasks\.0\.id/);
  });
});

describe("steward task show / ls", () => {
  it("show takes an id prefix; --json is the TaskDetail", async () => {
    const a = capture();
    await runCli(["task", "add", "--no-wait", "show me"], a.io);
    const id = a.out[0]!;
    const c = capture();
    expect(await runCli(["task", "show", id.slice(0, 8)], c.io)).toBe(0);
    expect(c.text()).toContain(`task ${id}`);
    expect(c.text()).toMatch(/asked:\s+show me/);
    const j = capture();
    expect(await runCli(["task", "show", id, "--json"], j.io)).toBe(0);
    expect(TaskDetail.parse(JSON.parse(j.text())).task.id).toBe(id);
  });

  it("an unknown id is a clear 404", async () => {
    const c = capture();
    expect(await runCli(["task", "show", "ffffffff"], c.io)).toBe(1);
    expect(c.errText()).toMatch(/no recent task with id ffffffff/);
    expect(await runCli(["task", "show"], c.io)).toBe(2);
  });

  it("ls lists tasks; --conversation filters on the planner", async () => {
    const c = capture();
    expect(await runCli(["task", "ls", "--conversation", "conv-7", "--json"], c.io)).toBe(0);
    const r = JSON.parse(c.text()) as { tasks: { conversation_id: string }[] };
    expect(r.tasks.length).toBeGreaterThan(0);
    expect(r.tasks.every((t) => t.conversation_id === "conv-7")).toBe(true);
    expect(fake.received.at(-1)?.path).toBe("/tasks?limit=20&conversation_id=conv-7");
    const t = capture();
    expect(await runCli(["task", "ls"], t.io)).toBe(0);
    expect(t.text()).toMatch(/^ID\s+STATE\s+SOURCE\s+USER/);
    expect(t.text()).toMatch(/succeeded\s+cli\s+alice\s+diagnostician/);
  });
});

describe("steward cost", () => {
  it("shows caps, today's spend and the headroom under each cap, and spend by day, agent, model group and source", async () => {
    const c = capture();
    expect(await runCli(["cost"], c.io)).toBe(0);
    const text = c.text();
    expect(text).toMatch(/caps: \$5\.00 per task · \$10\.00 per agent per day · \$30\.00 per day overall/);
    expect(text).toMatch(/today: \$1\.25 in 7 calls \(4% of the daily cap\); headroom \$28\.75/);
    expect(text).toMatch(/diagnostician\s+\$1\.25\s+5\s+13%\s+\$8\.75/);
    expect(text).toMatch(/operator-answerer\s+\$0\s+2\s+0%\s+\$10\.00/);
    expect(text).toMatch(/2025-01-01\s+\$0\.0040\s+1/);
    expect(text).toMatch(/claude-sonnet\s+\$1\.25\s+2/);
    expect(text).toMatch(/supervisor\s+\$1\.20\s+5/);
  });

  it("says so when the daily cap is reached; --json is the CostReport", async () => {
    const saved = fake.cost;
    fake.cost = { ...saved, headroom: { ...saved.headroom, global_day_usd: 0 } };
    try {
      const c = capture();
      expect(await runCli(["cost"], c.io)).toBe(0);
      expect(c.text()).toMatch(/the daily cap is reached/);
      const j = capture();
      expect(await runCli(["cost", "--json"], j.io)).toBe(0);
      expect(CostReport.parse(JSON.parse(j.text())).headroom.global_day_usd).toBe(0);
    } finally {
      fake.cost = saved;
    }
  });
});

describe("planner client configuration", () => {
  it("falls back to the stack file's planner_url and token", async () => {
    const h = await mkdtemp(join(tmpdir(), "steward-stackfile-"));
    try {
      await writeFile(join(h, "stack.json"), JSON.stringify({ api_url: fake.url, planner_url: fake.url, token: "s3cret-token", nats_url: "x", database_url: "x", fleet_spec: "x", dir: h, pid: 1, started_at: "now" }));
      const p = await connectPlanner({ STEWARD_HOME: h });
      expect(p.url).toBe(fake.url);
      expect((await p.cost()).caps.global_day_usd).toBe(30);
    } finally {
      await rm(h, { recursive: true, force: true });
    }
  });

  it("a stack without a planner is a clear error", async () => {
    const c = capture({ STEWARD_PLANNER_URL: "", STEWARD_HOME: join(tmpdir(), "steward-nowhere-" + process.pid) });
    expect(await runCli(["task", "ls"], c.io)).toBe(1);
    expect(c.errText()).toMatch(/no Steward planner configured/);
  });
});

describe("steward chat", () => {
  it("parses chat lines", () => {
    expect(parseChatLine("  ")).toEqual({ kind: "empty" });
    expect(parseChatLine("why?")).toEqual({ kind: "ask", text: "why?" });
    expect(parseChatLine("/reject 1a2b not now, investigating")).toEqual({ kind: "command", name: "reject", id: "1a2b", rest: "not now, investigating" });
    expect(parseChatLine("/QUIT")).toEqual({ kind: "command", name: "quit", id: undefined, rest: "" });
  });

  it("keeps one conversation across questions, shows progress, approves and rejects in place, stops at /quit", async () => {
    const input = new PassThrough();
    const c = capture({}, input);
    const n0 = fake.envelopes.length;
    const done = runCli(["chat"], c.io);
    input.write("why does web keep restarting?\n");
    // Approve needs the id that the first answer prints: wait for it like a person would.
    const first = await waitForText(c.text, /\/approve ([0-9a-f]{8})/);
    input.write(`/approve ${first[1]}\n`);
    await waitForText(c.text, /approved [0-9a-f]{8}: restart demo-a\/web/);
    input.write("and the api?\n/reject\n");
    const second = await waitForText(c.text, new RegExp(`/approve ((?!${first[1]})[0-9a-f]{8})`));
    input.write(`/reject ${second[1]} looking into it myself\n/quit\nthis line is never sent\n`);
    expect(await done).toBe(0);

    const envs = fake.envelopes.slice(n0);
    expect(envs.map((e) => e.content)).toEqual(["why does web keep restarting?", "and the api?"]);
    expect(envs[0]!.conversation_id).toBeDefined();
    expect(envs[1]!.conversation_id).toBe(envs[0]!.conversation_id);
    expect(c.text()).toContain(`conversation ${envs[0]!.conversation_id}`);
    expect(c.text()).toMatch(/… \[tool\] recent events of demo-a\/web/);
    expect(c.text()).toMatch(/steward: About "why does web keep restarting\?"/);
    expect(c.text()).toMatch(/… \[succeeded\] web is running and healthy/);
    expect(c.text()).toMatch(/usage: \/reject ID REASON/);
    expect(c.text()).toMatch(/rejected [0-9a-f]{8}: restart demo-a\/web \(now rejected\)/);
    expect(c.text().trimEnd().endsWith("bye")).toBe(true);

    const decisions = fake.received.filter((r) => r.method === "POST" && /\/api\/actions\/.+\/(approve|reject)$/.test(r.path));
    expect(decisions.slice(-2).map((r) => r.body)).toEqual([
      { actor: "alice", channel: "cli" },
      { actor: "alice", channel: "cli", reason: "looking into it myself" },
    ]);
  });

  it("a refused decision is reported and the conversation goes on; EOF ends it", async () => {
    const c = capture({}, Readable.from(["/approve deadbeef\n", "/nope\n", "/tasks\n"]));
    expect(await runCli(["chat", "--conversation", "conv-7"], c.io)).toBe(0);
    expect(c.text()).toMatch(/resuming: \d+ earlier tasks? in this conversation/);
    expect(c.text()).toMatch(/error: no action with id deadbeef \(HTTP 404, not_found\)/);
    expect(c.text()).toMatch(/unknown command \/nope/);
    expect(c.text()).toMatch(/ID\s+STATE\s+SOURCE/);
  });

  it("an action that expired meanwhile is not approved; the chat points at the same operation pending again", async () => {
    const base = { node: "n1", service: "api", kind: "restart" as const, reason: "r", drift_key: "down:n1/api", proposed_by: "supervisor", diagnosis: null, created_at: new Date().toISOString(), updated_at: new Date().toISOString(), expires_at: new Date().toISOString(), traceparent: null };
    const old = { ...base, id: "0ld00000-0000-4000-8000-000000000001", state: "expired" as const, result: "drift cleared: down:n1/api" };
    const again = { ...base, id: "a6a1e000-0000-4000-8000-000000000002", state: "pending" as const, result: null };
    fake.actions.set(old.id, old);
    fake.actions.set(again.id, again);
    const input = new PassThrough();
    const c = capture({}, input);
    const done = runCli(["chat"], c.io);
    input.write("/approve 0ld00000-0000-4000-8000-000000000001\n");
    await waitForText(c.text, /pending again as a6a1e000: \/approve a6a1e000/);
    expect(c.text()).toMatch(/not approved: action 0ld00000 is expired \(drift cleared: down:n1\/api\)/);
    expect(fake.actions.get(again.id)?.state).toBe("pending");
    input.end("/approve a6a1e000\n");
    expect(await done).toBe(0);
    expect(c.text()).toMatch(/approved a6a1e000: restart n1\/api/);
  });

  it("works as a real process with stdin as a pipe", async () => {
    const cli = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const child = spawn(process.execPath, [cli, "chat"], { env: { ...process.env, STEWARD_HOME: home, STEWARD_USER: "bob", STEWARD_PLANNER_URL: fake.url, STEWARD_API_URL: fake.url, STEWARD_TOKEN: "s3cret-token" }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.stdin.end("is demo-b healthy?\n/pending\n");
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(code, out).toBe(0);
    expect(out).toMatch(/steward: About "is demo-b healthy\?"/);
    expect(out).toMatch(/pending\s+restart\s+demo-a\/web/);
    expect(lastEnvelope()).toMatchObject({ user: "bob", source: "cli" });
  });
});

async function waitForText(text: () => string, re: RegExp, timeoutMs = 10_000): Promise<RegExpExecArray> {
  return waitFor(`${re}`, () => re.exec(text()) ?? undefined, timeoutMs, 20).catch((err: Error) => {
    throw new Error(`${err.message} in:\n${text()}`);
  });
}
