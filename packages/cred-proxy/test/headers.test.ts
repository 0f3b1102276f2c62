import { describe, expect, it } from "vitest";
import {
  clientHeaders,
  connectionTokens,
  credentialHeader,
  isClientCredential,
  rewriteLink,
  rewriteLocation,
  upstreamHeaders,
} from "../src/headers.ts";
import { type ProxyRoute, parseRoutes } from "../src/routes.ts";

function makeRoute(auth: unknown, upstream = "https://api.example.test"): ProxyRoute {
  const [parsed] = parseRoutes({
    version: 1,
    routes: [{ path: "/r/", upstream, auth, token_env: "BOTTLE_PROXY_TOKEN_0" }],
  });
  if (parsed === undefined) throw new Error("no route");
  return parsed;
}

const apiKey = makeRoute({ header: "x-api-key" });
const bearer = makeRoute({ scheme: "Bearer" });
const custom = makeRoute({ header: "X-Custom-Token" });

/** Names in a flat header list, lowercased. */
function names(flat: string[]): string[] {
  return flat.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

function valuesOf(flat: string[], name: string): string[] {
  return flat.filter((_, i) => i % 2 === 1 && flat[i - 1]?.toLowerCase() === name);
}

describe("connectionTokens", () => {
  it("splits, trims and lowercases every listed name across repeated headers", () => {
    expect([...connectionTokens(["close, X-Api-Key ,,keep-alive", "Authorization"])]).toEqual([
      "close",
      "x-api-key",
      "keep-alive",
      "authorization",
    ]);
    expect([...connectionTokens([])]).toEqual([]);
    expect([...connectionTokens([" Keep-Alive "])]).toEqual([]);
    expect([...connectionTokens(["keep-alive, x-api-key"])]).toEqual(["keep-alive", "x-api-key"]);
  });
});

describe("isClientCredential", () => {
  it.each([
    "authorization",
    "Authorization",
    "proxy-authorization",
    "Proxy_Authorization",
    "cookie",
    "x-api-key",
    "X-Api-Key",
    "X_Api_Key",
    "x.api.key",
    "xapikey",
    "X-API_KEY",
    "private-token",
  ])("treats %s as a client credential on every route", (name) => {
    expect(isClientCredential(name, bearer.auth)).toBe(true);
    expect(isClientCredential(name, apiKey.auth)).toBe(true);
  });

  it("treats the route's own header, in any spelling, as a client credential", () => {
    expect(isClientCredential("x-custom-token", custom.auth)).toBe(true);
    expect(isClientCredential("X_Custom.Token", custom.auth)).toBe(true);
    expect(isClientCredential("x-custom-token", bearer.auth)).toBe(false);
  });

  it.each(["accept", "content-type", "x-api-version", "anthropic-version", "git-protocol"])(
    "keeps %s",
    (name) => {
      expect(isClientCredential(name, apiKey.auth)).toBe(false);
    },
  );
});

describe("credentialHeader", () => {
  it("builds each auth style", () => {
    expect(credentialHeader({ scheme: "Bearer" }, "t0k")).toEqual(["authorization", "Bearer t0k"]);
    expect(credentialHeader({ scheme: "token" }, "t0k")).toEqual(["authorization", "token t0k"]);
    expect(credentialHeader({ scheme: "Basic", username: "x-access-token" }, "t0k")).toEqual([
      "authorization",
      `Basic ${Buffer.from("x-access-token:t0k").toString("base64")}`,
    ]);
    expect(credentialHeader({ header: "x-api-key" }, "t0k")).toEqual(["x-api-key", "t0k"]);
  });
});

describe("upstreamHeaders", () => {
  const client = [
    "Host",
    "evil.test",
    "Connection",
    "keep-alive, X-Api-Key, X-Drop-Me",
    "Keep-Alive",
    "timeout=5",
    "Proxy-Connection",
    "keep-alive",
    "Proxy-Authorization",
    "Basic eDp5",
    "Proxy-Authenticate",
    "Basic",
    "TE",
    "trailers",
    "Trailer",
    "x-checksum",
    "Transfer-Encoding",
    "chunked",
    "Upgrade",
    "websocket",
    "Authorization",
    "Bearer evil",
    "authorization",
    "Bearer evil2",
    "x-api-key",
    "evil",
    "X_Api_Key",
    "evil",
    "x.api.key",
    "evil",
    "Cookie",
    "session=evil",
    "X-Drop-Me",
    "1",
    "X-Forwarded-For",
    "10.0.0.1",
    "X-Forwarded-Host",
    "evil.test",
    "Forwarded",
    "for=10.0.0.1",
    "X-Real-IP",
    "10.0.0.1",
    "Expect",
    "100-continue",
    "Content-Type",
    "application/json",
    "Content-Encoding",
    "gzip",
    "Content-Length",
    "10",
    "Accept-Encoding",
    "gzip, br",
    "Git-Protocol",
    "version=2",
    "User-Agent",
    "git/2.45",
    "Anthropic-Version",
    "2023-06-01",
  ];

  it("strips hop-by-hop, Connection-listed and credential headers, then injects the route's", () => {
    const out = upstreamHeaders(client, apiKey, "t0k");
    expect(names(out)).toEqual([
      "content-type",
      "content-encoding",
      "content-length",
      "accept-encoding",
      "git-protocol",
      "user-agent",
      "anthropic-version",
      "host",
      "x-api-key",
    ]);
    expect(valuesOf(out, "x-api-key")).toEqual(["t0k"]);
    expect(valuesOf(out, "host")).toEqual(["api.example.test"]);
  });

  it("sets Authorization exactly once for scheme routes (overwrite, never append)", () => {
    const out = upstreamHeaders(client, bearer, "t0k");
    expect(valuesOf(out, "authorization")).toEqual(["Bearer t0k"]);
    expect(names(out).filter((n) => n === "x-api-key")).toEqual([]);
  });

  it("keeps the injected credential when Connection names it", () => {
    const out = upstreamHeaders(
      ["Connection", "authorization, x-api-key, host", "Authorization", "Bearer evil"],
      bearer,
      "t0k",
    );
    expect(out).toEqual(["host", "api.example.test", "authorization", "Bearer t0k"]);
  });

  it("sets Host from the route, with a non-default port", () => {
    const local = makeRoute({ scheme: "token" }, "http://127.0.0.1:8080/base/");
    expect(upstreamHeaders(["Host", "evil.test"], local, "t")).toEqual([
      "host",
      "127.0.0.1:8080",
      "authorization",
      "token t",
    ]);
  });
});

describe("clientHeaders", () => {
  it("strips hop-by-hop, Connection-listed headers and Set-Cookie", () => {
    const out = clientHeaders(
      {
        connection: "keep-alive, x-hop",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        trailer: "x-checksum",
        "proxy-authenticate": "Basic",
        upgrade: "h2c",
        "x-hop": "1",
        "set-cookie": ["a=1", "b=2"],
        "content-type": "text/event-stream",
        "content-encoding": "gzip",
        "content-length": "12",
        "x-ratelimit-remaining": "42",
        vary: undefined,
      },
      bearer,
    );
    expect({ ...out }).toEqual({
      "content-type": "text/event-stream",
      "content-encoding": "gzip",
      "content-length": "12",
      "x-ratelimit-remaining": "42",
    });
  });
});

describe("rewriteLocation", () => {
  const ghe = makeRoute({ scheme: "token" }, "https://ghe.acme.example/api/v3");

  it.each([
    ["https://api.example.test/next?page=2", "/r/next?page=2"],
    ["https://api.example.test", "/r/"],
    ["https://API.example.test:443/a#f", "/r/a#f"],
    ["/login/oauth", "/r/login/oauth"],
    ["//api.example.test/x", "/r/x"],
  ])("maps %s onto the route prefix", (location, expected) => {
    expect(rewriteLocation(location, bearer)).toBe(expected);
  });

  it.each([
    "https://evil.test/steal",
    "http://api.example.test/downgrade",
    "https://api.example.test:8443/other-port",
    "//evil.test/x",
    "https://codeload.github.com/acme/api/tar.gz/main",
    "next?page=2",
    "?page=2",
    "not a url at all",
  ])("passes %s through untouched", (location) => {
    expect(rewriteLocation(location, bearer)).toBe(location);
  });

  it("rewrites only under the base path", () => {
    expect(rewriteLocation("https://ghe.acme.example/api/v3/repos/a/b", ghe)).toBe("/r/repos/a/b");
    expect(rewriteLocation("/api/v3", ghe)).toBe("/r/");
    expect(rewriteLocation("https://ghe.acme.example/login", ghe)).toBe(
      "https://ghe.acme.example/login",
    );
    expect(rewriteLocation("/api/v3x/y", ghe)).toBe("/api/v3x/y");
  });
});

describe("rewriteLink", () => {
  it("maps Link URLs into the route's upstream onto the proxy, and leaves others alone", () => {
    const link = [
      `<${bearer.origin}/organizations/1/repos?page=2>; rel="next"`,
      `<${bearer.origin}/organizations/1/repos?page=5>; rel="last"`,
      '<https://evil.test/x>; rel="help"',
      "</relative?page=3>; rel=prev",
    ].join(", ");
    const out = clientHeaders({ link }, bearer, "http://127.0.0.1:9420").link as string[];
    expect(out).toEqual([
      [
        `<http://127.0.0.1:9420${bearer.path}organizations/1/repos?page=2>; rel="next"`,
        `<http://127.0.0.1:9420${bearer.path}organizations/1/repos?page=5>; rel="last"`,
        '<https://evil.test/x>; rel="help"',
        "</relative?page=3>; rel=prev",
      ].join(", "),
    ]);
    expect(rewriteLink("<https://evil.test/x>", bearer, "http://p")).toBe("<https://evil.test/x>");
    // Without a usable Host, Link passes untouched.
    expect(clientHeaders({ link }, bearer).link).toBe(link);
  });
});
