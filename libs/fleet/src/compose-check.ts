import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";

/**
 * Pure: a finder of the line a key path is written on (the key's own line, not its value's). A name segment under a
 * list goes to the first item that has it (`services.web.ports.published` → the first `published:` in `ports`).
 */
export function keyLineFinder(text: string): (path: string) => number | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lc });
  const lineAt = (n: { range?: [number, number, number] | null } | null | undefined) => (n?.range ? lc.linePos(n.range[0]).line : undefined);
  return (path) => {
    let node: unknown = doc.contents;
    let line = lineAt(doc.contents as Node | null);
    for (const seg of path === "" ? [] : path.split(".")) {
      if (isSeq(node)) {
        const items: unknown[] = node.items;
        const i = /^\d+$/.test(seg) ? Number(seg) : items.findIndex((it) => isMap(it) && it.has(seg));
        if (i < 0 || i >= items.length) return undefined;
        node = items[i];
        line = lineAt(node as Node);
        if (/^\d+$/.test(seg)) continue;
      }
      if (!isMap(node)) return undefined;
      const pair = node.items.find((p) => String(scalarValue(p.key)) === seg);
      if (!pair) return undefined;
      line = lineAt(pair.key as Node) ?? line;
      node = pair.value;
    }
    return line;
  };
}

/**
 * Compose files as `steward validate` sees them. Where a Compose binary runs, its own `config` is the judge and this
 * module only places its messages on a line of the file. Where none does, the files are checked here against what
 * Steward's Engine-API applier (the node-agent's fallback without Compose) can apply: every other key is reported,
 * never skipped, so a file is never called ok while parts of it were not looked at. Pure.
 */

export interface ComposeFileText {
  /** The path to report (as the operator wrote it, or relative to the working directory). */
  path: string;
  text: string;
}

export interface ComposeProblem {
  file: string;
  line?: number;
  /** Dotted key path in the compose file, `""` for the file as a whole. */
  path: string;
  message: string;
  severity: "error" | "warning";
}

/** Service keys the Engine-API applier applies (compose.ts in the node-agent; `pull_policy` by compose-apply.ts). */
export const ENGINE_API_SERVICE_KEYS = new Set(["image", "command", "entrypoint", "environment", "labels", "depends_on", "healthcheck", "restart", "ports", "volumes", "working_dir", "user", "pull_policy"]);

/** Every service key of the Compose specification, so a typo is told apart from a key only Compose applies. */
export const COMPOSE_SERVICE_KEYS = new Set([
  ...ENGINE_API_SERVICE_KEYS,
  "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "configs", "container_name", "cpu_count",
  "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "deploy", "develop",
  "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "env_file", "expose", "extends", "external_links", "extra_hosts",
  "gpus", "group_add", "hostname", "init", "ipc", "isolation", "label_file", "links", "logging", "mac_address", "mem_limit", "mem_reservation",
  "mem_swappiness", "memswap_limit", "models", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform",
  "post_start", "pre_stop", "privileged", "profiles", "provider", "read_only", "runtime", "scale", "secrets", "security_opt", "shm_size",
  "stdin_open", "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "userns_mode", "uts",
  "volumes_from",
]);

/** Top-level keys of the Compose specification. Only `services` is applied by the Engine-API applier. */
export const COMPOSE_TOP_KEYS = new Set(["version", "name", "services", "networks", "volumes", "secrets", "configs", "include", "models"]);

const HEALTHCHECK_KEYS = new Set(["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"]);
const RESTART = /^(no|always|unless-stopped|on-failure(:\d+)?)$/;
const PULL_POLICY = /^(always|never|missing|if_not_present|build|daily|weekly|every_\w+)$/;
/** `${VAR}`, `${VAR:-x}`, `$VAR`; `$$` is a literal dollar. */
const INTERPOLATION = /(^|[^$])\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)/;

type Check = { path: (string | number)[]; message: string; unchecked?: boolean };

const scalarValue = (n: unknown): unknown => (isScalar(n) ? n.value : undefined);
const isText = (n: unknown): boolean => isScalar(n) && (typeof n.value === "string" || typeof n.value === "number" || typeof n.value === "boolean");
const isTextList = (n: unknown): boolean => isSeq(n) && n.items.every(isText);
const isKeyValues = (n: unknown): boolean => isTextList(n) || (isMap(n) && n.items.every((p) => p.value === null || isText(p.value)));

/** Pure: the problems of one service's applied keys that the Engine-API applier would refuse or misread. */
function checkServiceValue(key: string, v: Node | null, at: (string | number)[]): Check[] {
  const here = [...at, key];
  switch (key) {
    case "image":
      return isScalar(v) && typeof v.value === "string" && v.value.trim() !== "" ? [] : [{ path: here, message: "expected an image name" }];
    case "command":
    case "entrypoint":
      return isText(v) || isTextList(v) ? [] : [{ path: here, message: "expected a string or a list of strings" }];
    case "environment":
    case "labels":
      return isKeyValues(v) ? [] : [{ path: here, message: "expected a list of KEY=value or a map" }];
    case "depends_on":
      return isTextList(v) || isMap(v) ? [] : [{ path: here, message: "expected a list or a map of service names" }];
    case "restart":
      return RESTART.test(String(scalarValue(v))) ? [] : [{ path: here, message: "expected no, always, unless-stopped or on-failure" }];
    case "pull_policy":
      return PULL_POLICY.test(String(scalarValue(v))) ? [] : [{ path: here, message: "expected always, never, missing, build or daily/weekly/every_<duration>" }];
    case "working_dir":
    case "user":
      return isText(v) ? [] : [{ path: here, message: "expected a string" }];
    case "ports":
    case "volumes": {
      if (!isSeq(v)) return [{ path: here, message: "expected a list" }];
      return v.items.flatMap((item, i) => (isText(item) ? [] : [{ path: [...here, i], message: `the long ${key} syntax is applied only by Compose; Steward's Engine-API applier takes the short syntax ("80:80", "./data:/data")`, unchecked: true }]));
    }
    case "healthcheck": {
      if (!isMap(v)) return [{ path: here, message: "expected a map" }];
      const out: Check[] = [];
      for (const p of v.items) {
        const k = String(scalarValue(p.key));
        if (!HEALTHCHECK_KEYS.has(k)) out.push({ path: [...here, k], message: `unknown healthcheck key '${k}'` });
      }
      const test = v.get("test", true);
      if (v.get("disable") !== true && test !== undefined && !isText(test) && !isTextList(test)) out.push({ path: [...here, "test"], message: "expected a string or a list of strings" });
      return out;
    }
    default:
      return [];
  }
}

/** Pure: every place a value is interpolated (`${VAR}`): Compose does it, the Engine-API applier uses values as written. */
function interpolations(n: unknown, path: (string | number)[], out: Check[]): void {
  if (isScalar(n)) {
    if (typeof n.value === "string" && INTERPOLATION.test(n.value)) {
      out.push({ path, message: "variable interpolation (${VAR}) is done only by Compose; Steward's Engine-API applier would use the value as written", unchecked: true });
    }
  } else if (isMap(n)) {
    for (const p of n.items) interpolations(p.value, [...path, String(scalarValue(p.key))], out);
  } else if (isSeq(n)) {
    n.items.forEach((item, i) => interpolations(item, [...path, i], out));
  }
}

export interface SubsetOptions {
  /**
   * `error`: the Engine-API applier will deploy this file (no Compose here or on the node), so what it cannot apply is
   * an error. `warning`: the nodes run Compose, which applies it, but nothing here could check it: said, not hidden.
   */
  unapplied: "error" | "warning";
}

/**
 * Pure: one compose file against what Steward's Engine-API applier applies. Bad YAML, a typo'd key, a wrong type of an
 * applied key are errors; keys and syntax only Compose applies (networks, devices, deploy, long ports, `${VAR}`, ...)
 * are reported with `opts.unapplied`.
 */
/** Pure: a compose file's YAML errors, each on its line (none for valid YAML). */
export function yamlProblems(f: ComposeFileText): ComposeProblem[] {
  const lc = new LineCounter();
  const doc = parseDocument(f.text, { prettyErrors: false, uniqueKeys: true, lineCounter: lc });
  return doc.errors.slice(0, 3).map((e) => ({ file: f.path, line: lc.linePos(e.pos[0]).line, path: "", message: `YAML: ${e.message.split("\n")[0]}`, severity: "error" as const }));
}

export function checkComposeSubset(f: ComposeFileText, opts: SubsetOptions): ComposeProblem[] {
  const bad = yamlProblems(f);
  if (bad.length > 0) return bad;
  const doc = parseDocument(f.text, { prettyErrors: false, uniqueKeys: true });
  const root = doc.contents;
  if (!isMap(root)) return [{ file: f.path, line: 1, path: "", message: "not a compose file: expected a map with 'services'", severity: "error" }];
  const checks: Check[] = [];
  for (const p of root.items) {
    const k = String(scalarValue(p.key));
    if (k.startsWith("x-")) continue; // extension fields: Compose ignores them too
    if (!COMPOSE_TOP_KEYS.has(k)) checks.push({ path: [k], message: `'${k}' is not a Compose top-level key (${[...COMPOSE_TOP_KEYS].join(", ")})` });
    else if (k !== "services" && k !== "version") checks.push({ path: [k], message: `top-level '${k}' is applied only by Compose; Steward's Engine-API applier ignores it`, unchecked: true });
  }
  const services = root.get("services", true);
  if (!isMap(services)) checks.push({ path: services === undefined ? [] : ["services"], message: "no 'services' map" });
  else {
    for (const s of services.items) {
      const name = String(scalarValue(s.key));
      const at = ["services", name];
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) checks.push({ path: at, message: `'${name}' is not a valid service name` });
      if (!isMap(s.value)) {
        checks.push({ path: at, message: "expected a map" });
        continue;
      }
      const builds = !s.value.has("image") && s.value.has("build");
      if (builds) checks.push({ path: [...at, "build"], message: "building the image is done only by Compose; Steward's Engine-API applier needs image", unchecked: true });
      else if (!s.value.has("image")) checks.push({ path: at, message: "no image" });
      for (const p of s.value.items) {
        const k = String(scalarValue(p.key));
        if (k === "build" && builds) continue;
        if (ENGINE_API_SERVICE_KEYS.has(k)) checks.push(...checkServiceValue(k, p.value as Node | null, at));
        else if (COMPOSE_SERVICE_KEYS.has(k)) checks.push({ path: [...at, k], message: `'${k}' is applied only by Compose; Steward's Engine-API applier ignores it`, unchecked: true });
        else if (!k.startsWith("x-")) checks.push({ path: [...at, k], message: `'${k}' is not a Compose service key` });
      }
      interpolations(s.value, at, checks);
    }
  }
  const lineOf = keyLineFinder(f.text);
  const note = opts.unapplied === "warning" ? " (not checked: no Compose binary here to run its config)" : " (install Compose on the node, docker compose v2 or docker-compose, or remove it)";
  return checks
    .map((c) => {
      const path = c.path.map(String).join(".");
      return { file: f.path, line: lineOf(path) ?? 1, path, message: c.unchecked ? `${c.message}${note}` : c.message, severity: c.unchecked ? opts.unapplied : "error" };
    })
    .sort((a, b) => a.line - b.line);
}

/**
 * Pure: where in the stack's files a message of Compose's `config` points, as far as it says. Compose v1 and v2 name
 * a key path (`services.web: 'imagee'`, `services.web.ports contains …`, `service.web.ports.published`, `validating
 * FILE: services.web additional properties 'x' not allowed`) or a YAML position (`in "./f.yaml", line 4`, `yaml: line 4:`).
 */
export function locateComposeMessage(message: string, files: readonly ComposeFileText[]): { file: string; line?: number; path: string } | undefined {
  if (files.length === 0) return undefined;
  const base = (p: string) => p.split("/").pop() ?? p;
  const named = files.find((f) => message.includes(f.path) || new RegExp(`["'/ ]${base(f.path).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["': ]`).test(message));
  const yamlPos = /line (\d+)/.exec(message);
  if (yamlPos && /yaml|scanner|parser|parsing|mapping values|block/i.test(message)) {
    return { file: (named ?? files[0] as ComposeFileText).path, line: Number(yamlPos[1]), path: "" };
  }
  const paths: string[] = [];
  const option = /Unsupported config option for ([\w.-]+): '([^']+)'/.exec(message);
  if (option) paths.push(`${option[1]}.${option[2]}`);
  const additional = /((?:services|networks|volumes|secrets|configs)[\w.-]*)\s+(?:additional propert(?:y|ies)|Additional propert(?:y|ies))\s+'?([\w.-]+)'?/.exec(message);
  if (additional) paths.push(`${additional[1]}.${additional[2]}`);
  for (const m of message.matchAll(/\b(services?|networks|volumes|secrets|configs)((?:\.[\w-]+)+)/g)) paths.push(`${m[1] === "service" ? "services" : m[1]}${m[2]}`);
  const candidates = named ? [named, ...files.filter((f) => f !== named)] : [...files].reverse();
  for (const path of paths) {
    // The longest prefix of the path that is in a file: `services.web.ports.published` is on the `published:` line.
    const parts = path.split(".");
    for (let n = parts.length; n > 0; n--) {
      const prefix = parts.slice(0, n).join(".");
      for (const f of candidates) {
        const line = keyLineFinder(f.text)(prefix);
        if (line !== undefined) return { file: f.path, line, path: prefix };
      }
    }
  }
  return named ? { file: named.path, path: "" } : undefined;
}

/** Pure: the first line of the stack's files that uses variable `name` (`${NAME}`, `${NAME:-x}`, `$NAME`). */
export function locateVariable(name: string, files: readonly ComposeFileText[]): { file: string; line: number } | undefined {
  const re = new RegExp(`(^|[^$])\\$(\\{${name}([:?+-][^}]*)?\\}|${name}(?![A-Za-z0-9_]))`);
  for (const f of files) {
    const i = f.text.split("\n").findIndex((l) => re.test(l));
    if (i >= 0) return { file: f.path, line: i + 1 };
  }
  return undefined;
}
