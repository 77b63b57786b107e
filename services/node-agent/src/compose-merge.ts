import { parseDocument } from "yaml";
import { ComposeError, type ComposeServiceDef, type ComposeServices } from "./compose-model.js";
import { isMap, normalizeService, type PartialServiceDef } from "./compose-normalize.js";

const uniqSorted = (xs: string[]): string[] => [...new Set(xs)].sort();

/** Compose's merge: maps (environment, labels) merge key by key, ports/volumes accumulate, everything else is replaced. */
function mergeService(base: PartialServiceDef, over: PartialServiceDef): PartialServiceDef {
  const out: PartialServiceDef = { ...base, ...over };
  if (base.environment || over.environment) out.environment = { ...base.environment, ...over.environment };
  if (base.labels || over.labels) out.labels = { ...base.labels, ...over.labels };
  if (base.ports || over.ports) out.ports = uniqSorted([...(base.ports ?? []), ...(over.ports ?? [])]);
  if (base.volumes || over.volumes) out.volumes = uniqSorted([...(base.volumes ?? []), ...(over.volumes ?? [])]);
  if (base.other || over.other) out.other = { ...base.other, ...over.other };
  return out;
}

/**
 * Parses and merges compose files in order (later files override earlier ones), as `docker compose -f a -f b` does.
 * `${VAR}` interpolation is not performed: values are used as written.
 */
export function mergeComposeFiles(files: readonly { path: string; text: string }[], opts: { lenient?: boolean } = {}): ComposeServices {
  if (files.length === 0) throw new ComposeError(undefined, "no compose files");
  let merged: Record<string, PartialServiceDef> = {};
  for (const f of files) {
    const doc = parseDocument(f.text, { prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) throw new ComposeError(f.path, `YAML: ${doc.errors[0]?.message.split("\n")[0] ?? "invalid"}`);
    const raw: unknown = doc.toJS();
    if (!isMap(raw)) throw new ComposeError(f.path, "not a compose file (expected a map with 'services')");
    if (!isMap(raw["services"])) throw new ComposeError(f.path, "not a compose file (no 'services' map)");
    const next: Record<string, PartialServiceDef> = { ...merged };
    for (const [name, svc] of Object.entries(raw["services"])) {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new ComposeError(f.path, `services.${name}: not a valid service name`);
      const part = normalizeService(name, svc, f.path, opts.lenient ?? false);
      next[name] = merged[name] ? mergeService(merged[name], part) : part;
    }
    merged = next;
  }
  const out: ComposeServices = {};
  for (const [name, p] of Object.entries(merged)) {
    if (!p.image && !(opts.lenient && p.other?.["build"] !== undefined)) throw new ComposeError(files[files.length - 1]?.path, `services.${name}: no image`);
    for (const dep of p.depends_on ?? []) if (!(dep in merged)) throw new ComposeError(undefined, `services.${name}.depends_on: '${dep}' is not a service of this stack`);
    const def: ComposeServiceDef = {
      // "" only when Compose builds it (lenient): the Engine-API applier refuses such a revision.
      image: p.image ?? "",
      environment: p.environment ?? {},
      labels: p.labels ?? {},
      depends_on: uniqSorted(p.depends_on ?? []),
      ports: uniqSorted(p.ports ?? []),
      volumes: uniqSorted(p.volumes ?? []),
      other: p.other ?? {},
    };
    if (p.command) def.command = p.command;
    if (p.entrypoint) def.entrypoint = p.entrypoint;
    if (p.healthcheck !== undefined) def.healthcheck = p.healthcheck;
    if (p.restart) def.restart = p.restart;
    if (p.working_dir !== undefined) def.working_dir = p.working_dir;
    if (p.user !== undefined) def.user = p.user;
    out[name] = def;
  }
  return out;
}
