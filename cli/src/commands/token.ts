import type { CredentialRole } from "@steward/contracts/executor-api";
import type { CredentialView } from "@steward/executor/client";
import { connectApi } from "../connect-api.js";
import { findSubcommand, TOKEN, type Io } from "../command-table.js";
import { parseFlags } from "../parse.js";
import { ago, table } from "../format.js";

export function renderCredentials(creds: readonly CredentialView[], now = Date.now()): string {
  return table(
    ["NAME", "ROLE", "SOURCE", "CREATED", "BY", "REVOKED"],
    creds.map((c) => [c.name, c.role, c.source, c.created_at ? ago(c.created_at, now) : "-", c.created_by ?? "-", c.revoked_at ? ago(c.revoked_at, now) : "-"]),
  );
}

/** `steward token create NAME --role R` / `steward token ls` / `steward token revoke NAME`. */
export async function tokenCommand(args: string[], io: Io): Promise<number> {
  const sub = findSubcommand(TOKEN, args)?.[0];
  if (sub === "create") {
    const { values, positionals } = parseFlags(TOKEN.subcommands.create.flags, args.slice(1), { positionals: true });
    const name = positionals[0];
    if (!name || positionals.length > 1 || !values.role) {
      io.err("usage: steward token create NAME --role viewer|approver|admin [--json]");
      return 2;
    }
    const made = await (await connectApi(io.env)).createCredential({ name, role: values.role as CredentialRole });
    if (values.json) io.out(JSON.stringify(made, null, 2));
    else {
      io.out(`created '${made.credential.name}' (role ${made.credential.role}); its token:\n\n  ${made.token}\n`);
      io.err("this token is shown only now and cannot be shown again: hand it over safely (STEWARD_TOKEN, or the console's sign-in)");
    }
    return 0;
  }
  if (sub === "revoke") {
    const { values, positionals } = parseFlags(TOKEN.subcommands.revoke.flags, args.slice(1), { positionals: true });
    const name = positionals[0];
    if (!name || positionals.length > 1) {
      io.err("usage: steward token revoke NAME");
      return 2;
    }
    await (await connectApi(io.env)).revokeCredential(name);
    io.out(values.json ? JSON.stringify({ revoked: name }) : `revoked '${name}': its token is refused from now on`);
    return 0;
  }
  if (sub !== "ls") {
    io.err(args.length > 0 && !args[0]?.startsWith("-") ? `unknown subcommand '${args[0]}'; see 'steward token --help'` : "usage: steward token create|ls|revoke; see 'steward token --help'");
    return 2;
  }
  const { values } = parseFlags(TOKEN.subcommands.ls.flags, args.slice(1));
  const creds = await (await connectApi(io.env)).credentials();
  io.out(values.json ? JSON.stringify({ credentials: creds }, null, 2) : renderCredentials(creds));
  return 0;
}
