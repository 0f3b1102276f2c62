import {
  codes,
  expandRoutes,
  type ManifestError,
  resolveTokenValues,
  tokenSlots,
} from "@bottle/manifest";
import { expectNoCanary, makeCanary, RESTRICTED_ROUTES_YAML } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { manifest, parse } from "./helpers.ts";

const full = parse(
  manifest(`cred_proxy:
  tokens:
    - { kind: anthropic, token_ref: ANTHROPIC_API_KEY, auth: api-key }
    - { kind: github, token_ref: GITHUB_TOKEN }
    - { kind: gitea, token_ref: GITEA_TOKEN, url: 'https://Gitea.Acme.example:3000/' }
    - { kind: npm, token_ref: NPM_TOKEN }
  routes:
    - { path: /sentry/, upstream: 'https://sentry.io/api/', auth: { scheme: Bearer }, token_ref: GITHUB_TOKEN }
`),
);

describe("expandRoutes", () => {
  it("expands every token kind, then the explicit routes", () => {
    expect(expandRoutes(full)).toEqual([
      {
        path: "/anthropic/",
        upstream: "https://api.anthropic.com",
        auth: { header: "x-api-key" },
        token_ref: "ANTHROPIC_API_KEY",
        roles: ["anthropic-base-url"],
        source: "cred_proxy.tokens[0]",
      },
      {
        path: "/gh-api/",
        upstream: "https://api.github.com",
        auth: { scheme: "Bearer" },
        token_ref: "GITHUB_TOKEN",
        roles: [],
        source: "cred_proxy.tokens[1]",
      },
      {
        path: "/gh-git/",
        upstream: "https://github.com",
        auth: { scheme: "Basic", username: "x-access-token" },
        token_ref: "GITHUB_TOKEN",
        roles: ["git-insteadof"],
        source: "cred_proxy.tokens[1]",
      },
      {
        path: "/gitea/gitea.acme.example/",
        upstream: "https://Gitea.Acme.example:3000",
        auth: { scheme: "token" },
        token_ref: "GITEA_TOKEN",
        roles: ["git-insteadof"],
        source: "cred_proxy.tokens[2]",
      },
      {
        path: "/npm/",
        upstream: "https://registry.npmjs.org",
        auth: { scheme: "Bearer" },
        token_ref: "NPM_TOKEN",
        roles: ["npm-registry"],
        source: "cred_proxy.tokens[3]",
      },
      {
        path: "/sentry/",
        upstream: "https://sentry.io/api",
        auth: { scheme: "Bearer" },
        token_ref: "GITHUB_TOKEN",
        roles: [],
        source: "cred_proxy.routes[0]",
      },
    ]);
  });

  it("sends Anthropic OAuth tokens as Bearer", () => {
    const m = parse(
      manifest("cred_proxy:\n  tokens: [{ kind: anthropic, token_ref: T, auth: oauth }]\n"),
    );
    expect(expandRoutes(m)[0]?.auth).toEqual({ scheme: "Bearer" });
  });
});

describe("tokenSlots", () => {
  it("gives one slot per distinct token_ref, shared by the routes using it", () => {
    expect(tokenSlots(expandRoutes(full))).toEqual([
      { slot: "BOTTLE_PROXY_TOKEN_0", token_ref: "ANTHROPIC_API_KEY", routes: ["/anthropic/"] },
      {
        slot: "BOTTLE_PROXY_TOKEN_1",
        token_ref: "GITHUB_TOKEN",
        routes: ["/gh-api/", "/gh-git/", "/sentry/"],
      },
      {
        slot: "BOTTLE_PROXY_TOKEN_2",
        token_ref: "GITEA_TOKEN",
        routes: ["/gitea/gitea.acme.example/"],
      },
      { slot: "BOTTLE_PROXY_TOKEN_3", token_ref: "NPM_TOKEN", routes: ["/npm/"] },
    ]);
  });
});

describe("GitHub App routes", () => {
  const withApp = parse(
    manifest(`cred_proxy:
  tokens:
    - { kind: npm, token_ref: NPM_TOKEN }
  routes:
    - path: /gh/
      upstream: https://api.github.com/
      auth: { scheme: Bearer }
      github_app: { app: acme, repository: acme/api, permissions: { contents: read } }
      roles: [git-insteadof]
    - { path: /sentry/, upstream: 'https://sentry.io', auth: { scheme: Bearer }, token_ref: SENTRY_TOKEN }
github_apps:
  acme: { app_id: 1, private_key: /k }
`),
  );

  it("carry a tokman source instead of a token_ref", () => {
    expect(expandRoutes(withApp)[1]).toEqual({
      path: "/gh/",
      upstream: "https://api.github.com",
      auth: { scheme: "Bearer" },
      tokman: { app: "acme", repository: "acme/api", permissions: { contents: "read" } },
      roles: ["git-insteadof"],
      source: "cred_proxy.routes[0]",
    });
    expect(expandRoutes(withApp)[1]).not.toHaveProperty("token_ref");
    expect(Object.isFrozen(expandRoutes(withApp)[1]?.tokman)).toBe(true);
  });

  it("get no token slot, and the slots of the others keep their numbers", () => {
    expect(tokenSlots(expandRoutes(withApp))).toEqual([
      { slot: "BOTTLE_PROXY_TOKEN_0", token_ref: "NPM_TOKEN", routes: ["/npm/"] },
      { slot: "BOTTLE_PROXY_TOKEN_1", token_ref: "SENTRY_TOKEN", routes: ["/sentry/"] },
    ]);
  });

  it("omit permissions when the manifest names none", () => {
    const m = parse(
      manifest(
        "cred_proxy:\n  routes:\n    - { path: /gh/, upstream: 'https://api.github.com', auth: { scheme: token }, github_app: { app: a, repository: o/r } }\ngithub_apps:\n  a: { app_id: 1, private_key: /k }\n",
      ),
    );
    expect(expandRoutes(m)[0]?.tokman).toEqual({ app: "a", repository: "o/r" });
  });
});

describe("resolveTokenValues", () => {
  const slots = tokenSlots(expandRoutes(full));

  it("maps each slot to its variable's value", () => {
    const env = {
      ANTHROPIC_API_KEY: "a",
      GITHUB_TOKEN: "g",
      GITEA_TOKEN: "t",
      NPM_TOKEN: "n",
      OTHER: "o",
    };
    const values = resolveTokenValues(slots, env);
    expect({ ...values }).toEqual({
      BOTTLE_PROXY_TOKEN_0: "a",
      BOTTLE_PROXY_TOKEN_1: "g",
      BOTTLE_PROXY_TOKEN_2: "t",
      BOTTLE_PROXY_TOKEN_3: "n",
    });
    expect(Object.getPrototypeOf(values)).toBe(null);
  });

  it("lists unset, empty and malformed variables with distinct codes and never their values", () => {
    const canary = makeCanary();
    const env = { ANTHROPIC_API_KEY: "", GITHUB_TOKEN: `${canary} x`, NPM_TOKEN: canary };
    let error: ManifestError | undefined;
    try {
      resolveTokenValues(slots, env);
    } catch (e) {
      error = e as ManifestError;
    }
    expect(error?.issues.map((i) => i.code)).toEqual([
      codes.BTL_MANIFEST_TOKEN_EMPTY,
      codes.BTL_MANIFEST_TOKEN_INVALID,
      codes.BTL_MANIFEST_TOKEN_UNSET,
    ]);
    expect(error?.message).toContain("GITEA_TOKEN is not set (used by /gitea/gitea.acme.example/)");
    expectNoCanary(canary, error?.message, JSON.stringify(error), String(error?.stack));
  });

  it("ignores inherited properties of the environment object", () => {
    const env = Object.create({ ANTHROPIC_API_KEY: "inherited" }) as Record<string, string>;
    expect(() => resolveTokenValues(slots.slice(0, 1), env)).toThrow(
      expect.objectContaining({ code: codes.BTL_MANIFEST_TOKEN_UNSET }),
    );
  });
});

describe("route restrictions", () => {
  const m = parse(
    manifest(
      `cred_proxy:\n  tokens:\n    - { kind: github, token_ref: GITHUB_TOKEN }\n  routes:\n${RESTRICTED_ROUTES_YAML}`,
    ),
  );
  const routes = expandRoutes(m);

  it("expand read_only into GET and HEAD on every path", () => {
    expect(routes[2]?.allow).toEqual([{ methods: ["GET", "HEAD"], paths: ["/**"] }]);
    expect(routes[2]).not.toHaveProperty("git_push");
  });

  it("carry allow rules and git_push onto the expanded route, frozen", () => {
    expect(routes[3]?.allow).toEqual([
      { methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**"] },
      { methods: ["POST"], paths: ["/graphql"] },
    ]);
    expect(Object.isFrozen(routes[3]?.allow?.[0]?.paths)).toBe(true);
    expect(routes[4]).toMatchObject({ path: "/git/", git_push: true });
    expect(routes[4]).not.toHaveProperty("allow");
  });

  it("never let git pushes through a token short form, and leave its routes unrestricted", () => {
    for (const route of routes.slice(0, 2)) {
      expect(route).not.toHaveProperty("git_push");
      expect(route).not.toHaveProperty("allow");
    }
  });
});
