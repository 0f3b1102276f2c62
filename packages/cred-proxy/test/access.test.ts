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
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls", true],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls/", true],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls/12/comments", true],
    ["/repos/acme/*/pulls", "/repos/acme/api/pulls/", true],
    ["/**", "/", true],
    ["/**", "/anything/at/all", true],
    ["/**/comments", "/repos/acme/api/issues/1/comments", true],
    ["/**/comments", "/comments", true],
    ["/*/**/*", "/a/b", true],
    ["/@acme%2fpkg", "/@acme%2fpkg", true],
    ["/**/**/**/x", "/a/b/c/x", true],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/contents/README.md", false],
    ["/repos/acme/*/pulls/**", "/repos/acme/pulls", false],
    ["/repos/acme/*/pulls/**", "/repos/acme/a/b/pulls", false],
    ["/repos/acme/*/pulls/**", "/repos/other/api/pulls", false],
    ["/repos/acme/*/pulls/**", "/repos/ACME/api/pulls", false],
    ["/repos/acme/*/pulls/**", "/repos/%61cme/api/pulls", false],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pullsx", false],
    ["/repos/acme/*", "/repos/acme/", false],
    ["/user", "/user/keys", false],
    ["/user", "/", false],
    ["/*/**/*", "/a", false],
  ])("%s matches %s: %s", (pattern, path, matches) => {
    expect(isAllowed(glob([pattern]), "GET", path)).toBe(matches);
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
