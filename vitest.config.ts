import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["{libs,services,cli}/*/test/**/*.test.ts", "cli/test/**/*.test.ts"],
    // Real nats-server and PostgreSQL processes; the machines have 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
