import { readFile } from "node:fs/promises";
import { formatProblem, parseFleetSpec, type SpecProblem } from "@steward/shared";

export interface ValidateResult {
  file: string;
  ok: boolean;
  problems: SpecProblem[];
}

export async function validateFile(file: string): Promise<ValidateResult> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    return { file, ok: false, problems: [{ file, path: "", message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] };
  }
  const r = parseFleetSpec(text, file);
  return r.ok ? { file, ok: true, problems: [] } : { file, ok: false, problems: r.problems };
}

export function renderValidate(results: ValidateResult[]): string {
  return results.map((r) => (r.ok ? `${r.file}: ok` : r.problems.map(formatProblem).join("\n"))).join("\n");
}
