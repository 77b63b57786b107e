import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["libs/*/test/**/*.test.ts", "services/*/test/**/*.test.ts", "cli/test/**/*.test.ts", "test/**/*.test.ts"],
    // The bundled CLI (cli/dist/main.js) is rebuilt when it is older than its inputs.
    // One CA and NATS server certificate for every end-to-end test file (test/support/secure-nats.ts).
    globalSetup: ["cli/test/bundle-setup.ts", "test/support/tls-setup.ts"],
    // Real nats-server and PostgreSQL processes; the machines have 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
