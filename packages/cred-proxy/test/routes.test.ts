import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { loadRoutes, matchRoute, parseRoutes } from "../src/routes.ts";
import { route, TOKEN_KIND_ROUTES } from "./fixture.ts";

const EXAMPLE = {
  version: 1,
  routes: [
    ...TOKEN_KIND_ROUTES,
    route("/gitea/gitea.acme.example/", "https://gitea.acme.example/", { scheme: "token" }, 2),
  ],
};

function configError(value: unknown): string {
  try {
    parseRoutes(value);
  } catch (error) {
    expect(isBottleError(error, "BTL_PROXY_CONFIG")).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected BTL_PROXY_CONFIG");
}

function withRoute(patch: Record<string, unknown>, index = 0) {
  const routes = EXAMPLE.routes.map((r, i) => (i === index ? { ...r, ...patch } : r));
  return { ...EXAMPLE, routes };
}

describe("parseRoutes", () => {
  it("parses the documented example into frozen routes with origin, host and base path", () => {
    const routes = parseRoutes(EXAMPLE);
    expect(routes.map((r) => [r.path, r.origin, r.host, r.basePath, r.tokenEnv])).toEqual([
      ["/anthropic/", "https://api.anthropic.com", "api.anthropic.com", "", "BOTTLE_PROXY_TOKEN_0"],
      ["/gh-api/", "https://api.github.com", "api.github.com", "", "BOTTLE_PROXY_TOKEN_1"],
      ["/gh-git/", "https://github.com", "github.com", "", "BOTTLE_PROXY_TOKEN_1"],
      [
        "/gitea/gitea.acme.example/",
        "https://gitea.acme.example",
        "gitea.acme.example",
        "",
        "BOTTLE_PROXY_TOKEN_2",
      ],
    ]);
    expect(Object.isFrozen(routes)).toBe(true);
    expect(Object.isFrozen(routes[0])).toBe(true);
  });

  it("lets git pushes through only the routes that say git_push: true", () => {
    const routes = parseRoutes(withRoute({ git_push: true }, 2));
    expect(routes.map((r) => r.gitPush)).toEqual([false, false, true, false]);
    expect(parseRoutes(withRoute({ git_push: false }, 2))[2]?.gitPush).toBe(false);
  });

  it("keeps allow rules, frozen, on the routes that have them", () => {
    const allow = [{ methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**", "/user"] }];
    const routes = parseRoutes(withRoute({ allow }, 1));
    expect(routes[1]?.allow).toEqual(allow);
    expect(Object.isFrozen(routes[1]?.allow?.[0]?.paths)).toBe(true);
    expect(routes[0]).not.toHaveProperty("allow");
  });

  it("keeps a base path and accepts http for loopback hosts only", () => {
    const routes = parseRoutes(
      withRoute({ upstream: "http://127.0.0.1:8080/api/v3/", auth: { header: "X-Api-Key" } }),
    );
    expect(routes[0]).toMatchObject({
      upstream: "http://127.0.0.1:8080/api/v3",
      origin: "http://127.0.0.1:8080",
      basePath: "/api/v3",
      auth: { header: "x-api-key" },
    });
    for (const upstream of ["http://localhost:1", "http://[::1]:1", "http://127.9.9.9"])
      expect(parseRoutes(withRoute({ upstream }))[0]?.upstream).toBe(upstream);
  });

  it.each([
    [
      { upstream: "http://api.anthropic.com" },
      "routes[0].upstream: Expected `upstream` to use https:// (http:// is accepted for loopback hosts only)",
    ],
    [{ upstream: "http://10.0.0.1" }, "routes[0].upstream"],
    [{ upstream: "ftp://x.test" }, "routes[0].upstream"],
    [
      { upstream: "https://user:secret@x.test" },
      "routes[0].upstream: Expected `upstream` to carry no user name",
    ],
    [
      { upstream: "https://x.test/a/../b" },
      "routes[0].upstream: Expected `upstream` to have a plain path",
    ],
    [{ upstream: "https://x.test/%2e%2e" }, "routes[0].upstream"],
    [
      { upstream: "https://x.test/?q=1" },
      "routes[0].upstream: Expected `upstream` to have no query",
    ],
    [{ upstream: "https://x.test/a b" }, "routes[0].upstream"],
    [{ upstream: "not a url" }, "routes[0].upstream"],
    [{ path: "/anthropic" }, "routes[0].path: Expected `path` to look like `/segment/`"],
    [{ path: "/../" }, "routes[0].path"],
    [{ path: "/a//" }, "routes[0].path"],
    [{ path: "/.hidden/" }, "routes[0].path"],
    [
      { token_env: "ANTHROPIC_API_KEY" },
      "routes[0].token_env: Expected `token_env` to be a slot name",
    ],
    [{ token_env: "BOTTLE_PROXY_TOKEN_" }, "routes[0].token_env"],
    [{ auth: { scheme: "Digest" } }, "routes[0].auth: Expected `auth` to be"],
    [{ auth: { scheme: "Basic" } }, "routes[0].auth"],
    [{ auth: { scheme: "Basic", username: "a:b" } }, "routes[0].auth"],
    [{ auth: { header: "x-api-key", scheme: "Bearer" } }, "routes[0].auth"],
    [{ auth: { header: "Host" } }, "routes[0].auth"],
    [{ auth: { header: "Transfer-Encoding" } }, "routes[0].auth"],
    [{ auth: { header: "X-Forwarded-Host" } }, "routes[0].auth"],
    [{ auth: { header: "bad header" } }, "routes[0].auth"],
    [{ extra: true }, "routes[0].extra: is not a known key"],
    [{ git_push: "yes" }, "routes[0].git_push: Expected `git_push` to be true or false"],
    [{ allow: [] }, "routes[0].allow: Expected `allow` to hold at least one rule"],
    [{ allow: [{ methods: ["TRACE"], paths: ["/**"] }] }, "routes[0].allow[0].methods[0]"],
    [{ allow: [{ methods: ["GET"], paths: [] }] }, "routes[0].allow[0].paths"],
    [{ allow: [{ methods: ["GET"] }] }, "routes[0].allow[0].paths: is required"],
    [{ allow: [{ methods: ["GET"], paths: ["/a//b"] }] }, "routes[0].allow[0].paths[0]"],
    [{ allow: [{ methods: ["GET"], paths: ["/a/../b"] }] }, "routes[0].allow[0].paths[0]"],
    [{ allow: [{ methods: ["GET"], paths: ["/a/b*"] }] }, "routes[0].allow[0].paths[0]"],
    [{ allow: [{ methods: ["GET"], paths: ["a/**"] }] }, "routes[0].allow[0].paths[0]"],
    [{ allow: [{ methods: ["GET"], paths: ["/a?b"] }] }, "routes[0].allow[0].paths[0]"],
  ])("refuses route %j naming its index and field", (patch, message) => {
    expect(configError(withRoute(patch))).toContain(message);
  });

  it("names the index of a later route and a missing field", () => {
    const { token_env: _, ...noSlot } = EXAMPLE.routes[2] as (typeof EXAMPLE.routes)[number];
    const routes = [...EXAMPLE.routes.slice(0, 2), noSlot];
    expect(configError({ version: 1, routes })).toContain(
      "routes[2]: Expected exactly one of `token_env` (a token slot) or `tokman`",
    );
    expect(configError({ version: 1, routes: [{ ...noSlot, path: "/x" }] })).toContain(
      "routes[0].path",
    );
  });

  it("refuses duplicate paths, a wrong version, unknown top-level keys and no routes", () => {
    expect(configError(withRoute({ path: "/gh-api/" }, 2))).toContain(
      "routes[2].path: /gh-api/ is already the path of routes[1]",
    );
    expect(configError({ ...EXAMPLE, version: 2 })).toContain("version");
    expect(configError({ ...EXAMPLE, tokens: {} })).toContain("tokens: is not a known key");
    expect(configError({ version: 1, routes: [] })).toContain("at least one route");
    expect(configError([])).toContain("routes.json");
  });

  it("never echoes a rejected upstream (it may carry a pasted secret)", () => {
    const message = configError(withRoute({ upstream: "https://user:hunter2hunter2@x.test" }));
    expect(message).not.toContain("hunter2");
  });
});

describe("parseRoutes with GitHub App routes", () => {
  const app = {
    path: "/gh/",
    upstream: "https://api.github.com",
    auth: { scheme: "Bearer" },
    tokman: { repository: "acme/api", permissions: { contents: "read" } },
  };

  it("takes a tokman source instead of a slot, frozen", () => {
    const [route] = parseRoutes({ version: 1, routes: [app] });
    expect(route).toMatchObject({
      path: "/gh/",
      origin: "https://api.github.com",
      tokman: { repository: "acme/api", permissions: { contents: "read" } },
    });
    expect(route?.tokenEnv).toBeUndefined();
    expect(Object.isFrozen(route?.tokman)).toBe(true);
    expect(Object.isFrozen(route?.tokman?.permissions)).toBe(true);
    const [plain] = parseRoutes({
      version: 1,
      routes: [{ ...app, tokman: { repository: "a/b" } }],
    });
    expect(plain?.tokman).toEqual({ repository: "a/b" });
  });

  it.each([
    [{ token_env: "BOTTLE_PROXY_TOKEN_0" }, "routes[0]: Expected exactly one of `token_env`"],
    [{ tokman: { repository: "api" } }, "routes[0].tokman.repository: Expected `repository`"],
    [{ tokman: { repository: "acme/.." } }, "routes[0].tokman.repository"],
    [
      { tokman: { repository: "acme/api", extra: 1 } },
      "routes[0].tokman.extra: is not a known key",
    ],
    [
      { tokman: { repository: "acme/api", permissions: { contents: "admin" } } },
      "routes[0].tokman.permissions.contents",
    ],
    [
      { tokman: { repository: "acme/api", permissions: {} } },
      "routes[0].tokman.permissions: Expected at least one permission",
    ],
    [{ tokman: { repository: "acme/api", key: "btk_secret" } }, "routes[0].tokman.key"],
  ])("refuses %j", (patch, message) => {
    expect(configError({ version: 1, routes: [{ ...app, ...patch }] })).toContain(message);
  });
});

describe("loadRoutes", () => {
  it("reads a file and reports unreadable, oversized and non-JSON files", async () => {
    const dir = await testdir({ "routes.json": JSON.stringify(EXAMPLE), "bad.json": "{" });
    expect(loadRoutes(join(dir, "routes.json"))).toHaveLength(4);
    for (const file of ["missing.json", "bad.json"]) {
      expect(() => loadRoutes(join(dir, file))).toThrow(
        expect.objectContaining({ code: "BTL_PROXY_CONFIG" }),
      );
    }
    await writeFile(join(dir, "big.json"), " ".repeat(1024 * 1024 + 1));
    expect(() => loadRoutes(join(dir, "big.json"))).toThrow(/larger than/);
  });
});

describe("matchRoute", () => {
  it("takes the longest prefix, with its trailing slash", () => {
    const routes = parseRoutes({
      version: 1,
      routes: [
        { ...EXAMPLE.routes[1], path: "/gh/" },
        { ...EXAMPLE.routes[1], path: "/gh/api/" },
      ],
    });
    expect(matchRoute(routes, "/gh/api/user")?.path).toBe("/gh/api/");
    expect(matchRoute(routes, "/gh/apix/user")?.path).toBe("/gh/");
    expect(matchRoute(routes, "/gh")).toBeUndefined();
    expect(matchRoute(routes, "/ghx/")).toBeUndefined();
  });
});

describe("the credential header rule", () => {
  it("is the manifest's: a header the proxy refuses never validates, one it takes does", async () => {
    const { parseManifest } = await import("@bottle/manifest");
    const manifest = (header: string) =>
      `version: 1\nname: p\nagent: { command: [a] }\ncred_proxy:\n  routes:\n    - { path: /x/, upstream: 'https://x.example', auth: { header: '${header}' }, token_ref: T }\n`;
    const refused = ["Cookie", "Proxy-Authorization", "X-Forwarded-For", "forwarded", "Host"];
    const names = [
      ...refused,
      "content-encoding",
      "Transfer-Encoding",
      "x-api-key",
      "private-token",
    ];
    for (const header of names) {
      const inProxy = (() => {
        try {
          parseRoutes(withRoute({ auth: { header } }));
          return true;
        } catch {
          return false;
        }
      })();
      const inManifest = (() => {
        try {
          parseManifest(manifest(header), { checkFiles: false });
          return true;
        } catch {
          return false;
        }
      })();
      expect(inManifest, header).toBe(inProxy);
    }
    for (const header of refused)
      expect(() => parseRoutes(withRoute({ auth: { header } }))).toThrow();
    expect(() => parseRoutes(withRoute({ auth: { header: "x-api-key" } }))).not.toThrow();
  });
});
