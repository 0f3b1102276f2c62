import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { codes, MANIFEST_ERRORS, ManifestError, type ManifestErrorCode } from "@bottle/manifest";
import { expectErrorTable } from "@bottle/test-utils";
import { expect, it } from "vitest";

const make = (code: ManifestErrorCode) => new ManifestError([{ code, path: "", message: "x" }]);
const check = { table: MANIFEST_ERRORS, codes, ErrorClass: ManifestError, isBottleError, make };

it("documents every code, and ManifestError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));

it("lists every issue in the message, with its position", () => {
  const error = new ManifestError(
    [{ code: "BTL_MANIFEST_INVALID", path: "name", message: "bad", line: 2, column: 7 }],
    "b.yaml",
    { cause: new Error("inner") },
  );
  expect(JSON.parse(JSON.stringify(error))).toEqual({
    code: "BTL_MANIFEST_INVALID",
    message: "b.yaml:2:7: name: bad",
  });
});
