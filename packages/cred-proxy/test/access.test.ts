import { describe, expect, it } from "vitest";
import { isAllowed, isGitPush } from "../src/access.ts";

describe("isGitPush", () => {
  it.each([
    ["/acme/api.git/git-receive-pack", undefined, true],
    ["/acme/api/git-receive-pack/", undefined, true],
    ["/acme/api.git/GIT-RECEIVE-PACK", undefined, true],
    ["/acme/api.git/git%2Dreceive-pack", undefined, true],
    ["/acme/api.git/git%252dreceive%252Dpack", undefined, true],
    ["/acme/api.git/%67it-receive-pack", undefined, true],
    ["/acme/api.git/git-receive-pack;v=1", undefined, true],
    ["/acme/api.git/info/refs", "service=git-receive-pack", true],
    ["/acme/api.git/info/refs", "x=1&service=git-receive-pack", true],
    ["/acme/api.git/info/refs", "x=1;service=git-receive-pack", true],
    ["/acme/api.git/info/refs", "SERVICE=Git-Receive-Pack", true],
    ["/acme/api.git/info/refs", "%73ervice=git%2dreceive%2dpack", true],
    ["/acme/api.git/info/refs", "service=git+receive-pack", true],
    ["/acme/api.git/info/refs", "service+=git-receive-pack", true],
    ["/acme/api.git/info/refs", "service=git-upload-pack&service=git-receive-pack", true],
    ["/acme/api.git/info/refs/", "service=receive-pack", true],
    ["/anything", "service=git-receive-pack", true],
    ["/acme/api.git/info/refs", "service=git-upload-pack", false],
    ["/acme/api.git/git-upload-pack", undefined, false],
    ["/acme/api.git/info/refs", undefined, false],
    ["/repos/acme/api/contents/git-receive-pack.md", undefined, false],
    ["/git-receive-pack/objects", undefined, false],
    ["/search/code", "q=git-receive-pack", false],
    ["/", undefined, false],
  ])("%s?%s is a push: %s", (path, query, push) => {
    expect(isGitPush(path, query)).toBe(push);
  });
});

describe("isAllowed", () => {
  const glob = (paths: string[], methods: Array<"GET" | "HEAD" | "POST" | "PUT"> = ["GET"]) => [
    { methods, paths },
  ];

  it.each([
    ["/repos/acme/*/pulls/**", "matches", "/repos/acme/api/pulls"],
    ["/repos/acme/*/pulls/**", "matches", "/repos/acme/api/pulls/"],
    ["/repos/acme/*/pulls/**", "matches", "/repos/acme/api/pulls/12/comments"],
    ["/repos/acme/*/pulls", "matches", "/repos/acme/api/pulls/"],
    ["/**", "matches", "/"],
    ["/**", "matches", "/anything/at/all"],
    ["/**/comments", "matches", "/repos/acme/api/issues/1/comments"],
    ["/**/comments", "matches", "/comments"],
    ["/*/**/*", "matches", "/a/b"],
    ["/@acme%2fpkg", "matches", "/@acme%2fpkg"],
    ["/**/**/**/x", "matches", "/a/b/c/x"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/acme/api/contents/README.md"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/acme/pulls"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/acme/a/b/pulls"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/other/api/pulls"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/ACME/api/pulls"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/%61cme/api/pulls"],
    ["/repos/acme/*/pulls/**", "misses", "/repos/acme/api/pullsx"],
    ["/repos/acme/*", "misses", "/repos/acme/"],
    ["/user", "misses", "/user/keys"],
    ["/user", "misses", "/"],
    ["/*/**/*", "misses", "/a"],
  ])("%s %s %s", (pattern, verdict, path) => {
    expect(isAllowed(glob([pattern]), "GET", path)).toBe(verdict === "matches");
  });

  it("needs the method and a path of the same rule", () => {
    const rules = [
      { methods: ["GET", "HEAD"] as const, paths: ["/repos/**"] },
      { methods: ["POST"] as const, paths: ["/graphql"] },
    ];
    const allows = (request: string) => {
      const [method = "", path = ""] = request.split(" ");
      return isAllowed(rules, method, path);
    };
    const allowed = ["GET /repos/a", "HEAD /repos/a", "POST /graphql"];
    const refused = ["POST /repos/a", "GET /graphql", "get /repos/a", "PUT /repos/a"];
    expect([...allowed, ...refused].filter(allows)).toEqual(allowed);
  });

  it("stays linear with many ** against a long path", () => {
    const path = `/${Array.from({ length: 4000 }, () => "a").join("/")}/b`;
    const started = performance.now();
    expect(isAllowed(glob([`${"/**".repeat(40)}/c`]), "GET", path)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
