// What a route lets through, against a recording upstream: refused requests never reach it.
import type { RouteAllow } from "@bottle/manifest/allow";
import { startUpstream } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { countConnections, route, send, startProxy } from "./fixture.ts";

const SLOT = "BOTTLE_PROXY_TOKEN_0";
const BASIC = { scheme: "Basic", username: "x-access-token" } as const;

describe("git pushes", { tags: ["slow"] }, () => {
  it.each([
    ["GET", "/gh-git/acme/api.git/info/refs?service=git-receive-pack"],
    ["GET", "/gh-git/acme/api.git/info/refs?x=1&service=git-receive-pack"],
    ["GET", "/gh-git/acme/api.git/info/refs?%73ervice=git%2Dreceive-pack"],
    ["GET", "/gh-git/acme/api.git/info/refs?SERVICE=GIT-RECEIVE-PACK"],
    ["POST", "/gh-git/acme/api.git/git-receive-pack"],
    ["POST", "/gh-git/acme/api.git/git%2dreceive-pack"],
    ["POST", "/gh-git/acme/api/git-receive-pack/"],
    ["HEAD", "/gh-git/acme/api.git/git-receive-pack"],
  ])(
    "are refused on a route without git_push: %s %s, 403 and no upstream contact",
    async (method, target) => {
      const upstream = await startUpstream();
      const connections = countConnections(upstream.server);
      const proxy = await startProxy({
        routes: [route("/gh-git/", upstream.url, BASIC)],
        tokens: { [SLOT]: "t0k" },
      });
      const reply = await send(proxy.url, target, {
        method,
        ...(method === "POST"
          ? {
              headers: { "content-type": "application/x-git-receive-pack-request" },
              body: "0000PACK",
            }
          : {}),
      });
      expect(reply.status).toBe(403);
      expect(reply.headers["x-bottle-code"]).toBe("BTL_PROXY_PUSH_REFUSED");
      if (method !== "HEAD")
        expect(JSON.parse(reply.body.toString()).code).toBe("BTL_PROXY_PUSH_REFUSED");
      expect(upstream.requests).toHaveLength(0);
      expect(connections()).toBe(0);
      expect(proxy.records()).toContainEqual(
        expect.objectContaining({
          level: "warn",
          msg: "request",
          route: "/gh-git/",
          status: 403,
          code: "BTL_PROXY_PUSH_REFUSED",
        }),
      );
    },
  );

  it("pass a route with git_push: true; fetches pass every route", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [
        route("/gh-git/", upstream.url, BASIC),
        { ...route("/forge/", upstream.url, BASIC), git_push: true },
      ],
      tokens: { [SLOT]: "t0k" },
    });
    const fetches = [
      ["GET", "/gh-git/acme/api.git/info/refs?service=git-upload-pack"],
      ["POST", "/gh-git/acme/api.git/git-upload-pack"],
      ["GET", "/forge/acme/api.git/info/refs?service=git-receive-pack"],
      ["POST", "/forge/acme/api.git/git-receive-pack"],
    ];
    for (const [method, target] of fetches) {
      const reply = await send(proxy.url, target ?? "", { method: method ?? "GET", body: "" });
      expect(reply.status, target).toBe(200);
    }
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      "GET /acme/api.git/info/refs?service=git-upload-pack",
      "POST /acme/api.git/git-upload-pack",
      "GET /acme/api.git/info/refs?service=git-receive-pack",
      "POST /acme/api.git/git-receive-pack",
    ]);
  });
});

describe("allow rules", { tags: ["slow"] }, () => {
  const rules: readonly RouteAllow[] = [
    { methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**", "/user"] },
    { methods: ["POST"], paths: ["/graphql"] },
  ];

  it("refuse a request no rule names with 403 BTL_PROXY_NOT_ALLOWED, logged at warn, before the upstream", async () => {
    const upstream = await startUpstream();
    const connections = countConnections(upstream.server);
    const proxy = await startProxy({
      routes: [
        { ...route("/gh-api/", `${upstream.url}/api/v3`, { scheme: "Bearer" }), allow: rules },
      ],
      tokens: { [SLOT]: "t0k" },
    });
    const NOT_ALLOWED = "BTL_PROXY_NOT_ALLOWED";
    const refused: Array<[string, string, string, Record<string, string>?]> = [
      ["PUT", "/gh-api/repos/acme/api/contents/README.md", NOT_ALLOWED],
      ["DELETE", "/gh-api/repos/acme/api/pulls/1", NOT_ALLOWED],
      ["POST", "/gh-api/repos/acme/api/pulls", NOT_ALLOWED],
      ["GET", "/gh-api/repos/acme/api/contents/README.md", NOT_ALLOWED],
      ["GET", "/gh-api/repos/%61cme/api/pulls", NOT_ALLOWED],
      ["GET", "/gh-api/api/v3/user", NOT_ALLOWED],
      ["GET", "/gh-api/user/keys?x=/user", NOT_ALLOWED],
      ["OPTIONS", "/gh-api/user", NOT_ALLOWED],
      ["GET", "/gh-api/user", NOT_ALLOWED, { "x-http-method-override": "DELETE" }],
      ["POST", "/gh-api/graphql", NOT_ALLOWED, { X_HTTP_Method: "PUT" }],
      // The path checks come first: an encoded slash is a bad path before any rule is read.
      ["GET", "/gh-api/repos/acme/api/pulls%2F..%2F..%2Fcontents", "BTL_PROXY_BAD_PATH"],
    ];
    for (const [method, target, code, headers] of refused) {
      const reply = await send(proxy.url, target, {
        method,
        ...(headers ? { headers } : {}),
        ...(method === "GET" || method === "OPTIONS" ? {} : { body: '{"content":"eA=="}' }),
      });
      expect([reply.status, reply.headers["x-bottle-code"]], `${method} ${target}`).toEqual([
        code === NOT_ALLOWED ? 403 : 400,
        code,
      ]);
      expect(JSON.parse(reply.body.toString()).code).toBe(code);
    }
    expect(upstream.requests).toHaveLength(0);
    expect(connections()).toBe(0);
    const logged = proxy.records().filter((r) => r.code === NOT_ALLOWED);
    expect(logged).toHaveLength(refused.length - 1);
    expect(logged.every((r) => r.level === "warn" && r.status === 403)).toBe(true);
    expect(logged.map((r) => r.reason).slice(-2)).toEqual(["method override", "method override"]);
  });

  it("let through what a rule names, checking the path after the route prefix without the query", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [
        { ...route("/gh-api/", `${upstream.url}/api/v3`, { scheme: "Bearer" }), allow: rules },
      ],
      tokens: { [SLOT]: "t0k" },
    });
    const passed: Array<[string, string]> = [
      ["GET", "/gh-api/repos/acme/api/pulls?state=open&x=/contents"],
      ["HEAD", "/gh-api/repos/acme/web/pulls/7/files"],
      ["GET", "/gh-api/user/"],
      ["POST", "/gh-api/graphql"],
    ];
    for (const [method, target] of passed) {
      const reply = await send(proxy.url, target, {
        method,
        ...(method === "POST" ? { body: "{}" } : {}),
      });
      expect(reply.status, `${method} ${target}`).toBe(200);
    }
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      "GET /api/v3/repos/acme/api/pulls?state=open&x=/contents",
      "HEAD /api/v3/repos/acme/web/pulls/7/files",
      "GET /api/v3/user/",
      "POST /api/v3/graphql",
    ]);
  });

  it("do not open git pushes: a push needs git_push even where a rule names it", async () => {
    const upstream = await startUpstream();
    const proxy = await startProxy({
      routes: [
        {
          ...route("/git/", upstream.url, BASIC),
          allow: [{ methods: ["GET", "POST"], paths: ["/**"] }],
        },
      ],
      tokens: { [SLOT]: "t0k" },
    });
    const reply = await send(proxy.url, "/git/acme/api.git/git-receive-pack", {
      method: "POST",
      body: "0000",
    });
    expect(reply.headers["x-bottle-code"]).toBe("BTL_PROXY_PUSH_REFUSED");
    expect(upstream.requests).toHaveLength(0);
  });
});
