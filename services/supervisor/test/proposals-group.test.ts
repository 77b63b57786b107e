import { describe, expect, it } from "vitest";
import type { Drift } from "@steward/contracts/drift";
import { groupDeploys } from "../src/reconcile.js";

const d = (node: string, service: string, proposes: "deploy" | "restart" | "pull", kind: Drift["kind"] = "config_drift"): Drift & { proposes: typeof proposes } => ({
  key: `${kind}:${node}/${service}`,
  kind,
  node,
  service,
  severity: "action",
  message: `${service} differs on ${node}`,
  since: null,
  proposes,
});

describe("groupDeploys", () => {
  it("merges deploys of one service across nodes into one rollout, in order", () => {
    const out = groupDeploys([d("n1", "app", "deploy"), d("n2", "app", "deploy"), d("n3", "app", "deploy")], new Set());
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ node: "n1", service: "app", proposes: "deploy", params: { nodes: ["n1", "n2", "n3"] } });
    expect(out[0]?.message).toMatch(/app drifted on n1, n2, n3/);
  });
  it("keeps one-node deploys and other kinds as they are", () => {
    const out = groupDeploys([d("n1", "app", "deploy"), d("n2", "db", "restart", "down"), d("n3", "@repo", "pull", "repo_drift")], new Set());
    expect(out.map((x) => [x.node, x.service, x.proposes, "params" in x])).toEqual([
      ["n2", "db", "restart", false],
      ["n3", "@repo", "pull", false],
      ["n1", "app", "deploy", false],
    ]);
  });
  it("leaves out nodes an open rollout already covers", () => {
    const out = groupDeploys([d("n1", "app", "deploy"), d("n2", "app", "deploy"), d("n3", "app", "deploy")], new Set(["n1/app", "n2/app"]));
    expect(out).toEqual([expect.objectContaining({ node: "n3", service: "app" })]);
    expect(out[0]).not.toHaveProperty("params");
  });
  it("groups per service", () => {
    const out = groupDeploys([d("n1", "app", "deploy"), d("n2", "web", "deploy"), d("n2", "app", "deploy")], new Set());
    expect(out.map((x) => [x.service, x.node, (x as { params?: { nodes: string[] } }).params?.nodes ?? null])).toEqual([
      ["app", "n1", ["n1", "n2"]],
      ["web", "n2", null],
    ]);
  });
});

describe("groupDeploys carries the revision a deploy aims at", () => {
  const t = (node: string, target: string) => ({ ...d(node, "app", "deploy"), target });
  it("one node: params.target_config_hash", () => {
    expect(groupDeploys([t("n1", "sha256:aa")], new Set())[0]).toMatchObject({ params: { target_config_hash: "sha256:aa" } });
  });
  it("several nodes on the same revision: nodes and the revision", () => {
    expect(groupDeploys([t("n1", "sha256:aa"), t("n2", "sha256:aa")], new Set())[0]?.params).toEqual({ nodes: ["n1", "n2"], target_config_hash: "sha256:aa" });
  });
  it("nodes asking for different revisions: no single revision is recorded", () => {
    expect(groupDeploys([t("n1", "sha256:aa"), t("n2", "sha256:bb")], new Set())[0]?.params).toEqual({ nodes: ["n1", "n2"] });
  });
});
