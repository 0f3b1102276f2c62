import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { createTokenStore } from "@bottle/gate-tokens";
import { expectNoCanary, git, makeCanary, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { basic, rawRequest, startGate } from "./fixture.ts";

const UPLOAD = "info/refs?service=git-upload-pack";
const RECEIVE = "info/refs?service=git-receive-pack";
const REFS = `/alpha.git/${UPLOAD}`;

describe("routes and authentication", { tags: ["slow"] }, () => {
  it("answers the route/auth table", async () => {
    const admin = makeCanary("bottle_admin");
    const gate = await startGate({ env: { BOTTLE_GATE_ADMIN_TOKEN: admin } });
    const rw = await gate.token("alpha");
    const ro = await gate.token("alpha", { scopes: ["read"] });
    const beta = await gate.token("beta");
    const auth = (token: string) => ({ authorization: basic(token) });
    const table: Array<[string, string, string, Record<string, string>, number]> = [
      ["upload-pack refs", "GET", REFS, auth(rw), 200],
      ["receive-pack refs", "GET", `/alpha.git/${RECEIVE}`, auth(rw), 200],
      ["Bearer", "GET", REFS, { authorization: `Bearer ${rw}` }, 200],
      ["HEAD file", "GET", "/alpha.git/HEAD", auth(rw), 200],
      ["traversal", "GET", `/../alpha.git/${UPLOAD}`, auth(rw), 404],
      ["traversal inside", "GET", `/beta/../alpha.git/${UPLOAD}`, auth(rw), 404],
      ["encoded dots", "GET", `/%2e%2e/alpha.git/${UPLOAD}`, auth(rw), 404],
      ["encoded slash", "GET", `/alpha%2fdocs.git/${UPLOAD}`, auth(rw), 404],
      ["backslash", "GET", `/alpha\\docs.git/${UPLOAD}`, auth(rw), 404],
      ["objects path", "GET", "/alpha.git/objects/info/packs", auth(rw), 404],
      ["config file", "GET", "/alpha.git/config", auth(rw), 404],
      ["dumb refs", "GET", "/alpha.git/info/refs", auth(rw), 404],
      ["objects path without auth", "GET", "/alpha.git/objects/info/packs", {}, 404],
      ["health, without auth", "GET", "/healthz", {}, 200],
      ["health, another method", "POST", "/healthz", auth(rw), 404],
      ["unknown repo", "GET", `/alpha/nope.git/${UPLOAD}`, auth(rw), 404],
      ["another project", "GET", REFS, auth(beta), 403],
      ["read-only token pushing (refs)", "GET", `/alpha.git/${RECEIVE}`, auth(ro), 403],
      ["read-only token pushing (pack)", "POST", "/alpha.git/git-receive-pack", auth(ro), 403],
      ["read-only token fetching", "GET", REFS, auth(ro), 200],
      ["admin token, any project", "GET", `/beta.git/${RECEIVE}`, auth(admin), 200],
      ["missing header", "GET", REFS, {}, 401],
      ["malformed Basic", "GET", REFS, { authorization: "Basic %%%" }, 401],
      ["unknown scheme", "GET", REFS, { authorization: `Digest ${rw}` }, 401],
      ["unknown token", "GET", REFS, auth("bottle_gt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 401],
      [
        "token as password only",
        "GET",
        REFS,
        { authorization: `Basic ${Buffer.from(`x:${rw}`).toString("base64")}` },
        401,
      ],
    ];
    const bodies: string[] = [];
    for (const [name, method, target, headers, status] of table) {
      const res = await rawRequest(gate.url, method, target, headers);
      bodies.push(res.body, JSON.stringify(res.headers));
      expect([name, res.status]).toEqual([name, status]);
      if (status === 401)
        expect(res.headers["www-authenticate"]).toMatch(/^Basic realm="bottle-gate"/);
    }
    expectNoCanary(admin, gate.proc.stderr(), gate.proc.stdout(), ...bodies);
    for (const token of [rw, ro, beta])
      expectNoCanary(token, gate.proc.stderr(), gate.proc.stdout(), ...bodies);
  });

  it("logs one JSON line per request, with project, task, service, status, bytes and duration", async () => {
    const gate = await startGate();
    const token = await gate.token("alpha", { task: "task-7" });
    await rawRequest(gate.url, "GET", REFS, { authorization: basic(token) });
    await rawRequest(gate.url, "GET", "/alpha.git/config", {});
    let requests = gate.proc.logs().filter((r) => r.msg === "request");
    for (let i = 0; i < 40 && requests.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      requests = gate.proc.logs().filter((r) => r.msg === "request");
    }
    expect(requests).toHaveLength(2);
    expect(requests[0]).toMatchObject({
      project: "alpha",
      task: "task-7",
      service: "git-upload-pack",
      status: 200,
      bytesIn: 0,
    });
    expect(requests[0]?.bytesOut).toBeGreaterThan(100);
    expect(typeof requests[0]?.durationMs).toBe("number");
    expect(requests[1]).toMatchObject({ status: 404, level: "warn" });
    expectNoCanary(token, gate.proc.stderr());
  });

  it("denies a token revoked while the server runs, without a restart", async () => {
    const gate = await startGate();
    const token = await gate.token("alpha", { task: "short-lived" });
    expect((await rawRequest(gate.url, "GET", REFS, { authorization: basic(token) })).status).toBe(
      200,
    );
    await createTokenStore({ file: gate.tokenFile }).revoke({ task: "short-lived" });
    expect((await rawRequest(gate.url, "GET", REFS, { authorization: basic(token) })).status).toBe(
      401,
    );
    const clone = await git(["clone", gate.repoUrl(token, "/alpha.git"), await testdir()], {
      cwd: gate.base,
      env: gate.gitEnv.env,
      allowFailure: true,
    });
    expect(clone.code).not.toBe(0);
    expect(clone.stderr).toMatch(/Authentication failed|401|could not read/);
  });

  it("denies everything while the token file is missing or corrupt, and recovers", async () => {
    const gate = await startGate();
    const token = await gate.token("alpha");
    const ask = async () =>
      (await rawRequest(gate.url, "GET", REFS, { authorization: basic(token) })).status;
    expect(await ask()).toBe(200);
    await rename(gate.tokenFile, `${gate.tokenFile}.away`);
    expect(await ask()).toBe(503);
    await rename(`${gate.tokenFile}.away`, gate.tokenFile);
    expect(await ask()).toBe(200);
    const good = await readFile(gate.tokenFile);
    await writeFile(gate.tokenFile, "{ not json", { mode: 0o600 });
    expect(await ask()).toBe(503);
    await rm(gate.tokenFile);
    await writeFile(gate.tokenFile, good, { mode: 0o600 });
    expect(await ask()).toBe(200);
    const warnings = gate.proc.logs().filter((r) => r.code === "BTL_GATE_TOKENS_UNAVAILABLE");
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    expectNoCanary(token, gate.proc.stderr());
  });

  it("never takes the admin token from the token file", async () => {
    const gate = await startGate();
    const res = await rawRequest(gate.url, "GET", `/beta.git/${UPLOAD}`, {
      authorization: basic("admin"),
    });
    expect(res.status).toBe(401);
  });
});
