import { startFakeAnthropic, startFakeOllama, type FakeAnthropic, type FakeOllama } from "@steward/testkit";
import type { EvalTarget } from "./runner.js";
import { scriptedModel } from "./scripted-model.js";

/** The scripted stand-in model on both APIs' wire protocols (the planner tests' stand-ins), as two eval targets. */
export interface StandIns {
  ollama: FakeOllama;
  anthropic: FakeAnthropic;
  /** The planner served by the Ollama stand-in (Claude off). */
  ollamaTarget: EvalTarget;
  /** The planner served by the Anthropic stand-in (no local model: every call goes to Claude). */
  anthropicTarget: EvalTarget;
  close(): Promise<void>;
}

export async function startStandIns(): Promise<StandIns> {
  const [ollama, anthropic] = await Promise.all([startFakeOllama(), startFakeAnthropic()]);
  return {
    ollama,
    anthropic,
    ollamaTarget: {
      label: "stand-in (Ollama API)",
      env: { OLLAMA_URL: ollama.url, CLAUDE_ENABLED: "false" },
      beforeFixture: (f) => {
        const m = scriptedModel(f);
        ollama.respond((req) => m.ollama(req));
      },
    },
    anthropicTarget: {
      label: "stand-in (Anthropic API)",
      // Nothing listens on port 1: the local model is down, so Claude serves every call (reason local_down).
      env: { OLLAMA_URL: "http://127.0.0.1:1", OLLAMA_HEALTH_TIMEOUT_MS: "500", ANTHROPIC_BASE_URL: anthropic.url, ANTHROPIC_API_KEY: "sk-ant-eval-standin-0123456789abcdef", CLAUDE_MAX_RETRIES: "0" },
      beforeFixture: (f) => {
        const m = scriptedModel(f);
        anthropic.respond((req) => m.anthropic(req));
      },
    },
    async close() {
      await Promise.all([ollama.close(), anthropic.close()]);
    },
  };
}
