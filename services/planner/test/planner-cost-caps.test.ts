import { beforeAll, describe, expect, it } from "vitest";
import type { Sql } from "@steward/platform/db";
import type { FakeAnthropic } from "@steward/testkit";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { createClaudeBackend } from "../src/backends.js";
import { createCostLedger, utcDay } from "../src/cost-ledger.js";
import { createPlannerMetrics } from "../src/metrics.js";
import { createModelCaller } from "../src/model-caller.js";
import { buildPrompt } from "../src/prompt.js";
import { context } from "@steward/platform/tracing";
import { config, answer, live, usePlannerHarness } from "./harness.js";

/** Claude spend under concurrent escalations never passes a cap. */
usePlannerHarness();
let sql: Sql, anthropic: FakeAnthropic;
beforeAll(() => ({ sql, anthropic } = live));

describe("cost caps", () => {
  it("200 concurrent escalations never take spend past any cap", async () => {
    const caps = { perTaskUsd: 0.05, perAgentDayUsd: 0.2, globalDayUsd: 0.3 };
    const ledger = createCostLedger(sql, caps);
    const cfg = config({ MODEL_GROUPS: JSON.stringify({ tiny: { model: "llama3.1:8b", num_ctx: 1024, escalate_above_tokens: 100 } }) });
    anthropic.reset();
    const caller = createModelCaller({
      config: cfg,
      local: { health: async () => "up", chat: async () => ({ text: answer([]).content, inputTokens: 1, outputTokens: 1, model: "llama3.1:8b" }), trip: () => undefined },
      claude: createClaudeBackend({ apiKey: "sk-ant-test-key-0123456789abcdef", baseUrl: anthropic.url, model: "claude-test", maxRetries: 0, timeoutMs: 10_000 }),
      ledger,
      store: { addCall: async () => undefined, addStep: async () => undefined },
      metrics: createPlannerMetrics(createRegistry("cap-test", false)),
      logger: silentLogger(),
    });
    const prompt = () => buildPrompt("diagnostician", "x".repeat(2000), [], null);
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) => caller.call({ taskId: `task-${i % 20}`, agent: i % 2 ? "diagnostician" : "operator-answerer", source: "api", restricted: false, sensitive: false, parent: context.active() }, prompt)),
    );
    const claudeServed = outcomes.filter((o) => o.served === "model" && o.provider === "anthropic").length;
    expect(claudeServed).toBeGreaterThan(0);
    expect(claudeServed).toBeLessThan(200);
    expect(anthropic.messages()).toHaveLength(claudeServed);
    const day = utcDay(new Date());
    const [g] = await sql<{ usd: number }[]>`SELECT coalesce(sum(coalesce(actual_usd, reserved_usd)), 0)::float AS usd FROM planner_cost_ledger WHERE state <> 'released' AND day = ${day}`;
    const perAgent = await sql<{ usd: number }[]>`SELECT sum(actual_usd)::float AS usd FROM planner_cost_ledger WHERE state = 'settled' GROUP BY agent`;
    const perTask = await sql<{ usd: number }[]>`SELECT sum(actual_usd)::float AS usd FROM planner_cost_ledger WHERE state = 'settled' GROUP BY task_id`;
    expect(g?.usd).toBeLessThanOrEqual(caps.globalDayUsd);
    for (const a of perAgent) expect(a.usd).toBeLessThanOrEqual(caps.perAgentDayUsd);
    for (const t of perTask) expect(t.usd).toBeLessThanOrEqual(caps.perTaskUsd);
    expect(await sql`SELECT id FROM planner_cost_ledger WHERE state = 'reserved'`).toHaveLength(0);
    // The refused ones fell back to the local model with the reason.
    expect(outcomes.some((o) => o.served === "model" && o.provider === "ollama" && o.route.reason === "budget_exhausted")).toBe(true);
  });
});
