/**
 * Parses an env file the way Docker Compose and dotenv read one: `KEY=value` lines, `export KEY=value`,
 * `#` comments, `'single'` (literal) and `"double"` quotes (escapes `\n`, `\r`, `\t`, `\"`, `\\`; both may span
 * lines), an unquoted value ends at ` #` (an inline comment) and is trimmed. A later line wins over an earlier one.
 * A bare `KEY` (compose: "take it from the shell") carries no value here and is left out.
 * Pure; the result holds values, so callers keep it inside the function that reads the file.
 */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const s = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let i = 0;
  const n = s.length;
  const eol = (from: number): number => {
    const j = s.indexOf("\n", from);
    return j === -1 ? n : j;
  };
  while (i < n) {
    // Leading whitespace and blank lines.
    while (i < n && (s[i] === " " || s[i] === "\t" || s[i] === "\r" || s[i] === "\n")) i++;
    if (i >= n) break;
    if (s[i] === "#") {
      i = eol(i) + 1;
      continue;
    }
    const lineEnd = eol(i);
    const eq = s.indexOf("=", i);
    if (eq === -1 || eq > lineEnd) {
      i = lineEnd + 1;
      continue;
    }
    let key = s.slice(i, eq).trim();
    if (key.startsWith("export ") || key.startsWith("export\t")) key = key.slice(7).trim();
    i = eq + 1;
    while (i < n && (s[i] === " " || s[i] === "\t")) i++;
    let value: string;
    const q = s[i];
    if (q === '"' || q === "'") {
      i++;
      let v = "";
      let closed = false;
      while (i < n) {
        const c = s[i] as string;
        if (c === q) {
          closed = true;
          i++;
          break;
        }
        if (q === '"' && c === "\\" && i + 1 < n) {
          const e = s[i + 1] as string;
          v += e === "n" ? "\n" : e === "r" ? "\r" : e === "t" ? "\t" : e === '"' || e === "\\" ? e : `\\${e}`;
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      if (!closed) {
        // An unterminated quote: read it as compose does, the rest of the line taken literally.
        const end = eol(eq + 1);
        v = s.slice(eq + 1, end).trim();
        i = end;
      }
      value = v;
      i = eol(i) + 1;
    } else {
      const end = eol(i);
      let raw = s.slice(i, end);
      const hash = raw.search(/\s#/);
      if (hash !== -1) raw = raw.slice(0, hash);
      value = raw.trim();
      i = end + 1;
    }
    if (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) out.set(key, value);
  }
  return out;
}
