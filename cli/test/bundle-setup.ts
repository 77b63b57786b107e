import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * Vitest global setup: the tests that run `steward` as a process run cli/dist/main.js, the bundle. It is rebuilt here
 * when any of its inputs changed since it was built (a source edited, `tsc -b` rebuilt a library); when nothing changed
 * this only compares file times. A bundle that cannot be built (a library mid-change) does not stop the other tests:
 * the CLI's own tests check that the bundle is current and fail saying why.
 */
export default function setup(): void {
  try {
    execFileSync(process.execPath, [fileURLToPath(new URL("../bundle.js", import.meta.url)), "--if-stale"], { stdio: "inherit" });
  } catch (err) {
    process.stderr.write(`warning: the CLI bundle could not be rebuilt (${(err as Error).message.split("\n")[0]}); tests that run cli/dist/main.js will fail\n`);
  }
}
