import { join } from "node:path";
import { codes, PROXY_ERRORS, ProxyError } from "@bottle/cred-proxy";
import { isBottleError } from "@bottle/errors";
import { expectErrorTable } from "@bottle/test-utils";
import { it } from "vitest";

const check = { table: PROXY_ERRORS, codes, ErrorClass: ProxyError, isBottleError };

it("documents every code, and ProxyError makes each with its row's status and exit code", () =>
  expectErrorTable(join(import.meta.dirname, "../README.md"), check));
