import { describe, expect, it } from "vitest";
import { isPlaceholderSecret } from "@steward/platform/config";

describe("placeholder secrets (extended for secret drift)", () => {
  it.each(["__CHANGE_ME__", "Generate-On-Host", "<GENERATE_ON_HOST>", "TODO!", "todo: the real one", "FIXME", "set-me", "your-secret-here", "********", "0000000000000000", "not set"])(
    "%j is a placeholder",
    (v) => expect(isPlaceholderSecret(v)).toBe(true),
  );
  it.each(["Zq8-real-secret-value", "todolist-8f3a9c2b1d", "a1a1a1a1a1a1a1a1", "fixmeup-4b7e-91aa-c3d2", "k9!x#2$v&7*q"])("%j is not", (v) => expect(isPlaceholderSecret(v)).toBe(false));
});
