/**
 * Terminal colour, decided once per run from the environment: FORCE_COLOR wins (0 or false turns colour off, any
 * other value on), then NO_COLOR (https://no-color.org: set and not empty turns it off), then colour only on a
 * terminal that is not TERM=dumb. Tiny and import-free: it runs on the help path.
 */
export function colorOn(o: { env: NodeJS.ProcessEnv; isTTY?: boolean | undefined }): boolean {
  const force = o.env["FORCE_COLOR"];
  if (force !== undefined) return !["0", "false"].includes(force.trim().toLowerCase());
  if (o.env["NO_COLOR"]) return false;
  return o.isTTY === true && o.env["TERM"] !== "dumb";
}

export type Paint = "red" | "yellow" | "green" | "dim";
const CODES: Record<Paint, string> = { red: "31", yellow: "33", green: "32", dim: "2" };

/** The text in a colour when `on`, unchanged otherwise. */
export const paint = (on: boolean, color: Paint | undefined, text: string): string => (on && color ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text);
