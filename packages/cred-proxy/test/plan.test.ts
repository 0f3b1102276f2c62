import { parseManifest } from "@bottle/manifest";
import { GITHUB_APP_ROUTE_YAML, makeCanary, manifestYaml } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { prepareCredProxy, proxyTokenEnv } from "../src/plan.ts";
import { parseRoutes } from "../src/routes.ts";
import { route, TOKEN_KIND_ROUTES } from "./fixture.ts";

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
        ...TOKEN_KIND_ROUTES,
        route("/npm/", "https://registry.npmjs.org", { scheme: "Bearer" }, 2),
        route("/sentry/", "https://sentry.io/api", { scheme: "Bearer" }, 3),
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

  it("writes git_push only for the explicit routes that opt in", () => {
    const plan = prepareCredProxy(
      parseManifest(
        "version: 1\nname: a\nagent: { command: [a] }\ncred_proxy:\n  tokens: [{ kind: github, token_ref: G }]\n  routes:\n    - { path: /git/, upstream: 'https://git.example', auth: { scheme: Basic, username: x }, token_ref: T, git_push: true }\n",
        { checkFiles: false },
      ),
    );
    expect(plan.routesFile.routes.map((r) => [r.path, r.git_push])).toEqual([
      ["/gh-api/", undefined],
      ["/gh-git/", undefined],
      ["/git/", true],
    ]);
    expect(parseRoutes(plan.routesFile).map((r) => r.gitPush)).toEqual([false, false, true]);
  });

  it("writes allow rules, with read_only expanded, for the routes that have them", () => {
    const plan = prepareCredProxy(
      parseManifest(
        "version: 1\nname: a\nagent: { command: [a] }\ncred_proxy:\n  routes:\n    - { path: /ro/, upstream: 'https://ro.example', auth: { scheme: Bearer }, token_ref: T, read_only: true }\n    - { path: /gh/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, token_ref: T, allow: [{ methods: [GET], paths: ['/repos/acme/*/pulls/**'] }] }\n    - { path: /all/, upstream: 'https://all.example', auth: { scheme: Bearer }, token_ref: T }\n",
        { checkFiles: false },
      ),
    );
    expect(plan.routesFile.routes.map((r) => r.allow)).toEqual([
      [{ methods: ["GET", "HEAD"], paths: ["/**"] }],
      [{ methods: ["GET"], paths: ["/repos/acme/*/pulls/**"] }],
      undefined,
    ]);
    expect(parseRoutes(plan.routesFile).map((r) => r.allow?.length)).toEqual([1, 1, undefined]);
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

describe("prepareCredProxy with a GitHub App route", () => {
  const withApp = parseManifest(manifestYaml(GITHUB_APP_ROUTE_YAML), { checkFiles: false });

  it("writes a tokman source instead of a slot, and names tokman's variables", () => {
    const plan = prepareCredProxy(withApp);
    expect(JSON.stringify(plan.routesFile.routes[1])).toBe(
      '{"path":"/gh/","upstream":"https://api.github.com","auth":{"scheme":"Bearer"},"tokman":{"repository":"acme/api","permissions":{"contents":"read"}}}',
    );
    // A token route is written exactly as before.
    expect(JSON.stringify(plan.routesFile.routes[0])).toBe(
      '{"path":"/npm/","upstream":"https://registry.npmjs.org","auth":{"scheme":"Bearer"},"token_env":"BOTTLE_PROXY_TOKEN_0"}',
    );
    expect(plan.slots.map((s) => s.slot)).toEqual(["BOTTLE_PROXY_TOKEN_0"]);
    expect(plan.tokman).toEqual({
      urlEnv: "BOTTLE_TOKMAN_URL",
      keyEnv: "BOTTLE_TOKMAN_KEY",
      routes: [
        { path: "/gh/", app: "acme", repository: "acme/api", permissions: { contents: "read" } },
      ],
    });
    expect(parseRoutes(plan.routesFile)[1]?.tokman).toEqual({
      repository: "acme/api",
      permissions: { contents: "read" },
    });
    expect(prepareCredProxy(manifest).tokman).toBeNull();
  });

  it("hands tokman's URL and key over with the slots, and names what is missing without a value", () => {
    const plan = prepareCredProxy(withApp);
    const key = makeCanary("btk");
    expect({
      ...proxyTokenEnv(plan, { NPM_TOKEN: "npm_x" }, { url: "http://127.0.0.1:9421", key }),
    }).toEqual({
      BOTTLE_PROXY_TOKEN_0: "npm_x",
      BOTTLE_TOKMAN_URL: "http://127.0.0.1:9421",
      BOTTLE_TOKMAN_KEY: key,
    });
    // Without GitHub App routes, tokman's settings are not handed to the proxy.
    expect(
      Object.keys(
        proxyTokenEnv(
          prepareCredProxy(manifest),
          {
            ANTHROPIC_API_KEY: "a",
            GITHUB_TOKEN: "g",
            NPM_TOKEN: "n",
            SENTRY_TOKEN: "s",
          },
          { url: "http://127.0.0.1:1", key },
        ),
      ),
    ).not.toContain("BOTTLE_TOKMAN_KEY");
    const cases: Array<[Parameters<typeof proxyTokenEnv>[2], string, RegExp]> = [
      [undefined, "BTL_PROXY_CONFIG", /tokman's URL is unset.*caller key of tokman is unset/],
      [
        { url: "http://tokman.example", key },
        "BTL_PROXY_CONFIG",
        /Expected tokman's URL to use https/,
      ],
      [{ url: "https://tokman.example", key: `${key} x` }, "BTL_PROXY_TOKEN", /caller key/],
    ];
    for (const [tokman, code, message] of cases) {
      try {
        proxyTokenEnv(plan, { NPM_TOKEN: "npm_x" }, tokman);
        expect.unreachable();
      } catch (error) {
        expect(error).toMatchObject({ code });
        expect((error as Error).message).toMatch(message);
        expect((error as Error).message).not.toContain(key);
      }
    }
    try {
      proxyTokenEnv(plan, {}, undefined);
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "BTL_PROXY_TOKEN" });
      expect((error as Error).message).toMatch(/NPM_TOKEN.*tokman's URL/);
    }
  });
});
