/**
 * Terminal-safe text: the one place the CLI decides what may reach the operator's terminal.
 *
 * Much of what the CLI prints was written elsewhere: a model's diagnosis and answer, a log line it quotes, a
 * post-mortem, an action's reason, a remote service's error. Any of it can hold terminal control sequences (CSI
 * `ESC [`, OSC 52 clipboard writes, `\r` overwrites, a bell). Every C0 control except `\n` and `\t`, DEL and every C1
 * control (U+0080-U+009F, which some terminals read as `ESC [` and friends) is written as its `\u001b`-style escape,
 * visible and inert; `\r\n` reads as `\n`. The escape is JSON's own, so JSON text passed through stays the same JSON:
 * `JSON.stringify` already escapes C0 controls, and a raw C1 or DEL becomes `\u009b`, which parses to the same string.
 *
 * `palette`: the exact colour codes `paint` (color.ts) writes pass as they are, for a command whose output is
 * coloured; it paints only what it has already made safe. No other sequence ever passes.
 */

// eslint-disable-next-line no-control-regex
const CONTROLS = /\r\n|[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS_OR_PALETTE = /\u001b\[(?:0|2|31|32|33)m|\r\n|[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const escape = (c: string): string => {
  if (c === "\r\n") return "\n";
  if (c.length > 1) return c; // a palette code
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
};

/** The text with every control but `\n` and `\t` escaped (and the palette's colour codes kept when asked). */
export function terminalSafe(text: string, o: { palette?: boolean } = {}): string {
  return text.replace(o.palette === true ? CONTROLS_OR_PALETTE : CONTROLS, escape);
}

/** The streams a command writes to, every line made terminal-safe. */
export function terminalSafeIo<T extends { out: (s: string) => void; err: (s: string) => void }>(io: T, o: { palette?: boolean } = {}): T {
  return { ...io, out: (s: string) => io.out(terminalSafe(s, o)), err: (s: string) => io.err(terminalSafe(s, o)) };
}
