import { spawn } from "node:child_process";
import { lstat, readFile, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { parseConfig } from "../src/config.ts";
import { createTokman } from "../src/server.ts";
import { CALLER_KEY, OTHER_KEY, type Setup, setup } from "./fixture.ts";

const TOKEN_PATH = "/api/acme/api";

describe("GET /api/<namespace>/<repository>", { tags: ["slow"] }, () => {
  it("answers packit tokman's shape plus expires_at, with a token scoped to the repository", async () => {
    const t = await setup();
    const { status, body, headers } = await t.get(TOKEN_PATH);
    expect(status).toBe(200);
    expect(headers.get("cache-control")).toBe("no-store");
    expect(body).toMatchObject({
      namespace: "acme",
      repository: "api",
      access_token: expect.stringMatching(/^ghs_/),
    });
    expect(body.expires_at).toBe("2026-12-01T11:00:00.000Z");
    const [minted] = t.fake.tokens();
    expect(minted?.repositories).toEqual([{ id: 1, name: "api" }]);
    expect(minted?.permissions).toEqual({ contents: "write", metadata: "read" });
  });

  it("mints exactly once for 100 concurrent requests", async () => {
    const t = await setup();
    const answers = await Promise.all(Array.from({ length: 100 }, () => t.get(TOKEN_PATH)));
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([200]));
    expect(new Set(answers.map((a) => a.body.access_token)).size).toBe(1);
    expect(t.fake.mints).toBe(1);
    expect(t.fake.requests.filter((r) => r.path.endsWith("/installation"))).toHaveLength(1);
  });

  it("renews ahead of expiry, honours min_ttl, and never hands out a just-expired token", async () => {
    const t = await setup();
    const first = (await t.get(TOKEN_PATH)).body.access_token;
    t.advance(49 * 60_000); // 11 min left: more than the 10 min margin
    expect((await t.get(TOKEN_PATH)).body.access_token).toBe(first);
    expect((await t.get(`${TOKEN_PATH}?min_ttl=900`)).body.access_token).not.toBe(first); // wants 15 min
    expect(t.fake.mints).toBe(2);
    t.advance(51 * 60_000); // the second token has 9 min left: inside the margin
    const third = await t.get(TOKEN_PATH);
    expect(t.fake.mints).toBe(3);
    expect(Date.parse(String(third.body.expires_at)) - t.clock().getTime()).toBe(60 * 60_000);
    expect((await t.get(`${TOKEN_PATH}?min_ttl=3001`)).body.code).toBe("BTL_TOKMAN_BAD_REQUEST");
  });

  it("mints again on force_refresh, and down-scopes to requested permissions", async () => {
    const t = await setup();
    const first = (await t.get(TOKEN_PATH)).body.access_token;
    const forced = (await t.get(`${TOKEN_PATH}?force_refresh=1`)).body.access_token;
    expect(forced).not.toBe(first);
    const reader = await t.get(`${TOKEN_PATH}?permissions=metadata:read`);
    expect(reader.body.permissions).toEqual({ metadata: "read" });
    expect(t.fake.mints).toBe(3);
  });

  it("enforces the caller's policy: repositories and permissions", async () => {
    const t = await setup();
    expect((await t.get("/api/other/repo")).body.code).toBe("BTL_TOKMAN_SCOPE_DENIED");
    expect((await t.get("/api/acme/api", OTHER_KEY)).status).toBe(403);
    expect((await t.get("/api/acme/docs?permissions=contents:read", OTHER_KEY)).body.code).toBe(
      "BTL_TOKMAN_SCOPE_DENIED",
    );
    expect((await t.get(`${TOKEN_PATH}?permissions=contents:admin`)).status).toBe(403);
    expect((await t.get(`${TOKEN_PATH}?permissions=issues:read`)).status).toBe(403);
    expect((await t.get("/api/acme/docs", OTHER_KEY)).status).toBe(200);
    expect(t.fake.mints).toBe(1);
  });

  it("refuses callers without a valid key", async () => {
    const t = await setup();
    for (const key of ["", "btk_wrong", `${CALLER_KEY}x`]) {
      const answer = await t.get(TOKEN_PATH, key);
      expect(answer.status).toBe(401);
      expect(answer.body.code).toBe("BTL_TOKMAN_UNAUTHENTICATED");
    }
    expect(t.fake.requests).toHaveLength(0);
  });

  it("keeps each error class distinct", async () => {
    const t = await setup();
    const notInstalled = await t.get("/api/nobody/repo");
    expect([notInstalled.status, notInstalled.body.code]).toEqual([
      404,
      "BTL_TOKMAN_NOT_INSTALLED",
    ]);
    await t.get("/api/nobody/repo"); // cached briefly: GitHub is not asked again
    expect(
      t.fake.requests.filter((r) => r.path === "/repos/nobody/repo/installation"),
    ).toHaveLength(1);
    const suspended = await t.get("/api/frozen/ice");
    expect([suspended.status, suspended.body.code]).toEqual([423, "BTL_TOKMAN_SUSPENDED"]);
    const reset = Math.floor(t.clock().getTime() / 1000) + 120;
    t.fake.rateLimit(0, reset);
    const limited = await t.get(TOKEN_PATH);
    expect([limited.status, limited.body.code]).toEqual([429, "BTL_TOKMAN_RATE_LIMITED"]);
    expect(limited.body.reset_at).toBe(new Date(reset * 1000).toISOString());
    expect(limited.headers.get("retry-after")).toBe("120");
    t.fake.rateLimit(5000, reset);
    t.fake.failNext(502, { count: 3 });
    const down = await t.get(TOKEN_PATH);
    expect([down.status, down.body.code]).toEqual([503, "BTL_TOKMAN_UPSTREAM_UNAVAILABLE"]);
    t.fake.failNext(503, { count: 2 });
    expect((await t.get(TOKEN_PATH)).status).toBe(200); // two failures, then the retry succeeds
    expect((await t.get("/api/acme/api/extra")).body.code).toBe("BTL_TOKMAN_NOT_FOUND");
    expect((await t.get("/api/acme/a%20b")).body.code).toBe("BTL_TOKMAN_BAD_REQUEST");
  });

  it("retries 5xx and network errors, never a 4xx", async () => {
    const t = await setup();
    t.fake.failNext(422, { path: "/app/installations/7/access_tokens" });
    const refused = await t.get(TOKEN_PATH);
    expect([refused.status, refused.body.code]).toEqual([403, "BTL_TOKMAN_SCOPE_DENIED"]);
    const posts = () => t.fake.requests.filter((r) => r.method === "POST").length;
    expect(posts()).toBe(1);
    t.fake.failNext(500, { path: "/app/installations/7/access_tokens", count: 2 });
    expect((await t.get(TOKEN_PATH)).status).toBe(200);
    expect(posts()).toBe(4);
  });

  it("reports a wrong private key as misconfigured, not as not installed", async () => {
    const t = await setup({ wrongKey: true });
    const answer = await t.get(TOKEN_PATH);
    expect([answer.status, answer.body.code]).toEqual([502, "BTL_TOKMAN_MISCONFIGURED"]);
    expect((await t.get("/readyz")).status).toBe(502);
  });

  it("corrects its JWT for a GitHub clock that runs 15 minutes ahead", async () => {
    const t = await setup({ skewMs: 15 * 60_000 });
    const answer = await t.get(TOKEN_PATH);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  });

  it("assumes no token length (520-character app tokens)", async () => {
    const t = await setup({ tokenLength: 520 });
    const answer = await t.get(TOKEN_PATH);
    expect(String(answer.body.access_token)).toHaveLength(520);
  });

  it("revokes upstream and purges the cache", async () => {
    const t = await setup();
    const token = String((await t.get(TOKEN_PATH)).body.access_token);
    const response = await fetch(`${t.url}/api/revoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${CALLER_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ namespace: "acme", repository: "api" }),
    });
    expect(await response.json()).toMatchObject({ revoked: true });
    expect(t.fake.revoked).toEqual([token]);
    expect((await t.get(TOKEN_PATH)).body.access_token).not.toBe(token);
    expect(t.fake.mints).toBe(2);
  });

  it("revokes every token it holds when it closes, if asked to, and keeps them otherwise", async () => {
    const t = await setup({ revokeOnClose: true });
    const api = String((await t.get(TOKEN_PATH)).body.access_token);
    const docs = String((await t.get("/api/acme/docs")).body.access_token);
    await t.stop();
    expect([...t.fake.revoked].sort()).toEqual([api, docs].sort());
    expect(t.logs()).toMatch(/"revoked":2,"msg":"tokens revoked on close"/);
    expect(t.logs()).not.toContain(api);

    const kept = await setup();
    await kept.get(TOKEN_PATH);
    await kept.stop();
    expect(kept.fake.revoked).toEqual([]);
  });

  it("drops a token GitHub will not revoke, with the reason in the log, and still closes", async () => {
    const t = await setup({ revokeOnClose: true, store: true });
    await t.get(TOKEN_PATH);
    t.fake.failNext(500, { method: "DELETE", path: "/installation/token", count: 5 });
    await t.stop();
    expect(t.fake.revoked).toEqual([]);
    expect(t.logs()).toMatch(/"audit":"revoke-failed"/);
    // Dropped from the store too: a restart mints afresh.
    await t.restart();
    await t.get(TOKEN_PATH);
    expect(t.fake.mints).toBe(2);
  });

  it("serves cached tokens after a restart without minting (SQLite, encrypted)", async () => {
    const t = await setup({ store: true });
    const token = String((await t.get(TOKEN_PATH)).body.access_token);
    await t.restart();
    expect((await t.get(TOKEN_PATH)).body.access_token).toBe(token);
    expect(t.fake.mints).toBe(1);
    const { readFile } = await import("node:fs/promises");
    const db = await readFile(`${t.dir}/tokens.db`).catch(() => Buffer.alloc(0));
    expect(db.includes(Buffer.from(token))).toBe(false);
  });

  it("has health, readiness and Prometheus metrics", async () => {
    const t = await setup();
    expect((await t.get("/healthz", "")).status).toBe(200);
    expect((await t.get("/readyz", "")).status).toBe(200);
    await t.get(TOKEN_PATH);
    await t.get(TOKEN_PATH);
    await t.get("/api/other/x");
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain("tokman_mints_total 1");
    expect(text).toContain("tokman_cache_hits_total 1");
    expect(text).toContain('tokman_errors_total{code="BTL_TOKMAN_SCOPE_DENIED"} 1');
    expect(text).toMatch(/tokman_rate_limit_remaining\{app="acme",bucket="installation:7"\} \d+/);
  });

  it("asks GitHub at most once per 30 s for /readyz, however often and concurrently it is polled", async () => {
    const t = await setup();
    const checks = () => t.fake.requests.filter((r) => r.path === "/app").length;
    t.fake.latency(200); // probes arriving during the check wait for it
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => t.get("/readyz", "")));
    expect(concurrent.map((a) => a.status)).toEqual(Array(20).fill(200));
    t.fake.latency(0);
    for (let i = 0; i < 50; i++) expect((await t.get("/readyz", "")).status).toBe(200);
    t.advance(29_999);
    expect((await t.get("/readyz", "")).status).toBe(200);
    expect(checks()).toBe(1);
    t.advance(1);
    expect((await t.get("/readyz", "")).status).toBe(200);
    expect(checks()).toBe(2);
  });

  it("keeps a failed readiness check for 30 s too, then checks again", async () => {
    const t = await setup();
    t.fake.failNext(401, { path: "/app" });
    const down = await t.get("/readyz", "");
    expect([down.status, down.body.code]).toEqual([502, "BTL_TOKMAN_MISCONFIGURED"]);
    const calls = t.fake.requests.length;
    for (let i = 0; i < 20; i++) expect((await t.get("/readyz", "")).status).toBe(502);
    expect(t.fake.requests).toHaveLength(calls);
    t.advance(30_000);
    expect((await t.get("/readyz", "")).status).toBe(200);
  });

  it("answers 503 with Retry-After beyond --max-in-flight requests, and serves again once they finish", async () => {
    const t = await setup({ maxInFlight: 2 });
    t.fake.latency(300);
    // Two slow mints in flight (two repositories: two installation lookups reach GitHub).
    const slow = [t.get(TOKEN_PATH), t.get("/api/acme/docs")];
    while (t.fake.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    const busy = await t.get(TOKEN_PATH);
    expect([busy.status, busy.body]).toEqual([
      503,
      { error: expect.any(String), code: "BTL_TOKMAN_BUSY" },
    ]);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect((await t.get("/healthz", "")).status).toBe(200); // liveness is never refused
    expect(t.fake.requests).toHaveLength(2); // the refused request cost no GitHub call
    expect((await Promise.all(slow)).map((a) => a.status)).toEqual([200, 200]);
    t.fake.latency(0);
    expect((await t.get(TOKEN_PATH)).status).toBe(200);
    expect(t.logs()).toMatch(/"level":"warn".*"code":"BTL_TOKMAN_BUSY".*"maxInFlight":2/);
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toContain('tokman_errors_total{code="BTL_TOKMAN_BUSY"} 1');
  });

  it("audits issuances and refusals with a token digest, never the token or a key", async () => {
    const t = await setup();
    const token = String((await t.get(TOKEN_PATH)).body.access_token);
    await t.get("/api/other/x");
    await t.get(TOKEN_PATH, "btk_wrong_key_value");
    const logs = t.logs();
    expect(logs).toMatch(
      /"audit":"issued".*"caller":"gate".*"repository":"acme\/api".*"token_sha256":"sha256:[0-9a-f]{16}"/,
    );
    expect(logs).toMatch(/"audit":"refused".*"code":"BTL_TOKMAN_SCOPE_DENIED"/);
    for (const secret of [token, CALLER_KEY, "btk_wrong_key_value"])
      expect(logs).not.toContain(secret);
  });
});

describe("listeners", { tags: ["slow"] }, () => {
  /** A second tokman over the fixture's configuration, closed when the test ends. */
  function another(t: Setup) {
    const tokman = createTokman({ config: parseConfig(t.configText, t.dir), now: t.clock });
    onTestFinished(() => tokman.close());
    return tokman;
  }

  /** GET `path` over the unix socket `socketPath`, with the caller key. */
  function getOver(socketPath: string, path: string) {
    return new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      request({ socketPath, path, headers: { authorization: `Bearer ${CALLER_KEY}` } }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString("utf8");
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      })
        .on("error", reject)
        .end();
    });
  }

  it("creates its unix socket with mode 0600 even under umask 000, and serves on it", async () => {
    const t = await setup();
    const path = join(await testdir(), "tokman.sock");
    const old = process.umask(0);
    onTestFinished(() => {
      process.umask(old);
    });
    const url = await another(t).listen({ path });
    expect(url).toBe(`unix:${path}`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(process.umask()).toBe(0); // the caller's umask is given back
    const answer = await getOver(path, "/api/acme/api");
    expect(answer.status).toBe(200);
    expect(answer.body.access_token).toMatch(/^ghs_/);
  });

  it("replaces a stale socket file, and refuses a live socket or any other file", async () => {
    const t = await setup();
    const dir = await testdir();
    // A stale socket: its process died without removing it.
    const stale = join(dir, "stale.sock");
    const dead = spawn(process.execPath, [
      "-e",
      "require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))",
      stale,
    ]);
    await new Promise((resolve) => dead.once("exit", resolve));
    expect((await lstat(stale)).isSocket()).toBe(true);
    await another(t).listen({ path: stale });
    expect((await getOver(stale, "/api/acme/api")).status).toBe(200);

    const live = join(dir, "live.sock");
    const holder = createServer().listen(live);
    onTestFinished(() => {
      holder.close();
    });
    await new Promise((resolve) => holder.once("listening", resolve));
    await expect(another(t).listen({ path: live })).rejects.toMatchObject({
      code: "BTL_TOKMAN_LISTEN",
    });

    const file = join(dir, "file.sock");
    await writeFile(file, "not a socket");
    await expect(another(t).listen({ path: file })).rejects.toMatchObject({
      code: "BTL_TOKMAN_LISTEN",
    });
    expect(await readFile(file, "utf8")).toBe("not a socket");
  });
});
