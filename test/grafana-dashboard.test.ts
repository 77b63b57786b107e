/**
 * The shipped Grafana dashboard (infra/grafana/steward-dashboard.json) is a dashboard Grafana loads, and charts only
 * metrics Steward really exports: every metric name in every PromQL expression must be registered by a service of a
 * real stack (observer, supervisor, executor, planner, alerter, node-agent, as test/support/stack.ts starts them).
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type Stack } from "./support/stack.js";

const DASHBOARD = new URL("../infra/grafana/steward-dashboard.json", import.meta.url);

interface Target { expr?: string; refId?: string; datasource?: { uid?: string } }
interface Panel { id?: number; type?: string; title?: string; datasource?: { uid?: string }; gridPos?: { h: number; w: number; x: number; y: number }; targets?: Target[]; panels?: Panel[] }

const FUNCTIONS_AND_WORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"]);

/** Metric names an expression reads: identifiers that are not functions (followed by `(`), keywords, labels or variables. */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, " ") // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, " "); // dashboard variables
  const out = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = stripped.slice(m.index + m[0].length).trimStart();
    if (after.startsWith("(") || FUNCTIONS_AND_WORDS.has(m[0].toLowerCase())) continue;
    out.add(m[0]);
  }
  return [...out];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { schemaVersion?: number; uid?: string; title?: string; panels?: Panel[]; templating?: { list?: { name: string; type: string; query?: unknown }[] }; __inputs?: { name: string; pluginId: string }[] };
const allPanels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
const charts = allPanels.filter((p) => p.type !== "row");

describe("the PromQL metric-name extraction", () => {
  it.each<[string, string[]]>([
    ['sum by (node) (rate(steward_a_total{node=~"$node"}[5m]))', ["steward_a_total"]],
    ["histogram_quantile(0.95, sum by (le) (rate(steward_b_seconds_bucket[$__rate_interval])))", ["steward_b_seconds_bucket"]],
    ["time() - max(steward_c_timestamp_seconds)", ["steward_c_timestamp_seconds"]],
    ['count(steward_d{x="up(1)"} == 0) or vector(0)', ["steward_d"]],
    ["steward_e / on(node) group_left(service) steward_f", ["steward_e", "steward_f"]],
    ["up", ["up"]],
  ])("%s", (expr, want) => {
    expect(metricNames(expr)).toEqual(want);
  });
});

describe("infra/grafana/steward-dashboard.json is a Grafana dashboard", () => {
  it("has a schema version, a uid, a Prometheus datasource input and a node variable", () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: "DS_PROMETHEUS", pluginId: "prometheus" }));
    const vars = dashboard.templating?.list ?? [];
    expect(vars.find((v) => v.name === "DS_PROMETHEUS")?.type).toBe("datasource");
    const node = vars.find((v) => v.name === "node");
    expect(node?.type).toBe("query");
    expect(JSON.stringify(node?.query)).toContain("label_values(steward_node_up, node)");
  });

  it("every chart has targets on the Prometheus datasource, unique ids and a place on the 24-column grid", () => {
    expect(charts.length).toBeGreaterThanOrEqual(10);
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size, "panel ids are unique").toBe(ids.length);
    for (const p of allPanels) {
      expect(Number.isInteger(p.id), `${p.title}: id`).toBe(true);
      const g = p.gridPos;
      expect(g, `${p.title}: gridPos`).toBeDefined();
      expect(g!.x >= 0 && g!.w > 0 && g!.x + g!.w <= 24 && g!.h > 0 && g!.y >= 0, `${p.title}: gridPos ${JSON.stringify(g)}`).toBe(true);
    }
    for (const p of charts) {
      expect(p.title, `panel ${p.id}: title`).toBeTruthy();
      expect(p.datasource?.uid, `${p.title}: datasource`).toBe("${DS_PROMETHEUS}");
      expect(p.targets?.length, `${p.title}: targets`).toBeGreaterThan(0);
      const refs = p.targets!.map((t) => t.refId);
      expect(new Set(refs).size, `${p.title}: refIds unique`).toBe(refs.length);
      for (const t of p.targets!) {
        expect(t.expr?.trim(), `${p.title}: expr`).toBeTruthy();
        expect(t.datasource?.uid, `${p.title}: target datasource`).toBe("${DS_PROMETHEUS}");
        expect(metricNames(t.expr!).length, `${p.title}: ${t.expr} reads a metric`).toBeGreaterThan(0);
      }
    }
    // No two panels overlap on the grid.
    const cells = new Set<string>();
    for (const p of allPanels) for (let x = p.gridPos!.x; x < p.gridPos!.x + p.gridPos!.w; x++) for (let y = p.gridPos!.y; y < p.gridPos!.y + p.gridPos!.h; y++) {
      expect(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`).toBe(false);
      cells.add(`${x},${y}`);
    }
  });
});

describe("every metric the dashboard charts is registered by a running Steward service", () => {
  let stack: Stack;
  const registered = new Set<string>();

  beforeAll(async () => {
    stack = await startStack({
      dbPrefix: "steward_dashboard",
      fleet: "version: 1\nnodes:\n  n1:\n    services: {}\n",
      observer: true,
      supervisor: true,
      executor: true,
      planner: true,
      alerter: { ALERT_CONSOLE: "true" },
      agents: { n1: {} },
    });
    // What each service's registry holds, as /metrics would give it (a histogram is read as _bucket, _sum, _count).
    for (const r of Object.values(stack.registries)) {
      for (const m of await r.getMetricsAsJSON()) {
        registered.add(m.name);
        if (String(m.type) === "histogram" || String(m.type) === "summary") for (const s of ["_bucket", "_sum", "_count"]) registered.add(m.name + s);
      }
    }
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("the stack's registries hold the fleet gauges and every service's metrics", () => {
    expect(Object.keys(stack.registries).sort()).toEqual(["alerter", "executor", "node-agent-n1", "observer", "planner", "supervisor"]);
    for (const m of ["steward_service_up", "steward_node_up", "steward_supervisor_cycles_total", "steward_executor_actions_total", "steward_alerter_notifications_total", "steward_planner_tasks_total"]) expect(registered, m).toContain(m);
  });

  it("each PromQL expression reads only registered metrics, all steward_-prefixed", () => {
    const unknown: string[] = [];
    for (const p of charts) for (const t of p.targets ?? []) for (const m of metricNames(t.expr ?? "")) {
      expect(m, `${p.title}: ${m}`).toMatch(/^steward_/);
      if (!registered.has(m)) unknown.push(`${p.title}: ${m}`);
    }
    expect(unknown).toEqual([]);
  });

  it("a dashboard naming a metric nobody exports fails the check", () => {
    const names = metricNames('sum(rate(steward_supervisor_cycles_totl{result="ok"}[5m]))');
    expect(names.filter((m) => !registered.has(m))).toEqual(["steward_supervisor_cycles_totl"]);
  });
});
