import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** TLS material `up` makes for its own nats-server: a CA of the stack's own and a server certificate for 127.0.0.1. */
export interface LocalTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The server's `tls` block for these files (clients must speak TLS; the certificate is checked against the CA). */
export const natsTlsConfig = (t: LocalTls): string => `tls {\n  cert_file: ${JSON.stringify(t.certFile)}\n  key_file: ${JSON.stringify(t.keyFile)}\n  timeout: 5\n}\n`;

/**
 * A fresh self-signed CA (P-256, 30 days) and a server certificate it signs for IP 127.0.0.1 and `localhost`, made
 * with the `openssl` command into `dir` (0700; private keys 0600; the CA's key is removed once it has signed).
 * Undefined, with the reason, when openssl is not installed: `up` then runs NATS without TLS and says so.
 */
export function makeLocalTls(dir: string, openssl = process.env["OPENSSL_BIN"] ?? "openssl"): { tls: LocalTls } | { missing: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const f = (name: string) => join(dir, name);
  const run = (args: string[]) => execFileSync(openssl, args, { stdio: ["ignore", "ignore", "pipe"] });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  try {
    run(["req", "-x509", ...key, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "30", "-subj", "/CN=steward up local CA"]);
    chmodSync(f("ca.key"), 0o600);
    run(["req", ...key, "-keyout", f("server.key"), "-out", f("server.csr"), "-subj", "/CN=localhost"]);
    chmodSync(f("server.key"), 0o600);
    writeFileSync(f("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
    run(["x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f("server.pem"), "-days", "30", "-extfile", f("server.ext")]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    return { missing: e.code === "ENOENT" ? "openssl is not installed" : `openssl failed: ${e.stderr?.toString().trim().split("\n")[0] ?? e.message}` };
  } finally {
    // Nothing else is ever signed with this CA: its key goes as soon as the server certificate exists.
    for (const x of ["ca.key", "server.csr", "server.ext", "ca.srl"]) rmSync(f(x), { force: true });
  }
  return { tls: { caFile: f("ca.pem"), certFile: f("server.pem"), keyFile: f("server.key") } };
}
