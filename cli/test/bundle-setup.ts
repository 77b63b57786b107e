import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/**
 * Vitest global setup: the tests that run `steward` as a process run cli/dist/main.js, the bundle. It is rebuilt here
 * when any of its inputs changed since it was built (a source edited, `tsc -b` rebuilt a library), so a test never
 * runs an old bundle; when nothing changed this only compares file times.
 */
export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL("../bundle.js", import.meta.url)), "--if-stale"], { stdio: "inherit" });
}
