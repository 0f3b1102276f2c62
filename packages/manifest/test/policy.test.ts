import {
  checkHttpUrl,
  HOP_BY_HOP_HEADERS,
  isCredentialHeader,
  isCredentialValue,
  isLoopbackHost,
  MAX_CREDENTIAL_CHARS,
} from "@bottle/manifest/policy";
import { describe, expect, it } from "vitest";

describe("@bottle/manifest/policy", () => {
  it.each([
    ["https://api.example", undefined],
    ["https://api.example/v1/", undefined],
    ["http://127.0.0.1:8080/x", undefined],
    ["http://[::1]:8080", undefined],
    ["http://api.example", "to use https:// (http:// is accepted for loopback hosts only)"],
    ["https://bücher.example", "to have no spaces, backslashes, control or non-ASCII characters"],
    ["https://a.example/x y", "to have no spaces, backslashes, control or non-ASCII characters"],
    ["https://a.example\\x", "to have no spaces, backslashes, control or non-ASCII characters"],
    ["https://u:p@a.example", expect.stringContaining("no user name or password")],
    ["https://a.example/?q=1", "to have no query string"],
    ["https://a.example/#f", "to have no fragment"],
    ["https://a.example/a/../b", expect.stringContaining("plain path")],
    ["https://a.example/%2e%2e/b", expect.stringContaining("plain path")],
    ["ftp://a.example", "to use https://"],
  ])("checkHttpUrl(%s)", (url, problem) => {
    expect(checkHttpUrl(url)).toEqual(problem);
  });

  it("knows loopback hosts only", () => {
    for (const host of ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"])
      expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["128.0.0.1", "0.0.0.0", "10.0.0.1", "example.com", "localhost.example"])
      expect(isLoopbackHost(host), host).toBe(false);
  });

  it("refuses protocol, forwarding and cookie headers as credential carriers", () => {
    for (const name of [...HOP_BY_HOP_HEADERS, "Host", "Cookie", "Forwarded", "X-Forwarded-Host"])
      expect(isCredentialHeader(name), name).toBe(false);
    for (const name of ["x-api-key", "Private-Token", "Authorization", "X-Auth"])
      expect(isCredentialHeader(name), name).toBe(true);
  });

  it("takes credential values of 1 to 8 KiB printable ASCII without whitespace", () => {
    expect(MAX_CREDENTIAL_CHARS).toBe(8192);
    expect(isCredentialValue("ghp_x")).toBe(true);
    expect(isCredentialValue("a".repeat(8192))).toBe(true);
    for (const bad of ["", "a".repeat(8193), "a b", "a\r\nb", "tök", undefined, 5])
      expect(isCredentialValue(bad), String(bad)).toBe(false);
  });
});
