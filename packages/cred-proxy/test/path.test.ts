import { describe, expect, it } from "vitest";
import { checkTarget, staysOnOrigin, upstreamPath } from "../src/path.ts";
import { parseRoutes } from "../src/routes.ts";
import { route } from "./fixture.ts";

const [anthropic, ghe] = parseRoutes({
  version: 1,
  routes: [
    route("/anthropic/", "https://api.anthropic.com", { header: "x-api-key" }),
    route("/ghe/", "https://ghe.acme.example/api/v3/", { scheme: "token" }, 1),
  ],
});
if (anthropic === undefined || ghe === undefined) throw new Error("routes missing");

describe("checkTarget", () => {
  it.each([
    ["http://evil.test/anthropic/v1", "absolute-form"],
    ["https://api.anthropic.com/anthropic/v1", "absolute-form"],
    ["evil.test:443", "absolute-form"],
    ["*", "absolute-form"],
    ["//evil.test/x", "empty segment"],
    ["/anthropic//evil.test/x", "empty segment"],
    ["/anthropic/v1//messages", "empty segment"],
    ["/anthropic/../gh-api/user", "dot segment"],
    ["/anthropic/./v1", "dot segment"],
    ["/anthropic/..", "dot segment"],
    ["/anthropic/%2e%2e/gh-api/user", "dot segment"],
    ["/anthropic/%2E%2E/gh-api/user", "dot segment"],
    ["/anthropic/.%2e/gh-api/user", "dot segment"],
    ["/anthropic/%2e./gh-api/user", "dot segment"],
    ["/anthropic/%2E./x", "dot segment"],
    ["/anthropic/%2e/v1", "dot segment"],
    ["/anthropic/v1/%2e%2E", "dot segment"],
    ["/anthropic/v1%2fmessages", "encoded slash"],
    ["/anthropic/v1%2Fmessages", "encoded slash"],
    ["/anthropic/%2f%2fevil.test/x", "encoded slash"],
    ["/anthropic/v1%5cx", "encoded slash"],
    ["/anthropic/v1%5C..%5Cx", "encoded slash"],
    ["/npm/@acme%2f..", "encoded slash"],
    ["/npm/@acme%2f%2e%2e", "encoded slash"],
    ["/npm/@%2fx", "encoded slash"],
    ["/npm/acme%2fx", "encoded slash"],
    ["/npm/@acme%2fx%2fy", "encoded slash"],
    ["/npm/@acme%5cx", "encoded slash"],
    ["/anthropic\\..\\gh-api/user", "backslash"],
    ["/anthropic/v1\\x", "backslash"],
    ["/anthropic/v1%00", "encoded control character"],
    ["/anthropic/v1%0d%0aX-Injected:%20a", "encoded control character"],
    ["/anthropic/v1%0A", "encoded control character"],
    ["/anthropic/v1%7f", "encoded control character"],
    ["/anthropic/v1%1F", "encoded control character"],
    ["/anthropic/v1\u0000", "control character"],
    ["/anthropic/v1\r\nX: y", "control character"],
    ["/anthropic/v1 x", "control character"],
    ["/anthropic/v1\tx", "control character"],
    ["/anthropic/v1\u007f", "control character"],
    ["/anthropic/caf\u00e9", "non-ASCII"],
    ["/anthropic/v1\u00ff", "non-ASCII"],
    ["/anthropic/v1?q=\u00e9", "non-ASCII"],
    ["/anthropic/%zz", "malformed escape"],
    ["/anthropic/v1%", "malformed escape"],
    ["/anthropic/v1%2", "malformed escape"],
    ["/anthropic/v1%g0", "malformed escape"],
    ["/anthropic/v1#frag", "fragment"],
    ["/anthropic/v1?x=1#frag", "fragment"],
  ])("refuses %j (%s)", (target, problem) => {
    expect(checkTarget(target)).toEqual({ ok: false, problem });
  });

  it.each([
    ["/anthropic/v1/messages", "/anthropic/v1/messages", undefined],
    ["/anthropic/", "/anthropic/", undefined],
    ["/anthropic/v1/messages?beta=true", "/anthropic/v1/messages", "beta=true"],
    ["/anthropic/v1?", "/anthropic/v1", ""],
    ["/anthropic/v1?a=%2e%2e/../x&b=%zz", "/anthropic/v1", "a=%2e%2e/../x&b=%zz"],
    ["/anthropic/caf%C3%A9", "/anthropic/caf%C3%A9", undefined],
    ["/anthropic/a%2eb/...", "/anthropic/a%2eb/...", undefined],
    ["/anthropic/.well-known/x", "/anthropic/.well-known/x", undefined],
    ["/anthropic/v1/", "/anthropic/v1/", undefined],
    ["/gh-git/acme/api.git/info/refs", "/gh-git/acme/api.git/info/refs", undefined],
    ["/anthropic/a%25b", "/anthropic/a%25b", undefined],
    // npm requests scoped packages as `@scope%2fname` (the one encoded slash that is a name).
    ["/npm/@acme%2fgreet", "/npm/@acme%2fgreet", undefined],
    ["/npm/@acme%2Fgreet/-/greet-1.0.0.tgz", "/npm/@acme%2Fgreet/-/greet-1.0.0.tgz", undefined],
    ["/anthropic/a:b@c;d=e,f+g!h$i'j(k)l*m~", "/anthropic/a:b@c;d=e,f+g!h$i'j(k)l*m~", undefined],
  ])("accepts %j", (target, path, query) => {
    expect(checkTarget(target)).toEqual({ ok: true, path, query });
  });
});

describe("upstreamPath", () => {
  it("concatenates base path, remainder and raw query", () => {
    expect(upstreamPath(anthropic, "/anthropic/v1/messages", "beta=true")).toBe(
      "/v1/messages?beta=true",
    );
    expect(upstreamPath(ghe, "/ghe/repos/acme/api", undefined)).toBe("/api/v3/repos/acme/api");
    expect(upstreamPath(ghe, "/ghe/", "")).toBe("/api/v3/?");
  });

  it("throws when the path is not under the route", () => {
    expect(() => upstreamPath(anthropic, "/gh-api/user", undefined)).toThrow();
  });
});

describe("staysOnOrigin", () => {
  it("accepts paths that keep the configured origin", () => {
    expect(staysOnOrigin(anthropic, "/v1/messages?x=1")).toBe(true);
    expect(staysOnOrigin(ghe, "/api/v3/user")).toBe(true);
  });

  it.each(["//evil.test/x", "@evil.test/x", "evil.test/x", ".evil.test/x", "\\\\evil.test/x"])(
    "refuses %j",
    (path) => {
      expect(staysOnOrigin(anthropic, path)).toBe(false);
    },
  );
});
