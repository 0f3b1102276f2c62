import * as testUtils from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("@bottle/test-utils", () => {
  it("exports the public API by its package name", () => {
    expect(Object.keys(testUtils).sort()).toEqual([
      "FIXTURE_APP_ID",
      "commitFiles",
      "createBareRepo",
      "createBaseEnv",
      "createGitEnv",
      "createWorkRepo",
      "expectErrorTableDocumented",
      "expectNoCanary",
      "generateSshKey",
      "git",
      "gitSshCommand",
      "importedModules",
      "makeCanary",
      "readErrorTable",
      "runProcess",
      "serveGitHttp",
      "serveGitHubAppFixture",
      "serveGitHubFake",
      "startAnthropicFake",
      "startGitHubFake",
      "startGiteaFake",
      "startHttpGitUpstream",
      "startProcess",
      "startRegistry",
      "startSshGitServer",
      "startTokmanWithGitHubFake",
      "startUpstream",
      "testdir",
      "writeFiles",
    ]);
  });
});
