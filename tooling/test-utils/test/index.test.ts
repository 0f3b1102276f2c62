import * as testUtils from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("@bottle/test-utils", () => {
  it("exports the public API by its package name", () => {
    expect(Object.keys(testUtils).sort()).toEqual([
      "FIXTURE_APP_ID",
      "GITHUB_APP_ROUTE_YAML",
      "RESTRICTED_ROUTES_YAML",
      "commitFiles",
      "createBareRepo",
      "createBaseEnv",
      "createDeferred",
      "createGitEnv",
      "createWorkRepo",
      "expectErrorTable",
      "expectErrorTableDocumented",
      "expectNoCanary",
      "generateSshKey",
      "git",
      "gitSshCommand",
      "importedModules",
      "makeCanary",
      "manifestYaml",
      "packageClientEnv",
      "readErrorTable",
      "readTree",
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
      "streamedEventTypes",
      "testdir",
      "writeFiles",
    ]);
  });
});
