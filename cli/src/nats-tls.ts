import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";

/**
 * The one maker of NATS TLS material (a CA of the installation's own and a server certificate it signs), for
 * `steward up`'s own nats-server and for `steward keys tls` (the compose deployment and infra/nats).
 */
export interface NatsTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export const CA_FILE = "ca.pem";
export const CERT_FILE = "server.pem";
export const KEY_FILE = "server.key";

/** The compose file's NATS services (docker-compose.yml): clients and cluster routes reach the servers by these names. */
export const COMPOSE_NATS_HOSTS = ["nats-1", "nats-2", "nats-3"] as const;
/** Names every certificate carries: the published ports on the control-plane host itself. */
export const LOCAL_NATS_HOSTS = ["localhost", "127.0.0.1"] as const;

/** What the certificate is made for. */
export interface NatsTlsRequest {
  /** Host names and IP addresses the server certificate is valid for (its subjectAltName). */
  hosts: readonly string[];
  days: number;
  /** The CA's common name (shown by `openssl x509 -subject`). */
  caName: string;
  /**
   * Also a client certificate: cluster routes present the server certificate to each other (`verify: true`), so
   * only a holder of the server key can join the cluster.
   */
  clientAuth: boolean;
}

const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Pure: the certificate's subjectAltName for these hosts (`IP:` for addresses, `DNS:` otherwise, each once), or a
 * RangeError naming the first that is neither a host name nor an IP address (it would end up in openssl's config).
 */
export function subjectAltName(hosts: readonly string[]): string {
  const seen = new Set<string>();
  const parts: string[] = [];
  for (const raw of hosts) {
    const host = raw.trim();
    const part = isIP(host) ? `IP:${host}` : DNS_NAME.test(host) ? `DNS:${host.toLowerCase()}` : undefined;
    if (!part) throw new RangeError(`'${raw}' is neither a host name nor an IP address`);
    if (seen.has(part)) continue;
    seen.add(part);
    parts.push(part);
  }
  if (parts.length === 0) throw new RangeError("a certificate needs at least one host name or IP address");
  return parts.join(",");
}

/**
 * A fresh self-signed CA (P-256) and a server certificate it signs for `req.hosts`, made with the `openssl` command
 * into `dir` (0700; the server key 0600; the CA's key is removed once it has signed, so nothing else is ever signed
 * with it: a new certificate means a new CA). `{ missing }`, with the reason, when openssl is not installed or fails.
 */
export function makeNatsTls(dir: string, req: NatsTlsRequest, openssl = process.env["OPENSSL_BIN"] ?? "openssl"): { tls: NatsTlsFiles } | { missing: string } {
  const san = subjectAltName(req.hosts);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const f = (name: string) => join(dir, name);
  const run = (args: string[]) => execFileSync(openssl, args, { stdio: ["ignore", "ignore", "pipe"] });
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const days = String(req.days);
  try {
    run(["req", "-x509", ...key, "-keyout", f("ca.key"), "-out", f(CA_FILE), "-days", days, "-subj", `/CN=${req.caName}`]);
    chmodSync(f("ca.key"), 0o600);
    chmodSync(f(CA_FILE), 0o644);
    run(["req", ...key, "-keyout", f(KEY_FILE), "-out", f("server.csr"), "-subj", "/CN=nats-server"]);
    chmodSync(f(KEY_FILE), 0o600);
    writeFileSync(f("server.ext"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth${req.clientAuth ? ",clientAuth" : ""}\n`);
    run(["x509", "-req", "-in", f("server.csr"), "-CA", f(CA_FILE), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(CERT_FILE), "-days", days, "-extfile", f("server.ext")]);
    chmodSync(f(CERT_FILE), 0o644);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    return { missing: e.code === "ENOENT" ? "openssl is not installed" : `openssl failed: ${e.stderr?.toString().trim().split("\n")[0] ?? e.message}` };
  } finally {
    for (const x of ["ca.key", "server.csr", "server.ext", "ca.srl"]) rmSync(f(x), { force: true });
  }
  return { tls: { caFile: f(CA_FILE), certFile: f(CERT_FILE), keyFile: f(KEY_FILE) } };
}
