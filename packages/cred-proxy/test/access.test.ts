import { describe, expect, it } from "vitest";
import { isGitPush } from "../src/access.ts";

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
