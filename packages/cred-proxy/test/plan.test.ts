import { parseManifest } from "@bottle/manifest";
import { makeCanary } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { prepareCredProxy, proxyTokenEnv } from "../src/plan.ts";
import { parseRoutes } from "../src/routes.ts";

const manifest = parseManifest(
  `version: 1
name: acme
agent: { command: [agent] }
cred_proxy:
  tokens:
    - { kind: anthropic, token_ref: ANTHROPIC_API_KEY, auth: api-key }
    - { kind: github, token_ref: GITHUB_TOKEN }
    - { kind: npm, token_ref: NPM_TOKEN }
  routes:
    - { path: /sentry/, upstream: https://sentry.io/api, auth: { scheme: Bearer }, token_ref: SENTRY_TOKEN }
`,
  { checkFiles: false },
);

describe("prepareCredProxy", () => {
  it("writes routes.json with slots, never host variable names or values", () => {
    const plan = prepareCredProxy(manifest);
    expect(plan.routesFile).toEqual({
      version: 1,
      routes: [
        {
          path: "/anthropic/",
          upstream: "https://api.anthropic.com",
          auth: { header: "x-api-key" },
          token_env: "BOTTLE_PROXY_TOKEN_0",
        },
        {
          path: "/gh-api/",
          upstream: "https://api.github.com",
          auth: { scheme: "Bearer" },
          token_env: "BOTTLE_PROXY_TOKEN_1",
        },
        {
          path: "/gh-git/",
          upstream: "https://github.com",
          auth: { scheme: "Basic", username: "x-access-token" },
          token_env: "BOTTLE_PROXY_TOKEN_1",
        },
        {
          path: "/npm/",
          upstream: "https://registry.npmjs.org",
          auth: { scheme: "Bearer" },
          token_env: "BOTTLE_PROXY_TOKEN_2",
        },
        {
          path: "/sentry/",
          upstream: "https://sentry.io/api",
          auth: { scheme: "Bearer" },
          token_env: "BOTTLE_PROXY_TOKEN_3",
        },
      ],
    });
    expect(JSON.stringify(plan.routesFile)).not.toMatch(
      /ANTHROPIC_API_KEY|GITHUB_TOKEN|NPM_TOKEN|SENTRY_TOKEN/,
    );
    expect(plan.slots.map((s) => [s.slot, s.token_ref])).toEqual([
      ["BOTTLE_PROXY_TOKEN_0", "ANTHROPIC_API_KEY"],
      ["BOTTLE_PROXY_TOKEN_1", "GITHUB_TOKEN"],
      ["BOTTLE_PROXY_TOKEN_2", "NPM_TOKEN"],
      ["BOTTLE_PROXY_TOKEN_3", "SENTRY_TOKEN"],
    ]);
    // What the server reads: the plan's file parses as routes.json.
    expect(parseRoutes(plan.routesFile).map((r) => r.path)).toEqual([
      "/anthropic/",
      "/gh-api/",
      "/gh-git/",
      "/npm/",
      "/sentry/",
    ]);
    expect(plan.roles).toEqual({
      "anthropic-base-url": ["/anthropic/"],
      "npm-registry": ["/npm/"],
      "git-insteadof": ["/gh-git/"],
    });
  });

  it("hands the values to the slots, and names every bad variable without its value", () => {
    const plan = prepareCredProxy(manifest);
    const canary = makeCanary();
    const env = {
      ANTHROPIC_API_KEY: canary,
      GITHUB_TOKEN: "ghp_x",
      NPM_TOKEN: "npm_x",
      SENTRY_TOKEN: "s",
    };
    expect(proxyTokenEnv(plan, env)).toEqual({
      BOTTLE_PROXY_TOKEN_0: canary,
      BOTTLE_PROXY_TOKEN_1: "ghp_x",
      BOTTLE_PROXY_TOKEN_2: "npm_x",
      BOTTLE_PROXY_TOKEN_3: "s",
    });
    try {
      proxyTokenEnv(plan, {
        ANTHROPIC_API_KEY: `${canary} x`,
        GITHUB_TOKEN: "",
        SENTRY_TOKEN: "s",
      });
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "BTL_PROXY_TOKEN" });
      const message = (error as Error).message;
      expect(message).toMatch(/ANTHROPIC_API_KEY/);
      expect(message).toMatch(/GITHUB_TOKEN/);
      expect(message).toMatch(/NPM_TOKEN/);
      expect(message).not.toContain(canary);
    }
  });
});
