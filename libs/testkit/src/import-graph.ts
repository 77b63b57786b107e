import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

/**
 * The packages a built module loads, statically and by dynamic import with a literal specifier, followed through
 * every file it reaches (workspace packages by their files, `libs/contracts/dist/task.js`; others by name, `zod`).
 * For tests that keep a light entry point light (a CLI command must not pull NATS, PostgreSQL or OpenTelemetry).
 */
export function importGraph(entry: string, from: string = process.cwd() + "/"): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  const walk = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1];
    out.add(pkg ?? file.replace(/^.*?\/((?:libs|services|cli)\/)/, "$1"));
    if (pkg || !/\.(m|c)?js$/.test(file)) return;
    const src = readFileSync(file, "utf8");
    const req = createRequire(file);
    for (const m of src.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (!spec || spec.startsWith("node:")) continue;
      walk(req.resolve(spec));
    }
  };
  walk(createRequire(from).resolve(entry));
  return [...out].sort();
}
