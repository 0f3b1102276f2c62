import { join } from "node:path";
import {
  CREDENTIAL_SHAPE,
  checkHttpUrl,
  dottedPath,
  FORBIDDEN_CREDENTIAL_HEADERS,
  formatIssues,
  HEADER_NAME,
  HOP_BY_HOP_HEADERS,
  isCredentialHeader,
  isCredentialValue,
  isLoopbackHost,
  MAX_CREDENTIAL_CHARS,
} from "@bottle/manifest/policy";
import { importedModules } from "@bottle/test-utils";
import * as v from "valibot";
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

describe("@bottle/manifest/policy, rule by rule", () => {
  // One table per rule: the value, then undefined (accepted) or the start of the problem.
  const urls: Array<[string, string | undefined]> = [
    ["https://api.anthropic.com", undefined],
    ["https://ghe.example/api/v3/", undefined],
    ["https://h.example:8443/a_b/c~d/e.f", undefined],
    ["http://127.0.0.1:8080", undefined],
    ["http://127.9.9.9", undefined],
    ["http://localhost:1", undefined],
    ["http://[::1]:1", undefined],
    ["https://xn--bcher-kva.example", undefined],
    ["http://api.example", "to use https:// (http:// is accepted for loopback hosts only)"],
    ["http://10.0.0.1", "to use https://"],
    ["ftp://x.test", "to use https://"],
    ["not a url", "to have no spaces"],
    ["https://bücher.example", "to have no spaces, backslashes, control or non-ASCII"],
    ["https://x.test/caf\u00e9", "to have no spaces, backslashes, control or non-ASCII"],
    ["https://x.test/a\tb", "to have no spaces"],
    ["https://x.test\\evil.test", "to have no spaces, backslashes"],
    ["https://user:hunter2hunter2@x.test", "to carry no user name"],
    ["https://@x.test", "to carry no user name"],
    ["https:x.test", "to be an absolute URL"],
    ["https:///x.test", "to be an absolute URL"],
    ["https://ex%41mple.test", "to be an absolute URL"],
    ["https://x.test/?q=1", "to have no query string"],
    ["https://x.test?q=1", "to have no query string"],
    ["https://x.test/#f", "to have no fragment"],
    ["https://x.test/a/../b", "to have a plain path"],
    ["https://x.test/%2e%2e", "to have a plain path"],
    ["https://x.test/.hidden", "to have a plain path"],
    ["https://x.test/a//b", "to have a plain path"],
    ["https://x.test//", "to have a plain path"],
  ];

  it.each(urls)("checkHttpUrl(%j) → %j", (url, problem) => {
    const found = checkHttpUrl(url);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(new RegExp(`^${problem.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
    // SECURITY: a problem never echoes the value (it may carry a pasted secret).
    if (found !== undefined) expect(found).not.toContain("hunter2");
  });

  it("accepts plain http anywhere only when asked to (the gate's own URL)", () => {
    expect(checkHttpUrl("http://gate:9419", { plainHttp: "anywhere" })).toBeUndefined();
    expect(checkHttpUrl("http://gate:9419")).toMatch(/loopback/);
    expect(checkHttpUrl("http://u@gate:9419", { plainHttp: "anywhere" })).toMatch(/user name/);
    expect(isLoopbackHost("[::1]")).toBe(true);
    expect(isLoopbackHost("127.0.0.1.example")).toBe(false);
  });

  const headers: Array<[string, boolean]> = [
    ["x-api-key", true],
    ["X-Api-Key", true],
    ["authorization", true],
    ["private-token", true],
    ["bad header", false],
    ["", false],
    ["x".repeat(65), false],
    ...FORBIDDEN_CREDENTIAL_HEADERS.map((name): [string, boolean] => [name, false]),
    ["Cookie", false],
    ["Transfer-Encoding", false],
    ["X-Forwarded-For", false],
    ["x-forwarded-host", false],
  ];

  it.each(headers)("a credential header %j is accepted: %s", (name, accepted) => {
    expect(HEADER_NAME.test(name) && isCredentialHeader(name)).toBe(accepted);
  });

  it("refuses every hop-by-hop header as a credential header", () => {
    for (const name of HOP_BY_HOP_HEADERS) expect(FORBIDDEN_CREDENTIAL_HEADERS).toContain(name);
  });

  const values: Array<[string, unknown, boolean]> = [
    ["a token", "ghs_0123456789abcdef", true],
    ["one character", "x", true],
    [`${MAX_CREDENTIAL_CHARS} characters`, "x".repeat(MAX_CREDENTIAL_CHARS), true],
    ["one character more", "x".repeat(MAX_CREDENTIAL_CHARS + 1), false],
    ["an empty string", "", false],
    ["a space", "abc def", false],
    ["a newline", "abc\n", false],
    ["a NUL", "abc\u0000", false],
    ["non-ASCII", "abc\u00e9def", false],
    ["a number", 42, false],
    ["undefined", undefined, false],
  ];

  it.each(values)("isCredentialValue(%s) → %s", (_what, value, accepted) => {
    expect(isCredentialValue(value)).toBe(accepted);
  });

  it("describes the credential shape with its one limit", () => {
    expect(CREDENTIAL_SHAPE).toBe("1 to 8192 printable ASCII characters without whitespace");
  });

  it("formats schema issues as `path: message`, `[i]` for indices", () => {
    const schema = v.strictObject({
      routes: v.array(v.strictObject({ path: v.pipe(v.string(), v.minLength(2, "too short")) })),
    });
    const result = v.safeParse(
      schema,
      { routes: [{ path: "/x" }, { path: "" }, {}], extra: 1 },
      { abortEarly: false },
    );
    expect(result.success).toBe(false);
    expect(formatIssues(result.issues ?? [])).toBe(
      "routes[1].path: too short; routes[2].path: is required; extra: is not a known key",
    );
    expect(formatIssues(result.issues ?? [], { max: 1 })).toBe(
      "routes[1].path: too short; and 2 more",
    );
    expect(formatIssues(v.safeParse(v.string(), 1).issues ?? [])).toBe("(root): Expected string");
    const pasted = v.safeParse(v.object({ key: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) }), {
      key: "btk_hunter2hunter2",
    });
    expect(formatIssues(pasted.issues ?? [])).toBe("key: Expected /^[0-9a-f]{64}$/");
    expect(dottedPath(["git_gate", "repos", "api", "url"])).toBe("git_gate.repos.api.url");
  });

  it("loads neither valibot nor the YAML parser nor ssh2", async () => {
    const loaded = await importedModules(
      "@bottle/manifest/policy",
      join(import.meta.dirname, ".."),
    );
    expect(loaded.some((url) => url.endsWith("/dist/policy.js"))).toBe(true);
    expect(loaded.filter((url) => /valibot|\/yaml\/|ssh2|schema/.test(url))).toEqual([]);
  });
});
