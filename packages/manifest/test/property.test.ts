import { isBottleError } from "@bottle/errors";
import {
  expandRoutes,
  type ManifestError,
  parseManifest,
  resolveTokenValues,
  tokenSlots,
} from "@bottle/manifest";
import { makeCanary } from "@bottle/test-utils";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";

/** Parses; returns the manifest, or the ManifestError; rethrows anything else. */
function outcome(text: string): "ok" | ManifestError {
  try {
    parseManifest(text, { filename: "p.yaml", checkFiles: false });
    return "ok";
  } catch (error) {
    if (isBottleError(error) && (error as ManifestError).name === "ManifestError")
      return error as ManifestError;
    throw error;
  }
}

const VALID = {
  version: 1,
  name: "acme",
  agent: { command: ["claude"], env: { LANG: "C" } },
  git_gate: {
    repos: {
      docs: {
        url: "https://github.com/acme/docs.git",
        key: { provider: "token", token_ref: "GH_TOKEN" },
      },
    },
    scan: { scanner: "auto", allowlist: [{ fingerprint: "f", reason: "r" }] },
  },
  cred_proxy: {
    tokens: [{ kind: "anthropic", token_ref: "ANTHROPIC_API_KEY", auth: "api-key" }],
    routes: [
      {
        path: "/s/",
        upstream: "https://s.example",
        auth: { scheme: "Bearer" },
        token_ref: "S_TOKEN",
      },
    ],
  },
};

/** Any JSON-ish value, including the odd ones (empty keys, huge numbers, nested lists). */
const anyValue = fc.jsonValue({ maxDepth: 4 });

/** Replaces the value at a random path of `base` with `value`, or deletes it. */
function mutate(base: unknown, steps: number[], value: unknown, remove: boolean): unknown {
  const copy = structuredClone(base) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (const [i, step] of steps.entries()) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = keys[step % keys.length] as string;
    const child = node[key];
    if (i === steps.length - 1 || typeof child !== "object" || child === null) {
      if (remove) delete node[key];
      else node[key] = value;
      break;
    }
    node = child as Record<string, unknown>;
  }
  return copy;
}

describe("any input yields a manifest or a ManifestError", () => {
  it("holds for arbitrary text", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme-ascii", maxLength: 400 }),
        (text) => void outcome(text),
      ),
      { numRuns: 400 },
    );
  });

  it("holds for arbitrary YAML-looking text", () => {
    const line = fc.tuple(
      fc.constantFrom("", "  ", "    ", "- "),
      fc.constantFrom(
        "version",
        "name",
        "agent",
        "command",
        "git_gate",
        "repos",
        "&a",
        "*a",
        "? ",
        "!!str",
      ),
      fc.constantFrom(": ", ":", " ", ""),
      fc.string({ maxLength: 12 }),
    );
    const doc = fc
      .array(line, { maxLength: 20 })
      .map((lines) => lines.map((l) => l.join("")).join("\n"));
    fc.assert(
      fc.property(doc, (text) => void outcome(text)),
      { numRuns: 400 },
    );
  });

  it("holds for arbitrary JSON documents", () => {
    fc.assert(
      fc.property(anyValue, (value) => void outcome(JSON.stringify(value) ?? "null")),
      { numRuns: 300 },
    );
  });

  it("holds for every mutation of a valid manifest", () => {
    expect(outcome(stringify(VALID))).toBe("ok");
    const mutation = fc.record({
      steps: fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
      value: anyValue,
      remove: fc.boolean(),
    });
    fc.assert(
      fc.property(mutation, ({ steps, value, remove }) => {
        const result = outcome(stringify(mutate(VALID, steps, value, remove)));
        if (result !== "ok") {
          expect(result.issues.length).toBeGreaterThan(0);
          for (const issue of result.issues) expect(issue.code).toMatch(/^BTL_MANIFEST_/);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("secrets from the environment", () => {
  it("never appear in an error, whatever the environment holds", () => {
    const m = parseManifest(stringify(VALID), { checkFiles: false });
    const slots = tokenSlots(expandRoutes(m));
    const value = fc.oneof(
      fc.constant(undefined),
      fc.constant(""),
      fc.string({ minLength: 1, maxLength: 40 }),
    );
    fc.assert(
      fc.property(fc.tuple(value, value), ([a, b]) => {
        const canary = makeCanary();
        const env: Record<string, string | undefined> = {
          ANTHROPIC_API_KEY: a === undefined ? undefined : `${a}${canary}`,
          S_TOKEN: b === undefined ? undefined : `${canary}${b}`,
        };
        try {
          resolveTokenValues(slots, env);
        } catch (error) {
          const e = error as ManifestError;
          expect(e.code).toMatch(/^BTL_MANIFEST_TOKEN_/);
          expect(`${e.message}${JSON.stringify(e)}${e.stack}`).not.toContain(canary);
        }
      }),
      { numRuns: 200 },
    );
  });
});
