import { makeNatsTls, type NatsTlsFiles } from "../nats-tls.js";

/** TLS material `up` makes for its own nats-server: a CA of the stack's own and a server certificate for 127.0.0.1. */
export type LocalTls = NatsTlsFiles;

/** The server's `tls` block for these files (clients must speak TLS; the certificate is checked against the CA). */
export const natsTlsConfig = (t: LocalTls): string => `tls {\n  cert_file: ${JSON.stringify(t.certFile)}\n  key_file: ${JSON.stringify(t.keyFile)}\n  timeout: 5\n}\n`;

/**
 * A fresh CA (30 days) and a server certificate for IP 127.0.0.1 and `localhost` in `dir` (nats-tls.ts makes them).
 * `{ missing }`, with the reason, when openssl is not installed: `up` then runs NATS without TLS and says so.
 */
export function makeLocalTls(dir: string, openssl = process.env["OPENSSL_BIN"] ?? "openssl"): { tls: LocalTls } | { missing: string } {
  return makeNatsTls(dir, { hosts: ["127.0.0.1", "localhost"], days: 30, caName: "steward up local CA", clientAuth: false }, openssl);
}
