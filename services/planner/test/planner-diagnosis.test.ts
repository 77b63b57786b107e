import { actionsOf, auditOf, only } from "@steward/actions/testing";
import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "@steward/platform/db";
import type { FakeAnthropic, FakeOllama } from "@steward/testkit";
import { CostReport } from "@steward/contracts/task";
import { TP, SECRET_VALUE, PLAIN_ENV, makeSources, start, post, get, done, envelope, answer, allOllamaText, live, usePlannerHarness } from "./harness.js";

/** A task end to end: evidence, the routed model call (local, Claude, fallbacks, restricted tasks), proposals, conversations. */
usePlannerHarness();
let sql: Sql, ollama: FakeOllama, anthropic: FakeAnthropic;
beforeAll(() => ({ sql, ollama, anthropic } = live));

describe("diagnosis", () => {
  it("serves a task locally, proposes only catalog actions as pending with the diagnosis, and keeps secrets out of prompts", async () => {
    ollama.script(
      answer([
        { kind: "restart", node: "node1", service: "api", reason: "crashed on db connection" },
        { kind: "rm -rf /", node: "node1", service: "api", reason: "clean up" },
        { kind: "restart", node: "node1", service: "ghost", reason: "?" },
        { kind: "stop", node: "node9", service: "api", reason: "?" },
      ]),
    );
    const { url, registry } = await start();
    expect((await post(url, envelope("t-local"), { traceparent: TP })).status).toBe(202);
    const d = await done(url, "t-local");
    expect(d.task).toMatchObject({ state: "succeeded", agent: "diagnostician", model_groups: ["default"], cost_usd: 0 });
    expect(d.calls).toMatchObject([{ provider: "ollama", model_group: "default", model: "llama3.1:8b", decision: "local", reason: "within_context" }]);
    expect(d.proposals.filter((p) => p.accepted)).toHaveLength(1);
    expect(d.proposals.filter((p) => !p.accepted).map((p) => p.reason)).toEqual([
      expect.stringContaining("not in the action catalog"),
      expect.stringContaining("service 'ghost' is not declared"),
      expect.stringContaining("node 'node9' is not declared"),
    ]);
    const actions = await actionsOf(sql);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({ node: "node1", service: "api", kind: "restart", state: "pending", proposed_by: "planner", task_id: "t-local", diagnosis: "api cannot reach the database" });
    expect(String(actions[0]?.["traceparent"])).toContain("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(only(await auditOf(sql), "actor", "channel", "to_state")).toEqual([{ actor: "planner", channel: "system", to_state: "pending" }]);
    expect(d.proposals.find((p) => p.accepted)?.action_id).toBe(actions[0]?.["id"]);
    // Evidence reached the model; secrets and env values did not.
    const sent = allOllamaText();
    expect(sent).toContain("connection refused");
    expect(sent).not.toContain(SECRET_VALUE);
    expect(sent).not.toContain(PLAIN_ENV);
    expect(sent).not.toContain("abcdef0123456789");
    expect(ollama.chats()[0]?.stream).toBe(true);
    // Investigating, the model is offered the answer tool and the read-only tools (native tool calling, no `format`).
    expect((ollama.chats()[0]?.["tools"] as { function: { name: string } }[]).map((t) => t.function.name)).toEqual(["report_diagnosis", "service_logs", "service_events", "recent_actions", "service_spec", "container_inspect", "host_metrics", "deploy_checkout", "fleet_git_log", "fleet_spec_diff", "past_incidents"]);
    expect(anthropic.requests).toHaveLength(0);
    expect(d.task.answer).toContain("Proposed actions");
    expect(await registry.metrics()).toMatch(/steward_planner_overhead_seconds_count\{[^}]*\} 1/);
  });

  it("escalates a context overflow to Claude and records the cost", async () => {
    anthropic.script({ json: { diagnosis: "db down", answer: "The database is down.", proposals: [{ kind: "restart", node: "node2", service: "db", reason: "db exited" }] }, inputTokens: 1200, outputTokens: 100, cacheWriteTokens: 400, cacheReadTokens: 1000 });
    const { url } = await start({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 500 } }) });
    await post(url, envelope("t-big"));
    const d = await done(url, "t-big");
    expect(ollama.chats()).toHaveLength(0);
    expect(anthropic.messages()).toHaveLength(1);
    // Investigating, Claude must call a tool: a read-only one, or the answer tool (it took the answer tool at once).
    expect(anthropic.messages()[0]?.tool_choice).toMatchObject({ type: "any" });
    expect(anthropic.messages()[0]?.tools?.[0]?.name).toBe("report_diagnosis");
    // Priced from the usage the API returned, cache writes and reads at their own prices (claude-sonnet-4-6's defaults).
    const cost = (1200 * 3 + 100 * 15 + 400 * 3.75 + 1000 * 0.3) / 1e6;
    // The static part of the prompt is marked for Anthropic's prompt cache.
    expect(anthropic.messages()[0]?.system).toMatchObject([{ type: "text", cache_control: { type: "ephemeral" } }]);
    expect(d.calls).toMatchObject([{ provider: "anthropic", model_group: "claude", decision: "claude", reason: "context_overflow", input_tokens: 1200, output_tokens: 100, cost_usd: cost }]);
    expect(d.task.model_groups).toEqual(["claude"]);
    expect(await sql`SELECT state, actual_usd::float AS usd FROM planner_cost_ledger`).toEqual([{ state: "settled", usd: cost }]);
    const report = CostReport.parse((await get(url, "/cost")).json);
    expect(report.today.global.usd).toBeCloseTo(cost);
    expect(report.by_source).toEqual([{ source: "cli", usd: cost, calls: 1 }]);
    expect(report.headroom.global_day_usd).toBeCloseTo(30 - cost);
    expect(JSON.stringify(anthropic.requests.map((r) => r.body))).not.toContain(SECRET_VALUE);
  });

  it("falls back to Claude when the local model is down", async () => {
    ollama.setMode("down");
    const { url } = await start();
    await post(url, envelope("t-down"));
    const d = await done(url, "t-down");
    expect(d.calls).toMatchObject([{ provider: "anthropic", reason: "local_down" }]);
  });

  it("degrades to the rule-based diagnoser when the local model is down and Claude is off, and says so", async () => {
    ollama.setMode("down");
    const { url } = await start({ CLAUDE_ENABLED: "false" });
    await post(url, envelope("t-rules"));
    const d = await done(url, "t-rules");
    expect(d.calls).toMatchObject([{ provider: "rules", model_group: "rules", decision: "rules", reason: "claude_disabled" }]);
    expect(d.task.answer).toContain("No model could be used");
    expect(d.task.answer).toContain("crash_loop");
    expect(d.proposals).toMatchObject([{ action_kind: "restart", node: "node1", service: "api", accepted: true }]);
    expect(anthropic.requests).toHaveLength(0);
  });

  it("falls back when Claude is overloaded, releasing the reservation", async () => {
    ollama.setMode("down");
    anthropic.script({ error: "overloaded" });
    const { url } = await start();
    await post(url, envelope("t-529"));
    const d = await done(url, "t-529");
    expect(anthropic.messages()).toHaveLength(1);
    expect(d.calls).toMatchObject([{ provider: "rules", reason: "claude_unavailable" }]);
    expect(await sql`SELECT state FROM planner_cost_ledger`).toEqual([{ state: "released" }]);
  });

  it("never lets a restricted task reach the Anthropic server", async () => {
    const { url } = await start({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 500 } }) });
    ollama.script(answer([]));
    await post(url, envelope("t-r1", { restricted: true }));
    const d1 = await done(url, "t-r1");
    expect(d1.calls).toMatchObject([{ provider: "ollama", reason: "restricted" }]);
    // Trimmed to fit the local group.
    expect(JSON.stringify(ollama.chats()[0]?.messages).length / 4).toBeLessThan(1024);
    ollama.setMode("down");
    await post(url, envelope("t-r2", { restricted: true }));
    const d2 = await done(url, "t-r2");
    expect(d2.calls).toMatchObject([{ provider: "rules", reason: "restricted" }]);
    expect(anthropic.requests).toHaveLength(0);
  });

  it("a conversation with a restricted turn, then an unrestricted follow-up while Claude is enabled: the Anthropic stand-in receives no request containing restricted text (question, attached evidence, tool output, the answer drawn from them)", async () => {
    const RESTRICTED_TEXT = "vault passphrase hint: blue-heron-1187";
    const RESTRICTED_EVIDENCE = "customer ledger row 77-ALPHA-QUINCE";
    const RESTRICTED_LOG = "payroll export path /srv/hr/salaries-2026.csv";
    const RESTRICTED_ANSWER = "the restricted answer names ledger 77-ALPHA-QUINCE";
    // Tool output gathered for the restricted task: the service's log tail.
    const sources = makeSources({ logTail: async (node, service) => ({ ok: true, node, service, text: `starting\n${RESTRICTED_LOG}\nerror: connection refused\n`, bytes: 90, truncated: false }) });
    // No circuit: each call asks Ollama again, so the test can take it down and bring it back.
    const { url } = await start({ OLLAMA_CIRCUIT_MS: "1" }, { sources });
    ollama.script(answer([], RESTRICTED_ANSWER));
    await post(url, envelope("cr-1", { conversation_id: "conv-r", restricted: true, content: `why is api down? ${RESTRICTED_TEXT}`, evidence: { note: RESTRICTED_EVIDENCE } }));
    expect((await done(url, "cr-1")).calls).toMatchObject([{ provider: "ollama" }]);
    // The local model did see all of it: the texts were in play, so their absence below means something.
    for (const t of [RESTRICTED_TEXT, RESTRICTED_EVIDENCE, RESTRICTED_LOG]) expect(allOllamaText()).toContain(t);
    // The follow-up itself is not restricted, Claude is enabled and the local model is down: still local-only.
    ollama.setMode("down");
    await post(url, envelope("cr-2", { conversation_id: "conv-r", content: "and what should I do now?" }));
    const d2 = await done(url, "cr-2");
    expect(d2.calls).toMatchObject([{ provider: "rules", reason: "restricted" }]);
    expect(d2.steps.map((s) => s.message)).toContain("local only: this conversation holds restricted turns");
    // With the local model back, the follow-up is served locally, history included.
    ollama.setMode("up");
    ollama.script(answer([]));
    await post(url, envelope("cr-3", { conversation_id: "conv-r", content: "is it fixed?" }));
    expect((await done(url, "cr-3")).calls).toMatchObject([{ provider: "ollama" }]);
    const lastLocal = JSON.stringify(ollama.chats().at(-1)?.messages);
    expect(lastLocal).toContain(RESTRICTED_TEXT);
    expect(lastLocal).toContain(RESTRICTED_ANSWER);
    const toClaude = JSON.stringify(anthropic.requests.map((r) => r.body));
    for (const t of [RESTRICTED_TEXT, RESTRICTED_EVIDENCE, RESTRICTED_LOG, RESTRICTED_ANSWER]) expect(toClaude).not.toContain(t);
    expect(anthropic.requests).toHaveLength(0);
    // A conversation without restricted turns still escalates: the check is on the data, not a blanket rule.
    ollama.setMode("down");
    anthropic.script({ json: { diagnosis: "d", answer: "a", proposals: [] } });
    await post(url, envelope("cu-1", { conversation_id: "conv-u", content: "why is web slow?" }));
    expect((await done(url, "cu-1")).calls[0]?.provider).toBe("anthropic");
  });

  it("continues a conversation across tasks", async () => {
    ollama.script(answer([], "first diagnosis: the db port is closed"), answer([]));
    const { url } = await start();
    await post(url, envelope("c-1", { conversation_id: "conv-1", content: "why is api down?" }));
    await done(url, "c-1");
    await post(url, envelope("c-2", { conversation_id: "conv-1", content: "and what should I do now?" }));
    await done(url, "c-2");
    const second = JSON.stringify(ollama.chats()[1]?.messages);
    expect(second).toContain("why is api down?");
    expect(second).toContain("first diagnosis: the db port is closed");
    expect((await get(url, "/tasks?conversation_id=conv-1")).json.tasks?.map((t) => t.id)).toEqual(["c-2", "c-1"]);
  });

  it("runs tasks on several workers without running any twice", async () => {
    const { url } = await start({ WORKERS: "3" });
    for (let i = 0; i < 6; i++) await post(url, envelope(`w-${i}`, { content: `question ${i} about api` }));
    for (let i = 0; i < 6; i++) expect((await done(url, `w-${i}`)).task.state).toBe("succeeded");
    expect(ollama.chats()).toHaveLength(6);
  });
});
