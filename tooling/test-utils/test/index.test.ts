import * as testUtils from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

describe("@bottle/test-utils", () => {
  it("exports the public API by its package name", () => {
    expect(Object.keys(testUtils).sort()).toEqual([
      "commitFiles",
      "createBareRepo",
      "createBaseEnv",
      "createGitEnv",
      "createWorkRepo",
      "expectErrorTableDocumented",
      "expectNoCanary",
      "git",
      "makeCanary",
      "readErrorTable",
      "runProcess",
      "startProcess",
      "startUpstream",
      "testdir",
      "writeFiles",
    ]);
  });
});
