import { describe, expect, it } from "vitest";
import { isAllowed, isGitPush } from "../src/access.ts";

describe("isGitPush", () => {
  it.each([
    ["/acme/api.git/git-receive-pack", undefined],
    ["/acme/api/git-receive-pack/", undefined],
    ["/acme/api.git/GIT-RECEIVE-PACK", undefined],
    ["/acme/api.git/git%2Dreceive-pack", undefined],
    ["/acme/api.git/git%252dreceive%252Dpack", undefined],
    ["/acme/api.git/%67it-receive-pack", undefined],
    ["/acme/api.git/git-receive-pack;v=1", undefined],
    ["/acme/api.git/info/refs", "service=git-receive-pack"],
    ["/acme/api.git/info/refs", "x=1&service=git-receive-pack"],
    ["/acme/api.git/info/refs", "x=1;service=git-receive-pack"],
    ["/acme/api.git/info/refs", "SERVICE=Git-Receive-Pack"],
    ["/acme/api.git/info/refs", "%73ervice=git%2dreceive%2dpack"],
    ["/acme/api.git/info/refs", "service=git+receive-pack"],
    ["/acme/api.git/info/refs", "service+=git-receive-pack"],
    ["/acme/api.git/info/refs", "service=git-upload-pack&service=git-receive-pack"],
    ["/acme/api.git/info/refs/", "service=receive-pack"],
    ["/anything", "service=git-receive-pack"],
  ])("refuses %s?%s as a push", (path, query) => {
    expect(isGitPush(path, query)).toBe(true);
  });

  it.each([
    ["/acme/api.git/info/refs", "service=git-upload-pack"],
    ["/acme/api.git/git-upload-pack", undefined],
    ["/acme/api.git/info/refs", undefined],
    ["/repos/acme/api/contents/git-receive-pack.md", undefined],
    ["/git-receive-pack/objects", undefined],
    ["/search/code", "q=git-receive-pack"],
    ["/", undefined],
  ])("lets %s?%s pass as no push", (path, query) => {
    expect(isGitPush(path, query)).toBe(false);
  });
});

describe("isAllowed", () => {
  const glob = (paths: string[], methods: Array<"GET" | "HEAD" | "POST" | "PUT"> = ["GET"]) => [
    { methods, paths },
  ];

  it.each([
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls/"],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pulls/12/comments"],
    ["/repos/acme/*/pulls", "/repos/acme/api/pulls/"],
    ["/**", "/"],
    ["/**", "/anything/at/all"],
    ["/**/comments", "/repos/acme/api/issues/1/comments"],
    ["/**/comments", "/comments"],
    ["/*/**/*", "/a/b"],
    ["/@acme%2fpkg", "/@acme%2fpkg"],
    ["/**/**/**/x", "/a/b/c/x"],
  ])("%s matches %s", (pattern, path) => {
    expect(isAllowed(glob([pattern]), "GET", path)).toBe(true);
  });

  it.each([
    ["/repos/acme/*/pulls/**", "/repos/acme/api/contents/README.md"],
    ["/repos/acme/*/pulls/**", "/repos/acme/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/acme/a/b/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/other/api/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/ACME/api/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/%61cme/api/pulls"],
    ["/repos/acme/*/pulls/**", "/repos/acme/api/pullsx"],
    ["/repos/acme/*", "/repos/acme/"],
    ["/user", "/user/keys"],
    ["/user", "/"],
    ["/*/**/*", "/a"],
  ])("%s does not match %s", (pattern, path) => {
    expect(isAllowed(glob([pattern]), "GET", path)).toBe(false);
  });

  it("needs the method and a path of the same rule", () => {
    const rules = [
      { methods: ["GET", "HEAD"] as const, paths: ["/repos/**"] },
      { methods: ["POST"] as const, paths: ["/graphql"] },
    ];
    expect(isAllowed(rules, "GET", "/repos/a")).toBe(true);
    expect(isAllowed(rules, "HEAD", "/repos/a")).toBe(true);
    expect(isAllowed(rules, "POST", "/graphql")).toBe(true);
    expect(isAllowed(rules, "POST", "/repos/a")).toBe(false);
    expect(isAllowed(rules, "GET", "/graphql")).toBe(false);
    expect(isAllowed(rules, "get", "/repos/a")).toBe(false);
    expect(isAllowed(rules, "PUT", "/repos/a")).toBe(false);
  });

  it("stays linear with many ** against a long path", () => {
    const path = `/${Array.from({ length: 4000 }, () => "a").join("/")}/b`;
    const started = performance.now();
    expect(isAllowed(glob([`${"/**".repeat(40)}/c`]), "GET", path)).toBe(false);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
