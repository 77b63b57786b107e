import { describe, expect, it } from "vitest";
import { checkComposeSubset, locateComposeMessage, locateVariable, yamlProblems } from "@steward/fleet/compose-check";

const fx = {
  plain: "services:\n  web:\n    image: nginx:1.27\n    command: [nginx, -g, 'daemon off;']\n    environment: { MODE: prod }\n    ports: ['80:80']\n    volumes: ['./html:/usr/share/nginx/html:ro']\n    restart: unless-stopped\n    healthcheck: { test: [CMD, true], interval: 5s }\n",
  networks: "services:\n  web:\n    image: nginx\n    networks: [front]\nnetworks:\n  front: {}\n",
  interpolation: "services:\n  web:\n    image: nginx:${NGINX_TAG}\n    environment:\n      - PRICE=$$5\n",
  longPorts: "services:\n  web:\n    image: nginx\n    ports:\n      - target: 80\n        published: 8080\n",
  devices: "services:\n  web:\n    image: nginx\n    devices: ['/dev/ttyUSB0:/dev/ttyUSB0']\n",
  resources: "services:\n  web:\n    image: nginx\n    deploy:\n      resources:\n        limits: { cpus: '0.5', memory: 256M }\n",
  typo: "services:\n  web:\n    imagee: nginx\n    image: nginx\n",
  badYaml: "services:\n  web:\n    image: nginx\n     ports: [1]\n",
  badType: "services:\n  web:\n    image: nginx\n    restart: sometimes\n    environment: 12\n",
  noServices: "servicez:\n  web:\n    image: nginx\n",
  build: "services:\n  web:\n    build: .\n",
};

type Want = { line?: number; path: string; severity: "error" | "warning"; says: RegExp };
const cases: [string, string, "error" | "warning", Want[]][] = [
  ["a file the Engine-API applier applies whole", fx.plain, "error", []],
  ["networks (service and top level)", fx.networks, "error", [
    { line: 4, path: "services.web.networks", severity: "error", says: /'networks' is applied only by Compose.*install Compose/ },
    { line: 5, path: "networks", severity: "error", says: /top-level 'networks' is applied only by Compose/ },
  ]],
  ["${VAR} interpolation ($$ is a literal)", fx.interpolation, "error", [{ line: 3, path: "services.web.image", severity: "error", says: /interpolation \(\$\{VAR\}\) is done only by Compose/ }]],
  ["long-form ports", fx.longPorts, "error", [{ line: 5, path: "services.web.ports.0", severity: "error", says: /long ports syntax is applied only by Compose/ }]],
  ["devices", fx.devices, "error", [{ line: 4, path: "services.web.devices", severity: "error", says: /'devices' is applied only by Compose/ }]],
  ["deploy.resources", fx.resources, "error", [{ line: 4, path: "services.web.deploy", severity: "error", says: /'deploy' is applied only by Compose/ }]],
  ["the same with Compose on the nodes: said, as warnings", fx.resources, "warning", [{ line: 4, path: "services.web.deploy", severity: "warning", says: /not checked: no Compose binary here/ }]],
  ["a typo'd key is an error whatever applies it", fx.typo, "warning", [{ line: 3, path: "services.web.imagee", severity: "error", says: /'imagee' is not a Compose service key/ }]],
  ["bad YAML, on its line (where the parser notices it)", fx.badYaml, "error", [{ line: 3, path: "", severity: "error", says: /^YAML: / }, { line: 3, path: "", severity: "error", says: /^YAML: / }]],
  ["wrong types of applied keys", fx.badType, "warning", [
    { line: 4, path: "services.web.restart", severity: "error", says: /expected no, always, unless-stopped or on-failure/ },
    { line: 5, path: "services.web.environment", severity: "error", says: /expected a list of KEY=value or a map/ },
  ]],
  ["a misspelt services map", fx.noServices, "error", [
    { line: 1, path: "servicez", severity: "error", says: /'servicez' is not a Compose top-level key/ },
    { line: 1, path: "", severity: "error", says: /no 'services' map/ },
  ]],
  ["build without an image", fx.build, "error", [{ line: 3, path: "services.web.build", severity: "error", says: /building the image is done only by Compose/ }]],
];

describe("checkComposeSubset: what Steward's Engine-API applier applies, and everything else said", () => {
  it.each(cases)("%s", (_name, text, unapplied, want) => {
    const got = checkComposeSubset({ path: "stacks/web/compose.yaml", text }, { unapplied });
    expect(got.map((p) => ({ line: p.line, path: p.path, severity: p.severity }))).toEqual(want.map(({ line, path, severity }) => ({ line, path, severity })));
    got.forEach((p, i) => {
      expect(p.file).toBe("stacks/web/compose.yaml");
      expect(p.message).toMatch(want[i]!.says);
    });
  });

  it("YAML errors alone, for a file the spec's rules already refused", () => {
    expect(yamlProblems({ path: "c.yaml", text: fx.plain })).toEqual([]);
    expect(yamlProblems({ path: "c.yaml", text: fx.badYaml })[0]).toMatchObject({ file: "c.yaml", line: 3, severity: "error" });
  });
});

describe("locateComposeMessage: Compose's own messages placed on a line", () => {
  const files = [
    { path: "stacks/web/compose.yaml", text: fx.typo },
    { path: "stacks/web/override.yaml", text: "services:\n  web:\n    ports:\n      - target: 80\n        published: x\n" },
  ];
  it.each([
    ["v1: unsupported option", "The Compose file './stacks/web/compose.yaml' is invalid because:\nUnsupported config option for services.web: 'imagee'", { file: "stacks/web/compose.yaml", line: 3, path: "services.web.imagee" }],
    ["v1: YAML position in a named file", 'yaml.scanner.ScannerError: mapping values are not allowed here\n  in "./stacks/web/override.yaml", line 4, column 11', { file: "stacks/web/override.yaml", line: 4, path: "" }],
    ["v1: conversion error (service.web…, no file named): the last file that has the key", 'Error while attempting to convert service.web.ports.published to appropriate type: "x" is not a valid integer', { file: "stacks/web/override.yaml", line: 5, path: "services.web.ports.published" }],
    ["v1: invalid type", "The Compose file './stacks/web/override.yaml' is invalid because:\nservices.web.ports contains an invalid type, it should be an array", { file: "stacks/web/override.yaml", line: 3, path: "services.web.ports" }],
    ["v2: additional property", "validating /repo/stacks/web/compose.yaml: services.web additional properties 'imagee' not allowed", { file: "stacks/web/compose.yaml", line: 3, path: "services.web.imagee" }],
    ["v2: yaml line", "parsing /repo/stacks/web/override.yaml: yaml: line 4: mapping values are not allowed in this context", { file: "stacks/web/override.yaml", line: 4, path: "" }],
  ])("%s", (_name, message, want) => {
    expect(locateComposeMessage(message, files)).toEqual(want);
  });
  it("nothing to go by: undefined (the caller reports at the stack's files line)", () => {
    expect(locateComposeMessage("Couldn't connect to Docker daemon", files)).toBeUndefined();
  });
  it("locateVariable finds ${NAME}, ${NAME:-x} and $NAME, not $$NAME or a longer name", () => {
    const t = [{ path: "c.yaml", text: "a: $$TAG\nb: ${TAGS}\nc: x-${TAG:-1}\nd: $TAG\n" }];
    expect(locateVariable("TAG", t)).toEqual({ file: "c.yaml", line: 3 });
    expect(locateVariable("NOPE", t)).toBeUndefined();
  });
});
