// @bottle/tokman/client against a real tokman minting at the GitHub fake, one frozen clock for
// all three; and against stand-ins where tokman itself would never answer that way.
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  expectNoCanary,
  importedModules,
  startTokmanWithGitHubFake,
  startUpstream,
} from "@bottle/test-utils";
import {
  checkTokmanSettings,
  codes,
  createTokmanClient,
  TOKMAN_KEY_ENV,
  TOKMAN_URL_ENV,
  type TokmanClientOptions,
  TokmanError,
} from "@bottle/tokman/client";
import { describe, expect, it, onTestFinished } from "vitest";
import { parseConfig } from "../src/config.ts";
import { createTokman } from "../src/server.ts";

const MINUTE = 60_000;
/** The client reads no more of an answer than this. */
const MAX_ANSWER_BYTES = 64 * 1024;

async function setup() {
  const t = await startTokmanWithGitHubFake(
    { createTokman, parseConfig },
    {
      callers: {
        proxy: {
          repositories: ["acme/api", "acme/docs"],
          permissions: { contents: "read", metadata: "read" },
        },
      },
      tokmanOptions: { attempts: 1, backoffMs: 1 },
    },
  );
  const client = createTokmanClient({ url: t.url, key: t.key, now: t.clock });
  onTestFinished(() => client.close());
  return { t, client };
}

/** A stand-in for tokman that answers `answers` in turn, and the client asking it. */
async function standIn(answers: ReadonlyArray<readonly [number, unknown]>) {
  let i = 0;
  const server = await startUpstream((_req, res) => {
    const [status, body] = answers[i++] ?? [500, ""];
    res.writeHead(status, { "content-type": "application/json" });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  });
  let now = Date.parse("2026-12-01T10:00:00Z");
  const client = createTokmanClient({ url: server.url, key: "btk_key", now: () => new Date(now) });
  onTestFinished(() => client.close());
  return { server, client, advance: (ms: number) => (now += ms) };
}

describe("createTokmanClient against tokman", { tags: ["slow"] }, () => {
  it("shares one request among concurrent callers, then hands the token out synchronously", async () => {
    const { t, client } = await setup();
    const source = client.source({ repository: "acme/api" });
    const first = source.get();
    expect(first).toBeInstanceOf(Promise);
    const tokens = await Promise.all([first, ...Array.from({ length: 49 }, () => source.get())]);
    expect(new Set(tokens).size).toBe(1);
    expect(t.asked).toEqual(["?min_ttl=600"]);
    expect(t.fake.mints).toBe(1);
    expect(source.get()).toBe(tokens[0]);
    expect(client.source({ repository: "acme/api" })).toBe(source);
    expect(await client.token({ repository: "ACME/api" })).toBe(tokens[0]);
  });

  it("renews in the background ahead of expiry and never hands out an expired token", async () => {
    const { t, client } = await setup();
    const source = client.source({ repository: "acme/api", permissions: { contents: "read" } });
    const a = await source.get();
    // 9 min 59 s left: still handed out at once, while a renewal asks for more than tokman has.
    t.advance(50 * MINUTE + 1_000);
    expect(source.get()).toBe(a);
    await expect.poll(() => t.fake.mints).toBe(2);
    const b = source.get();
    expect(b).not.toBe(a);
    // 2 min left on the second: below the margin, the caller waits for a third.
    t.advance(58 * MINUTE);
    const c = source.get();
    expect(c).toBeInstanceOf(Promise);
    expect(await c).not.toBe(b);
    expect(t.asked).toEqual([
      "?permissions=contents%3Aread&min_ttl=600",
      "?permissions=contents%3Aread&min_ttl=660",
      "?permissions=contents%3Aread&min_ttl=600",
    ]);
  });

  it("asks with force_refresh exactly once after the upstream refused the token", async () => {
    const { t, client } = await setup();
    const source = client.source({ repository: "acme/api" });
    const refused = await source.get();
    source.invalidate("not-the-current-token"); // a 401 for another token changes nothing
    expect(source.get()).toBe(refused);
    source.invalidate(refused);
    source.invalidate(refused);
    const fresh = await source.get();
    expect(fresh).not.toBe(refused);
    source.invalidate(fresh); // within the cooldown: no second forced request
    expect(source.get()).toBe(fresh);
    expect(t.asked.filter((q) => q.includes("force_refresh=1"))).toEqual([
      "?min_ttl=600&force_refresh=1",
    ]);
    expect(t.fake.mints).toBe(2);
  });

  it("rejects with tokman's own code when it refuses, and with UNREACHABLE when it is down", async () => {
    const { t, client } = await setup();
    await expect(client.token({ repository: "other/repo" })).rejects.toMatchObject({
      code: codes.BTL_TOKMAN_SCOPE_DENIED,
      message: "tokman refused the token for other/repo (HTTP 403, BTL_TOKMAN_SCOPE_DENIED)",
    });
    await t.stop();
    const down = await client.token({ repository: "acme/api" }).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(TokmanError);
    expect(down).toMatchObject({ code: codes.BTL_TOKMAN_UNREACHABLE });
    expect((down as Error).message).toMatch(/ECONNREFUSED/);
    // Remembered for a second: the next caller fails at once, without a request.
    await expect(client.token({ repository: "acme/api" })).rejects.toBe(down);
    await t.restart();
    t.advance(1_001);
    expect(typeof (await client.token({ repository: "acme/api" }))).toBe("string");
    for (const secret of [t.key, ...t.tokens()]) expectNoCanary(secret, (down as Error).message);
  });

  it("turns its errors into the caller's own with wrapError, and stops when closed", async () => {
    const { t } = await setup();
    const wrapped = createTokmanClient({
      url: t.url,
      key: "btk_not_a_caller",
      now: t.clock,
      wrapError: (error) => Object.assign(new Error(`no token: ${error.message}`), { code: "X" }),
    });
    const source = wrapped.source({ repository: "acme/api" });
    await expect(Promise.resolve(source.get())).rejects.toMatchObject({
      code: "X",
      message: expect.stringContaining("BTL_TOKMAN_UNAUTHENTICATED"),
    });
    wrapped.close();
    await expect(Promise.resolve(source.get())).rejects.toMatchObject({ code: "X" });
  });
});

describe("createTokmanClient against stand-ins", () => {
  it("refuses answers without a usable token, naming tokman's code and nothing secret", async () => {
    const token = `ghs_${randomBytes(24).toString("hex")}`;
    const answers = [
      [200, { access_token: `${token} x`, expires_at: "2026-12-01T11:00:00Z" }],
      [200, { access_token: token, expires_at: "2026-12-01T10:00:30Z" }],
      [200, { access_token: token }],
      [200, { access_token: token, expires_at: "tomorrow" }],
      [200, "not json"],
      [
        429,
        {
          error: "rate limited",
          code: "BTL_TOKMAN_RATE_LIMITED",
          reset_at: "2026-12-01T10:05:00Z",
        },
      ],
      [500, "<html>oops</html>"],
      [403, { code: "BTL_SOMETHING_ELSE" }],
    ] as const;
    const { client, advance } = await standIn(answers);
    const source = client.source({ repository: "acme/api" });
    const errors: TokmanError[] = [];
    for (const _ of answers) {
      advance(1_001);
      await Promise.resolve(source.get()).then(
        () => expect.unreachable(),
        (error: TokmanError) => errors.push(error),
      );
    }
    expect(errors.map((e) => [e.code, e.message])).toEqual([
      ["BTL_TOKMAN_BAD_ANSWER", "tokman's answer for acme/api holds no usable token"],
      [
        "BTL_TOKMAN_BAD_ANSWER",
        "tokman answered a token for acme/api that expires too soon (check the clocks)",
      ],
      ["BTL_TOKMAN_BAD_ANSWER", "tokman's answer for acme/api holds no usable token"],
      ["BTL_TOKMAN_BAD_ANSWER", "tokman's answer for acme/api holds no usable token"],
      ["BTL_TOKMAN_BAD_ANSWER", "tokman's answer for acme/api holds no usable token"],
      [
        "BTL_TOKMAN_RATE_LIMITED",
        "tokman refused the token for acme/api (HTTP 429, BTL_TOKMAN_RATE_LIMITED)",
      ],
      ["BTL_TOKMAN_BAD_ANSWER", "tokman refused the token for acme/api (HTTP 500)"],
      ["BTL_TOKMAN_BAD_ANSWER", "tokman refused the token for acme/api (HTTP 403)"],
    ]);
    expect(errors[5]?.resetAt?.toISOString()).toBe("2026-12-01T10:05:00.000Z");
    expectNoCanary(token, ...errors.map((e) => `${e.message} ${JSON.stringify(e)}`));
  });

  it("reads no more than the cap of an answer", async () => {
    const huge = { access_token: "x".repeat(MAX_ANSWER_BYTES), expires_at: "2026-12-01T11:00:00Z" };
    const { client } = await standIn([[200, huge]]);
    await expect(client.token({ repository: "acme/api" })).rejects.toMatchObject({
      code: "BTL_TOKMAN_BAD_ANSWER",
      message: `tokman's answer for acme/api is larger than ${MAX_ANSWER_BYTES} bytes`,
    });
  });

  it("follows no redirect with the key", async () => {
    const elsewhere = await startUpstream();
    const redirecting = await startUpstream((_req, res) => {
      res.writeHead(302, { location: `${elsewhere.url}/api/acme/api` }).end();
    });
    const key = `btk_${randomBytes(24).toString("base64url")}`;
    const client = createTokmanClient({ url: redirecting.url, key });
    onTestFinished(() => client.close());
    const error = (await client
      .token({ repository: "acme/api" })
      .catch((e: unknown) => e)) as Error;
    expect(error).toMatchObject({ code: "BTL_TOKMAN_BAD_ANSWER" });
    expect(error.message).toContain("(HTTP 302)");
    expect(elsewhere.requests).toHaveLength(0);
    expect(redirecting.requests[0]?.headers.authorization).toBe(`Bearer ${key}`);
    expectNoCanary(key, error.message, JSON.stringify(error));
  });
});

describe("the client's settings", () => {
  const key = `btk_${randomBytes(24).toString("base64url")}`;

  it.each<[string, Partial<TokmanClientOptions>, RegExp]>([
    ["http off loopback", { url: "http://tokman.example", key }, /^Expected `url` to use https/],
    [
      "a key in the URL",
      { url: `https://u:${key}@tokman.example`, key },
      /^Expected `url` to carry no user name/,
    ],
    ["no URL", { url: "", key }, /^`url` is unset or empty/],
    ["no key", { url: "https://tokman.example", key: "" }, /^`key` is unset or empty/],
    [
      "a key with a space",
      { url: "https://tokman.example", key: `${key} x` },
      /^`key` is not 1 to 8192 printable/,
    ],
    [
      "no time to answer",
      { url: "https://tokman.example", key, timeoutMs: 0 },
      /^Expected `timeoutMs` to be an integer from 1/,
    ],
  ])("refuses %s, naming the setting and never its value", (_what, options, message) => {
    let error: unknown;
    try {
      createTokmanClient({ url: "", key: "", ...options });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "BTL_TOKMAN_CLIENT_CONFIG" });
    expect((error as Error).message).toMatch(message);
    expectNoCanary(key, (error as Error).message);
  });

  it("refuses scopes that would hand out tokens without renewal, or name no repository", () => {
    const client = createTokmanClient({ url: "http://127.0.0.1:1", key: "k" });
    for (const scope of [
      { repository: "a/b", minTtlSeconds: 5000 },
      { repository: "a/b", renewMarginMs: 600_000 },
      { repository: "a" },
      { repository: "a/../b" },
      { repository: "a/b", permissions: { contents: "owner" } },
    ])
      expect(() => client.source(scope as never)).toThrow(
        expect.objectContaining({ code: "BTL_TOKMAN_CLIENT_CONFIG" }),
      );
  });

  it("checks a URL and key pair by name, and documents one environment pair", () => {
    expect(checkTokmanSettings({ url: "https://t.example", key: "k" })).toEqual({});
    expect(checkTokmanSettings({}, { url: TOKMAN_URL_ENV, key: TOKMAN_KEY_ENV })).toEqual({
      url: "BOTTLE_TOKMAN_URL is unset or empty",
      key: "BOTTLE_TOKMAN_KEY is unset or empty",
    });
  });

  it("loads neither tokman's server nor its store nor a GitHub client nor YAML", async () => {
    const loaded = await importedModules("@bottle/tokman/client", join(import.meta.dirname, ".."));
    expect(loaded.some((url) => url.endsWith("/dist/client.js"))).toBe(true);
    expect(
      loaded.filter((url) =>
        /server\.js|store\.js|github\.js|broker\.js|octokit|\/yaml\//.test(url),
      ),
    ).toEqual([]);
  });
});
