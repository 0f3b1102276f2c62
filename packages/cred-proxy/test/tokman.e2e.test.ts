// GitHub App routes: a real tokman (createTokman, and the bottle-tokman-compatible HTTP API)
// minting installation tokens at the GitHub fake, the proxy injecting them. One clock is shared by
// the fake, tokman and the proxy, and only `advance` moves it.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/cred-proxy";
import {
  createBaseEnv,
  expectNoCanary,
  type GitHubFake,
  runProcess,
  startProcess,
  startTokmanWithGitHubFake,
  startUpstream,
  type TokmanWithGitHubFake,
  testdir,
} from "@bottle/test-utils";
import { createTokman, parseConfig, type Tokman } from "@bottle/tokman";
import { describe, expect, it } from "vitest";
import { parseRoutes } from "../src/routes.ts";
import { type CredProxyOptions, createCredProxy } from "../src/server.ts";
import { BIN, type Reply, type RouteSpec, send, startProxy, type TestProxy } from "./fixture.ts";

const MINUTE = 60_000;

type Broker = TokmanWithGitHubFake<Tokman>;

/** The GitHub fake with app 42 installed on acme/api and acme/docs, and tokman brokering. */
function startBroker(options: { realTime?: boolean } = {}): Promise<Broker> {
  return startTokmanWithGitHubFake(
    { createTokman, parseConfig },
    {
      callers: {
        proxy: {
          repositories: ["acme/api", "acme/docs"],
          permissions: { contents: "read", metadata: "read" },
        },
      },
      ...(options.realTime ? { realTime: true } : {}),
      tokmanOptions: { attempts: 1, backoffMs: 1 },
    },
  );
}

/** A loopback hop in front of the fake that records the credential of each request and when. */
async function startRecorder(fake: GitHubFake, clock: () => Date) {
  const seen: Array<{ authorization: string | undefined; at: number; status: number }> = [];
  const hop = await startUpstream(async (req, res) => {
    const { authorization } = req.headers;
    const record = { authorization, at: clock().getTime(), status: 0 };
    seen.push(record);
    const answer = await fetch(`${fake.url}${req.url}`, {
      method: req.method,
      headers: authorization === undefined ? {} : { authorization },
    });
    record.status = answer.status;
    res.writeHead(answer.status, { "content-type": "application/json" });
    res.end(Buffer.from(await answer.arrayBuffer()));
  });
  return { url: hop.url, seen };
}

const gh = (upstream: string, repository = "acme/api") =>
  ({
    path: "/gh/",
    upstream,
    auth: { scheme: "Bearer" },
    tokman: { repository },
  }) satisfies RouteSpec;

async function setup(routes?: (upstream: string) => RouteSpec[]) {
  const broker = await startBroker();
  const recorder = await startRecorder(broker.fake, broker.clock);
  const proxy = await startProxy({
    routes: routes ? routes(recorder.url) : [gh(recorder.url)],
    tokens: {},
    tokman: { url: broker.url, key: broker.key, now: broker.clock },
  });
  const replies: Reply[] = [];
  const get = async (path = "/gh/repos/acme/api", headers: Record<string, string> = {}) => {
    const reply = await send(proxy.url, path, { headers });
    replies.push(reply);
    return reply;
  };
  return { broker, recorder, proxy, replies, get };
}

/** The key and every minted token appear in no proxy log line and no answer the client saw. */
function expectNoSecrets(broker: Broker, proxy: TestProxy, replies: Reply[]) {
  const seen = replies.flatMap((r) => [r.body, r.rawHeaders.join("\n")]);
  for (const secret of [broker.key, ...broker.tokens()])
    expectNoCanary(secret, proxy.logText(), ...seen);
}

describe("GitHub App routes through tokman", { tags: ["slow"] }, () => {
  it("injects an installation token tokman minted; 50 concurrent first requests share one mint", async () => {
    const { broker, recorder, proxy, replies, get } = await setup();
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        get("/gh/repos/acme/api", i === 0 ? { authorization: "Bearer evil" } : {}),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(JSON.parse(answers[0]?.body.toString() ?? "{}")).toMatchObject({
      full_name: "acme/api",
    });
    expect(broker.fake.mints).toBe(1);
    expect(broker.asked).toEqual(["?min_ttl=600"]);
    const [token] = broker.tokens();
    expect(new Set(recorder.seen.map((r) => r.authorization))).toEqual(
      new Set([`Bearer ${token}`]),
    );
    expect(broker.fake.tokens()[0]?.repositories).toEqual([{ id: 1, name: "api" }]);
    expectNoSecrets(broker, proxy, replies);
  });

  it("renews in the background before expiry and never sends an expired token", async () => {
    const { broker, recorder, proxy, replies, get } = await setup();
    expect((await get()).status).toBe(200);
    // 9 min 59 s left: still handed out at once, while a renewal asks for more than tokman has.
    broker.advance(50 * MINUTE + 1_000);
    expect((await get()).status).toBe(200);
    await expect.poll(() => broker.fake.mints).toBe(2);
    expect((await get()).status).toBe(200);
    // The first token has expired: only the renewed one goes out.
    broker.advance(15 * MINUTE);
    expect((await get()).status).toBe(200);
    // 2 min left on the second: below the margin, a request waits for a third.
    broker.advance(43 * MINUTE);
    expect((await get()).status).toBe(200);
    expect(broker.fake.mints).toBe(3);
    const [a, b, c] = broker.tokens();
    expect(recorder.seen.map((r) => r.authorization)).toEqual(
      [a, a, b, b, c].map((t) => `Bearer ${t}`),
    );
    expect(broker.asked).toEqual(["?min_ttl=600", "?min_ttl=660", "?min_ttl=600"]);
    const expiry = new Map(broker.fake.tokens().map((t) => [t.token, Date.parse(t.expiresAt)]));
    for (const { authorization, at, status } of recorder.seen) {
      expect(status).toBe(200);
      expect(expiry.get(authorization?.replace("Bearer ", "") ?? "")).toBeGreaterThan(at);
    }
    expectNoSecrets(broker, proxy, replies);
  });

  it("asks tokman with force_refresh exactly once after the upstream refuses the token", async () => {
    const { broker, proxy, replies, get } = await setup();
    expect((await get()).status).toBe(200);
    const [first] = broker.tokens();
    const revoked = await fetch(`${broker.fake.url}/installation/token`, {
      method: "DELETE",
      headers: { authorization: `token ${first}` },
    });
    expect(revoked.status).toBe(204);
    // Every request already under way with the refused token reports it; one refresh follows.
    const refused = await Promise.all([get(), get(), get(), get(), get()]);
    expect(refused.map((r) => r.status)).toEqual([401, 401, 401, 401, 401]);
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    expect(broker.asked.filter((q) => q.includes("force_refresh=1"))).toEqual([
      "?min_ttl=600&force_refresh=1",
    ]);
    expect(broker.fake.mints).toBe(2);
    expectNoSecrets(broker, proxy, replies);
  });

  it("answers 502 BTL_PROXY_CREDENTIAL while tokman is down, and serves again once it is back", async () => {
    const { broker, proxy, replies, get } = await setup();
    await broker.stop();
    const down = await get();
    expect(down.status).toBe(502);
    expect(down.headers["x-bottle-code"]).toBe("BTL_PROXY_CREDENTIAL");
    expect(JSON.parse(down.body.toString())).toEqual({
      error: "credential unavailable",
      code: "BTL_PROXY_CREDENTIAL",
    });
    await broker.restart();
    broker.advance(1_001); // a failure is remembered for a second at most
    expect((await get()).status).toBe(200);
    const records = proxy.records();
    expect(records.find((r) => r.msg === "tokman token failed")).toMatchObject({
      level: "warn",
      repository: "acme/api",
      code: "BTL_PROXY_CREDENTIAL",
    });
    expect(records.find((r) => r.msg === "request" && r.status === 502)).toMatchObject({
      route: "/gh/",
      code: "BTL_PROXY_CREDENTIAL",
    });
    expectNoSecrets(broker, proxy, replies);
  });

  it("answers 502 when tokman refuses, and logs tokman's code without a secret", async () => {
    const { broker, proxy, replies, get } = await setup((upstream) => [gh(upstream, "other/repo")]);
    const refused = await get("/gh/repos/other/repo");
    expect(refused.status).toBe(502);
    expect(refused.headers["x-bottle-code"]).toBe("BTL_PROXY_CREDENTIAL");
    const failure = proxy.records().find((r) => r.msg === "tokman token failed");
    expect(failure?.reason).toMatch(/HTTP 403, BTL_TOKMAN_SCOPE_DENIED/);
    expect(broker.fake.mints).toBe(0);
    expectNoSecrets(broker, proxy, replies);
  });

  it("shares one source between routes with one repository and scope", async () => {
    const { broker, recorder, proxy, replies } = await setup((upstream) => [
      gh(upstream),
      { ...gh(upstream), path: "/gh-token/", auth: { scheme: "token" } },
      {
        ...gh(upstream),
        path: "/gh-read/",
        tokman: { repository: "acme/api", permissions: { contents: "read" } },
      },
    ]);
    for (const path of [
      "/gh/repos/acme/api",
      "/gh-token/repos/acme/api",
      "/gh-read/repos/acme/api",
    ])
      replies.push(await send(proxy.url, path));
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(broker.asked).toEqual(["?min_ttl=600", "?permissions=contents%3Aread&min_ttl=600"]);
    const [shared] = broker.tokens();
    expect(recorder.seen.map((r) => r.authorization?.split(" ")[0])).toEqual([
      "Bearer",
      "token",
      "Bearer",
    ]);
    expect(recorder.seen[1]?.authorization).toBe(`token ${shared}`);
    expectNoSecrets(broker, proxy, replies);
  });
});

describe("createCredProxy with a GitHub App route", () => {
  const routes = parseRoutes({ version: 1, routes: [gh("https://api.github.com")] });

  it("refuses to start without tokman's settings, or with a bad URL or key, naming them only", () => {
    const key = `btk_${randomBytes(24).toString("base64url")}`;
    const cases: Array<[CredProxyOptions["tokman"], string, RegExp]> = [
      [
        undefined,
        "BTL_PROXY_CONFIG",
        /routes \/gh\/ take their token from tokman.*`tokman` option/,
      ],
      [
        { url: "http://tokman.example", key },
        "BTL_PROXY_CONFIG",
        /Expected `tokman.url` to use https/,
      ],
      [{ url: `https://u:${key}@tokman.example`, key }, "BTL_PROXY_CONFIG", /no user name/],
      [
        { url: "https://tokman.example", key: "" },
        "BTL_PROXY_TOKEN",
        /`tokman.key` is unset or empty/,
      ],
      [
        { url: "https://tokman.example", key: `${key} x` },
        "BTL_PROXY_TOKEN",
        /`tokman.key` is not/,
      ],
    ];
    for (const [tokman, code, message] of cases) {
      let error: unknown;
      try {
        createCredProxy({ routes, tokens: {}, ...(tokman ? { tokman } : {}) });
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code });
      expect((error as Error).message).toMatch(message);
      expectNoCanary(key, (error as Error).message);
    }
  });
});

describe("bottle-cred-proxy with a GitHub App route", { tags: ["slow"] }, () => {
  async function routesFile(routes: RouteSpec[]): Promise<string> {
    const dir = await testdir({ "routes.json": JSON.stringify({ version: 1, routes }) });
    return join(dir, "routes.json");
  }

  it("exits 2 naming BOTTLE_TOKMAN_URL when tokman's URL is not set", async () => {
    const key = `btk_${randomBytes(24).toString("base64url")}`;
    const file = await routesFile([gh("https://api.github.com")]);
    const run = (env: Record<string, string>) =>
      runProcess(process.execPath, [BIN, "--routes", file, "--port", "0"], {
        env: createBaseEnv(env),
      });
    const noUrl = await run({ BOTTLE_TOKMAN_KEY: key });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/^BTL_PROXY_CONFIG: BOTTLE_TOKMAN_URL is unset/m);
    expectNoCanary(key, noUrl.stdout, noUrl.stderr);
    const noKey = await run({ BOTTLE_TOKMAN_URL: "http://127.0.0.1:9" });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/^BTL_PROXY_TOKEN: BOTTLE_TOKMAN_KEY is unset/m);
    const offLoopback = await run({
      BOTTLE_TOKMAN_URL: "http://tokman.example",
      BOTTLE_TOKMAN_KEY: key,
    });
    expect(offLoopback.code).toBe(2);
    expect(offLoopback.stderr).toMatch(/^BTL_PROXY_CONFIG: Expected BOTTLE_TOKMAN_URL/m);
    expectNoCanary(key, offLoopback.stdout, offLoopback.stderr);
    // The former names are read only when neither current one is set, and then named.
    const former = await run({ BOTTLE_PROXY_TOKMAN_KEY: key });
    expect(former.stderr).toMatch(/^BTL_PROXY_CONFIG: BOTTLE_PROXY_TOKMAN_URL is unset/m);
    const mixed = await run({
      BOTTLE_TOKMAN_KEY: key,
      BOTTLE_PROXY_TOKMAN_URL: "http://127.0.0.1:9",
    });
    expect(mixed.stderr).toMatch(/^BTL_PROXY_CONFIG: BOTTLE_TOKMAN_URL is unset/m);
  });

  it("proxies with tokens from tokman, reading its URL and key from the environment", async () => {
    const broker = await startBroker({ realTime: true });
    const file = await routesFile([gh(broker.fake.url)]);
    const proc = await startProcess(process.execPath, [BIN, "--routes", file, "--port", "0"], {
      env: createBaseEnv({ BOTTLE_TOKMAN_URL: broker.url, BOTTLE_TOKMAN_KEY: broker.key }),
    });
    const reply = await send(proc.url ?? "", "/gh/repos/acme/api");
    expect(reply.status).toBe(200);
    const loaded = proc.logs().find((r) => r.msg === "routes loaded");
    expect(loaded?.routes).toEqual([
      expect.objectContaining({ path: "/gh/", tokman: { repository: "acme/api" } }),
    ]);
    const help = await runProcess(process.execPath, [BIN, "--help"]);
    expect([TOKMAN_URL_ENV, TOKMAN_KEY_ENV]).toEqual(["BOTTLE_TOKMAN_URL", "BOTTLE_TOKMAN_KEY"]);
    expect(help.stdout).toContain(TOKMAN_URL_ENV);
    expect(help.stdout).toContain(TOKMAN_KEY_ENV);
    await proc.kill();
    for (const secret of [broker.key, ...broker.tokens()])
      expectNoCanary(secret, proc.stdout(), proc.stderr(), reply.body, reply.rawHeaders.join("\n"));
    expect(proc.logs().filter((r) => r.level === "warn")).toEqual([]);
  });

  it("still takes the former names, with a warning to rename them", async () => {
    const broker = await startBroker({ realTime: true });
    const file = await routesFile([gh(broker.fake.url)]);
    const proc = await startProcess(process.execPath, [BIN, "--routes", file, "--port", "0"], {
      env: createBaseEnv({
        BOTTLE_PROXY_TOKMAN_URL: broker.url,
        BOTTLE_PROXY_TOKMAN_KEY: broker.key,
      }),
    });
    expect((await send(proc.url ?? "", "/gh/repos/acme/api")).status).toBe(200);
    expect(proc.logs().find((r) => r.level === "warn")).toMatchObject({
      msg: "deprecated environment variables: rename them",
      deprecated: ["BOTTLE_PROXY_TOKMAN_URL", "BOTTLE_PROXY_TOKMAN_KEY"],
      use: [TOKMAN_URL_ENV, TOKMAN_KEY_ENV],
    });
    await proc.kill();
    expectNoCanary(broker.key, proc.stdout(), proc.stderr());
  });
});
