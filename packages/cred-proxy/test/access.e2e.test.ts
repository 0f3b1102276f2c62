// What a route lets through, against a recording upstream: refused requests never reach it.
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
