import { createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { request } from "@octokit/request";
import githubAppJwt from "universal-github-app-jwt";
import { describe, expect, it } from "vitest";
import { type GitHubFake, type GitHubFakeOptions, startGitHubFake } from "../src/index.ts";

const T0 = Date.parse("2026-12-01T10:00:00.000Z");
const APP_ID = 1001;
const OTHER_APP_ID = 1002;
const CLIENT_ID = "Iv23liAcmeBottle01";

function rsaKeys(): { publicKey: string; privateKey: string } {
  return generateKeyPairSync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
}

const appKeys = rsaKeys();
const otherAppKeys = rsaKeys();
const strangerKeys = rsaKeys();

async function setup(overrides: Partial<GitHubFakeOptions> = {}): Promise<GitHubFake> {
  return startGitHubFake({
    apps: [
      { id: APP_ID, clientId: CLIENT_ID, publicKey: appKeys.publicKey },
      { id: OTHER_APP_ID, publicKey: otherAppKeys.publicKey },
    ],
    installations: [
      {
        id: 42,
        appId: APP_ID,
        account: { login: "acme", type: "Organization", id: 9001 },
        repositories: [
          { id: 501, name: "infra" },
          { id: 502, name: "web" },
        ],
        permissions: { contents: "write", metadata: "read", pull_requests: "read" },
      },
      {
        id: 43,
        appId: APP_ID,
        account: { login: "octo", type: "User" },
        repositories: [{ id: 601, name: "dotfiles" }],
        permissions: { contents: "read", metadata: "read" },
      },
      {
        id: 44,
        appId: APP_ID,
        account: { login: "frozen", type: "Organization" },
        repositories: [{ id: 701, name: "ice" }],
        permissions: { contents: "read" },
        suspended: true,
      },
      {
        id: 50,
        appId: OTHER_APP_ID,
        account: { login: "other", type: "Organization" },
        repositories: [{ id: 801, name: "elsewhere" }],
        permissions: { contents: "read" },
      },
    ],
    now: () => new Date(T0),
    ...overrides,
  });
}

/** A JWT from the real signing library, dated by the fake's clock unless `now` is given. */
async function appJwt(
  fake: GitHubFake,
  options: { id?: number | string; privateKey?: string; now?: number } = {},
): Promise<string> {
  const { token } = await githubAppJwt({
    id: options.id ?? APP_ID,
    privateKey: options.privateKey ?? appKeys.privateKey,
    now: options.now ?? Math.floor(fake.now().getTime() / 1000),
  });
  return token;
}

/** A hand-made JWT, for claims and algorithms the library refuses to produce. */
function craftJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer: (input: string) => string,
): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${encode(header)}.${encode(claims)}`;
  return `${input}.${signer(input)}`;
}

const rs256 = (privateKey: string | KeyObject) => (input: string) =>
  sign("sha256", Buffer.from(input), privateKey).toString("base64url");

function api(fake: GitHubFake, authorization?: string) {
  return request.defaults({
    baseUrl: fake.url,
    headers: authorization === undefined ? {} : { authorization },
  });
}

interface Refusal {
  status: number;
  data: { message?: string; documentation_url?: string; status?: string };
  headers: Record<string, string | undefined>;
}

/** The status, body and headers of a request @octokit/request rejected. */
async function refused(pending: Promise<unknown>): Promise<Refusal> {
  try {
    await pending;
  } catch (error) {
    const failure = error as { status: number; response?: Omit<Refusal, "status"> };
    return {
      status: failure.status,
      data: failure.response?.data ?? {},
      headers: failure.response?.headers ?? {},
    };
  }
  return expect.fail("Expected the request to be refused");
}

async function mint(
  fake: GitHubFake,
  installationId: number,
  body: Record<string, unknown> = {},
): Promise<{ token: string; expires_at: string; [key: string]: unknown }> {
  const jwt = await appJwt(fake);
  const { status, data } = await api(fake, `Bearer ${jwt}`)(
    "POST /app/installations/{installation_id}/access_tokens",
    { installation_id: installationId, ...body },
  );
  expect(status).toBe(201);
  return data as { token: string; expires_at: string };
}

describe("startGitHubFake", () => {
  it("answers GET /app and finds installations by repository, organization and user", async () => {
    const fake = await setup();
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    const self = await app("GET /app");
    expect(self.data).toMatchObject({ id: APP_ID, client_id: CLIENT_ID, installations_count: 3 });

    const byRepo = await app("GET /repos/{owner}/{repo}/installation", {
      owner: "acme",
      repo: "infra",
    });
    expect(byRepo.status).toBe(200);
    expect(byRepo.data).toMatchObject({
      id: 42,
      account: { login: "acme", type: "Organization", id: 9001 },
      app_id: APP_ID,
      target_type: "Organization",
      permissions: { contents: "write", metadata: "read", pull_requests: "read" },
      repository_selection: "selected",
      suspended_at: null,
    });
    // Owner and repository names are matched case-insensitively.
    const upper = await app("GET /repos/{owner}/{repo}/installation", {
      owner: "ACME",
      repo: "Web",
    });
    expect(upper.data.id).toBe(42);
    expect((await app("GET /orgs/{org}/installation", { org: "acme" })).data.id).toBe(42);
    const byUser = await app("GET /users/{username}/installation", { username: "octo" });
    expect(byUser.data).toMatchObject({ id: 43, target_type: "User", account: { login: "octo" } });
  });

  it("answers 404 Not Found where this app is not installed", async () => {
    const fake = await setup();
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    const missing = [
      app("GET /repos/{owner}/{repo}/installation", { owner: "acme", repo: "secret" }),
      app("GET /repos/{owner}/{repo}/installation", { owner: "nobody", repo: "infra" }),
      // Installed, but by another app.
      app("GET /repos/{owner}/{repo}/installation", { owner: "other", repo: "elsewhere" }),
      app("GET /orgs/{org}/installation", { org: "octo" }),
      app("GET /users/{username}/installation", { username: "nobody" }),
    ];
    for (const pending of missing) {
      const refusal = await refused(pending);
      expect(refusal.status).toBe(404);
      expect(refusal.data).toMatchObject({ message: "Not Found", status: "404" });
      expect(refusal.data.documentation_url).toMatch(/^https:\/\/docs\.github\.com\//);
    }
  });

  it("mints a ghs_ token that expires one hour after the fake's clock, with GitHub's headers", async () => {
    const fake = await setup();
    const jwt = await appJwt(fake);
    const reply = await api(fake, `Bearer ${jwt}`)(
      "POST /app/installations/{installation_id}/access_tokens",
      { installation_id: 42 },
    );
    expect(reply.status).toBe(201);
    expect(reply.data).toEqual({
      token: expect.stringMatching(/^ghs_[A-Za-z0-9]{36}$/),
      expires_at: "2026-12-01T11:00:00Z",
      permissions: { contents: "write", metadata: "read", pull_requests: "read" },
      repository_selection: "selected",
    });
    expect(reply.headers.date).toBe(new Date(T0).toUTCString());
    expect(reply.headers["x-github-request-id"]).toMatch(/^[0-9A-F]+(:[0-9A-F]+){4}$/);
    expect(reply.headers["x-ratelimit-limit"]).toBe("5000");
    expect(reply.headers["x-ratelimit-remaining"]).toBe("4999");
    expect(reply.headers["x-ratelimit-used"]).toBe("1");
    expect(reply.headers["x-ratelimit-reset"]).toBe(String(T0 / 1000 + 3600));
    expect(fake.mints).toBe(1);
    expect(fake.tokens()).toEqual([
      {
        token: reply.data.token,
        appId: APP_ID,
        installationId: 42,
        permissions: { contents: "write", metadata: "read", pull_requests: "read" },
        repositories: "all",
        createdAt: "2026-12-01T10:00:00Z",
        expiresAt: "2026-12-01T11:00:00Z",
        revokedAt: null,
      },
    ]);
    // Unique per mint.
    expect((await mint(fake, 42)).token).not.toBe(reply.data.token);
  });

  it("makes the token length configurable for longer token formats", async () => {
    const fake = await setup({ tokenLength: 520 });
    const { token } = await mint(fake, 42);
    expect(token).toMatch(/^ghs_[A-Za-z0-9]{516}$/);
    const repo = await api(fake, `token ${token}`)("GET /repos/{owner}/{repo}", {
      owner: "acme",
      repo: "infra",
    });
    expect(repo.status).toBe(200);
  });

  it("scopes a token to the repositories it was created for", async () => {
    const fake = await setup();
    const scoped = await mint(fake, 42, {
      repositories: ["infra"],
      permissions: { contents: "read" },
    });
    expect(scoped).toMatchObject({
      permissions: { contents: "read" },
      repository_selection: "selected",
      repositories: [{ id: 501, name: "infra", full_name: "acme/infra" }],
    });
    const asScoped = api(fake, `token ${scoped.token}`);
    const infra = await asScoped("GET /repos/{owner}/{repo}", { owner: "acme", repo: "infra" });
    expect(infra.data).toMatchObject({ id: 501, name: "infra", full_name: "acme/infra" });
    for (const [owner, repo] of [
      ["acme", "web"],
      ["octo", "dotfiles"],
      ["other", "elsewhere"],
    ] as const) {
      expect((await refused(asScoped("GET /repos/{owner}/{repo}", { owner, repo }))).status).toBe(
        404,
      );
    }

    // By id, with the Bearer scheme.
    const byId = await mint(fake, 42, { repository_ids: [502] });
    const web = await api(fake, `Bearer ${byId.token}`)("GET /repos/{owner}/{repo}", {
      owner: "acme",
      repo: "web",
    });
    expect(web.data.full_name).toBe("acme/web");

    // Without a list the token covers every repository of the installation.
    const all = api(fake, `token ${(await mint(fake, 42)).token}`);
    for (const repo of ["infra", "web"]) {
      expect((await all("GET /repos/{owner}/{repo}", { owner: "acme", repo })).status).toBe(200);
    }
    expect(fake.tokens().map((t) => t.repositories)).toEqual([
      [{ id: 501, name: "infra" }],
      [{ id: 502, name: "web" }],
      "all",
    ]);
    // Without credentials the private repository is invisible.
    expect((await refused(api(fake)("GET /repos/acme/infra"))).status).toBe(404);
  });

  it("answers 422 for repositories and permissions outside the installation", async () => {
    const fake = await setup();
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ repositories: ["secret"] }, "There is at least one repository that does not exist"],
      [{ repositories: ["dotfiles"] }, "There is at least one repository that does not exist"],
      [{ repository_ids: [801] }, "There is at least one repository that does not exist"],
      [{ permissions: { administration: "read" } }, "The permissions requested are not granted"],
      [{ permissions: { contents: "admin" } }, "The permissions requested are not granted"],
      [{ permissions: { pull_requests: "write" } }, "The permissions requested are not granted"],
      [{ repository_ids: Array.from({ length: 501 }, () => 501) }, "at most 500"],
    ];
    for (const [body, message] of cases) {
      const refusal = await refused(
        app("POST /app/installations/{installation_id}/access_tokens", {
          installation_id: 42,
          ...body,
        }),
      );
      expect(refusal.status, JSON.stringify(body).slice(0, 80)).toBe(422);
      expect(refusal.data.message).toContain(message);
    }
    expect(fake.mints).toBe(0);
    expect(fake.tokens()).toEqual([]);
  });

  it("answers 403 for a suspended installation and 404 for another app's", async () => {
    const fake = await setup();
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    const create = "POST /app/installations/{installation_id}/access_tokens";
    const suspended = await refused(app(create, { installation_id: 44 }));
    expect(suspended.status).toBe(403);
    expect(suspended.data.message).toBe("This installation has been suspended");
    // A suspended installation is still found, with its suspension time.
    const found = await app("GET /orgs/{org}/installation", { org: "frozen" });
    expect(found.data.suspended_at).toBe("2026-12-01T10:00:00Z");
    expect((await refused(app(create, { installation_id: 50 }))).status).toBe(404);
    expect((await refused(app(create, { installation_id: 999 }))).status).toBe(404);

    // Suspending later stops the tokens already minted.
    const { token } = await mint(fake, 42);
    fake.suspend(42);
    const refusal = await refused(api(fake, `token ${token}`)("GET /repos/acme/infra"));
    expect(refusal.status).toBe(403);
    fake.suspend(42, false);
    expect((await api(fake, `token ${token}`)("GET /repos/acme/infra")).status).toBe(200);
  });

  it("refuses bad JWTs with 401 and GitHub's messages", async () => {
    const fake = await setup();
    const now = Math.floor(fake.now().getTime() / 1000);
    const claims = { iat: now - 60, exp: now + 540, iss: APP_ID };
    const cases: Array<[string, string]> = [
      [await appJwt(fake, { privateKey: strangerKeys.privateKey }), "could not be decoded"],
      // Another app's id with this app's key.
      [await appJwt(fake, { id: OTHER_APP_ID }), "could not be decoded"],
      [await appJwt(fake, { id: 4242 }), "could not be decoded"],
      [await appJwt(fake, { id: "Iv1.not-a-client" }), "('iss') must be an Integer"],
      [
        craftJwt({ alg: "RS256" }, { iat: now - 60, exp: now + 540 }, rs256(appKeys.privateKey)),
        "Missing 'issuer'",
      ],
      // HS256 keyed with the public key (the classic algorithm confusion) and `none`.
      [
        craftJwt({ alg: "HS256", typ: "JWT" }, claims, (input) =>
          createHmac("sha256", appKeys.publicKey).update(input).digest("base64url"),
        ),
        "could not be decoded",
      ],
      [craftJwt({ alg: "none", typ: "JWT" }, claims, () => ""), "could not be decoded"],
      [
        `${craftJwt({ alg: "RS256" }, claims, rs256(appKeys.privateKey)).slice(0, -4)}AAAA`,
        "could not be decoded",
      ],
      ["not.a.jwt", "could not be decoded"],
      // Expired: signed 20 minutes before the fake's now.
      [
        await appJwt(fake, { now: now - 20 * 60 }),
        "'Expiration time' claim ('exp') must be a numeric value",
      ],
      [
        craftJwt({ alg: "RS256" }, { ...claims, exp: now + 3600 }, rs256(appKeys.privateKey)),
        "'Expiration time' claim ('exp') is too far in the future",
      ],
      [
        craftJwt(
          { alg: "RS256" },
          { ...claims, iat: now - 1200, exp: now + 60 },
          rs256(appKeys.privateKey),
        ),
        "'Expiration time' claim ('exp') is too far in the future",
      ],
      [
        craftJwt(
          { alg: "RS256" },
          { ...claims, iat: now + 300, exp: now + 500 },
          rs256(appKeys.privateKey),
        ),
        "'Issued at' claim ('iat') must be an Integer",
      ],
    ];
    for (const [jwt, message] of cases) {
      const refusal = await refused(api(fake, `Bearer ${jwt}`)("GET /app"));
      expect(refusal.status, message).toBe(401);
      expect(refusal.data.message).toContain(message);
      expect(refusal.data.status).toBe("401");
    }
    // No credentials, or the JWT with the `token` scheme.
    expect((await refused(api(fake)("GET /app"))).status).toBe(401);
    expect((await refused(api(fake, `token ${await appJwt(fake)}`)("GET /app"))).status).toBe(401);

    // The app id as a string and the client id are both accepted as `iss`.
    for (const id of [String(APP_ID), CLIENT_ID]) {
      const jwt = await appJwt(fake, { id });
      expect((await api(fake, `Bearer ${jwt}`)("GET /app")).data?.id).toBe(APP_ID);
    }
    expect(fake.mints).toBe(0);
  });

  it("works with the library's default clock when the fake runs on real time", async () => {
    const fake = await setup({ now: () => new Date() });
    const { token } = await githubAppJwt({ id: APP_ID, privateKey: appKeys.privateKey });
    const reply = await api(fake, `Bearer ${token}`)("GET /app");
    expect(reply.status).toBe(200);
    expect(Math.abs(Date.parse(reply.headers.date ?? "") - Date.now())).toBeLessThan(5_000);
  });

  it("sends its clock in `date` so a client can correct skew before signing", async () => {
    const fake = await setup({ now: () => new Date(), skewMs: 20 * 60 * 1000 });
    // Signed by the host's clock, the JWT has expired by the fake's.
    const stale = await githubAppJwt({ id: APP_ID, privateKey: appKeys.privateKey });
    const refusal = await refused(api(fake, `Bearer ${stale.token}`)("GET /app"));
    expect(refusal.status).toBe(401);
    expect(refusal.data.message).toContain("'Expiration time' claim ('exp') must be");
    const serverNow = Date.parse(refusal.headers.date ?? "");
    expect(serverNow - Date.now()).toBeGreaterThan(19 * 60 * 1000);
    const corrected = await githubAppJwt({
      id: APP_ID,
      privateKey: appKeys.privateKey,
      now: Math.floor(serverNow / 1000),
    });
    expect((await api(fake, `Bearer ${corrected.token}`)("GET /app")).status).toBe(200);
  });

  it("expires tokens by the fake's clock", async () => {
    const fake = await setup();
    const { token } = await mint(fake, 42);
    const asToken = api(fake, `token ${token}`);
    fake.advance(59 * 60 * 1000);
    expect((await asToken("GET /repos/acme/infra")).status).toBe(200);
    fake.setClock(new Date(T0 + 60 * 60 * 1000));
    const refusal = await refused(asToken("GET /repos/acme/infra"));
    expect(refusal.status).toBe(401);
    expect(refusal.data.message).toBe("Bad credentials");
  });

  it("revokes a token: 204, then 401 Bad credentials", async () => {
    const fake = await setup();
    const { token } = await mint(fake, 42);
    const asToken = api(fake, `token ${token}`);
    const revoke = await asToken("DELETE /installation/token");
    expect(revoke.status).toBe(204);
    expect(fake.revoked).toEqual([token]);
    expect(fake.tokens()[0]?.revokedAt).toBe("2026-12-01T10:00:00Z");
    for (const pending of [
      asToken("GET /repos/acme/infra"),
      asToken("DELETE /installation/token"),
    ]) {
      const refusal = await refused(pending);
      expect(refusal.status).toBe(401);
      expect(refusal.data.message).toBe("Bad credentials");
    }
    const unknown = await refused(
      api(fake, `token ghs_${"x".repeat(36)}`)("DELETE /installation/token"),
    );
    expect(unknown.status).toBe(401);
  });

  it("counts the rate limit per installation and answers 403 with the reset once it is spent", async () => {
    const fake = await setup();
    const { token } = await mint(fake, 42);
    const asToken = api(fake, `token ${token}`);
    const first = await asToken("GET /repos/acme/infra");
    expect(first.headers["x-ratelimit-remaining"]).toBe("4999");
    const second = await asToken("GET /repos/acme/infra");
    expect(second.headers["x-ratelimit-remaining"]).toBe("4998");
    expect(second.headers["x-ratelimit-used"]).toBe("2");

    const reset = T0 / 1000 + 120;
    fake.rateLimit(0, reset, { installationId: 42 });
    const limited = await refused(asToken("GET /repos/acme/infra"));
    expect(limited.status).toBe(403);
    expect(limited.data.message).toBe("API rate limit exceeded for installation ID 42.");
    expect(limited.headers["x-ratelimit-remaining"]).toBe("0");
    expect(limited.headers["x-ratelimit-reset"]).toBe(String(reset));
    // The app's own bucket is untouched.
    expect((await api(fake, `Bearer ${await appJwt(fake)}`)("GET /app")).status).toBe(200);

    fake.advance(121 * 1000);
    const again = await asToken("GET /repos/acme/infra");
    expect(again.status).toBe(200);
    expect(again.headers["x-ratelimit-remaining"]).toBe("4999");

    fake.rateLimit(0, T0 / 1000 + 3600);
    const app = await refused(api(fake, `Bearer ${await appJwt(fake)}`)("GET /app"));
    expect(app.data.message).toBe(`API rate limit exceeded for app ID ${APP_ID}.`);
  });

  it("injects failures: 502, a secondary rate limit with retry-after, and scoped ones", async () => {
    const fake = await setup();
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    fake.failNext(502, { count: 2 });
    for (let i = 0; i < 2; i += 1) {
      const refusal = await refused(app("GET /app"));
      expect(refusal.status).toBe(502);
      expect(refusal.headers["x-ratelimit-limit"]).toBe("5000");
    }
    expect((await app("GET /app")).status).toBe(200);

    fake.failNext(429);
    const secondary = await refused(app("GET /app"));
    expect(secondary.status).toBe(429);
    expect(secondary.headers["retry-after"]).toBe("60");
    expect(secondary.data.message).toContain("secondary rate limit");

    fake.failNext(503, {
      method: "POST",
      path: /\/access_tokens$/,
      body: "<html>Unicorn</html>",
      headers: { "retry-after": "5" },
    });
    expect((await app("GET /app")).status).toBe(200);
    const create = "POST /app/installations/{installation_id}/access_tokens";
    const unavailable = await refused(app(create, { installation_id: 42 }));
    expect(unavailable).toMatchObject({ status: 503, headers: { "retry-after": "5" } });
    expect(unavailable.data).toBe("<html>Unicorn</html>");
    expect((await app(create, { installation_id: 42 })).status).toBe(201);
    expect(fake.mints).toBe(1);
  });

  it("delays every answer by the configured latency", async () => {
    const fake = await setup({ latencyMs: 100 });
    const app = api(fake, `Bearer ${await appJwt(fake)}`);
    let started = performance.now();
    await app("GET /app");
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    fake.latency(0);
    started = performance.now();
    await app("GET /app");
    expect(performance.now() - started).toBeLessThan(90);
  });

  it("logs method, path and status of every request, never a credential", async () => {
    const fake = await setup();
    const { token } = await mint(fake, 42);
    const jwt = await appJwt(fake);
    await api(fake, `token ${token}`)("GET /repos/acme/infra?ref=main");
    await refused(api(fake, `Bearer ${jwt}`)("GET /repos/acme/nothing/installation"));
    expect(fake.requests).toEqual([
      { method: "POST", path: "/app/installations/42/access_tokens", status: 201 },
      { method: "GET", path: "/repos/acme/infra", status: 200 },
      { method: "GET", path: "/repos/acme/nothing/installation", status: 404 },
    ]);
    const log = JSON.stringify(fake.requests);
    expect(log).not.toContain(token);
    expect(log).not.toContain(jwt.slice(0, 20));
  });

  it("rejects malformed options", async () => {
    const app = { id: APP_ID, publicKey: appKeys.publicKey };
    await expect(startGitHubFake({ apps: [app, app], installations: [] })).rejects.toThrow(
      /unique/,
    );
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    await expect(
      startGitHubFake({ apps: [{ id: 1, publicKey: String(ec) }], installations: [] }),
    ).rejects.toThrow(/RSA/);
    await expect(
      startGitHubFake({
        apps: [app],
        installations: [
          {
            id: 1,
            appId: 7,
            account: { login: "a", type: "User" },
            repositories: [],
            permissions: {},
          },
        ],
      }),
    ).rejects.toThrow(/appId/);
    await expect(
      startGitHubFake({ apps: [app], installations: [], tokenLength: 39 }),
    ).rejects.toThrow(/tokenLength/);
  });
});
