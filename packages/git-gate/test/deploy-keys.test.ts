import { existsSync } from "node:fs";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger } from "@bottle/log";
import {
  createGitEnv,
  expectNoCanary,
  type GiteaFake,
  generateSshKey,
  git,
  gitSshCommand,
  makeCanary,
  startGiteaFake,
  startSshGitServer,
  startUpstream,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import {
  type DeployKeyRequest,
  deployKeyTitle,
  formatDeployKeyPreflight,
  provisionDeployKeys,
  readDeployKeys,
  revokeDeployKeys,
} from "../src/deploy-keys.ts";

const TOKEN_ENV = "BOTTLE_TEST_GITEA_TOKEN";
const NOW = new Date("2026-12-01T10:00:00.456Z");
const TITLE_INFRA = "bottle acme-api/infra 2026-12-01T10:00:00Z";

/** A pino logger (through @bottle/log) writing into memory. */
function captureLogger() {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString("utf8"));
      callback();
    },
  });
  return {
    logger: createLogger({ name: "test", level: "debug", destination }),
    text: () => chunks.join(""),
  };
}

function requestsFor(api: string): DeployKeyRequest[] {
  return [
    { repo: "infra", api, owner: "acme", name: "infra", tokenEnv: TOKEN_ENV },
    // A trailing slash on the api is tolerated.
    { repo: "web", api: `${api}/`, owner: "acme", name: "web", tokenEnv: TOKEN_ENV },
  ];
}

async function setup() {
  const token = makeCanary("gitea");
  const gitea = await startGiteaFake({ token });
  gitea.addRepo("acme", "infra");
  gitea.addRepo("acme", "web");
  const stateDir = await testdir();
  const capture = captureLogger();
  const base = {
    bottleName: "acme-api",
    stateDir,
    env: { [TOKEN_ENV]: token, PATH: "/usr/bin" },
    logger: capture.logger,
    now: () => NOW,
  };
  return { token, gitea, stateDir, capture, base, requests: requestsFor(gitea.url) };
}

/** The error `promise` rejects with (fails the test when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error("expected a rejection");
}

/** Every text an error exposes: message, JSON form, stack and its cause's message. */
function errorTexts(error: Error): string[] {
  return [error.message, JSON.stringify(error), String(error.stack), String(error.cause)];
}

async function modeOf(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

function otherKeyTitle(gitea: GiteaFake) {
  return gitea.keys("acme", "infra").map((k) => k.title);
}

describe("deployKeyTitle and formatDeployKeyPreflight", () => {
  it("titles a key with the bottle, the repository and the UTC second", () => {
    expect(deployKeyTitle("acme-api", "infra", NOW)).toBe(TITLE_INFRA);
  });

  it("keeps titles printable and at most 100 characters", () => {
    const title = deployKeyTitle(`evil\n\u0007${"x".repeat(200)}`, "infra", NOW);
    expect(title.length).toBeLessThanOrEqual(100);
    expect(title).toMatch(/^bottle evil [\x20-\x7e]+\.\.\. 2026-12-01T10:00:00Z$/);
  });

  it("lists one line per key with the api, repository and token variable", () => {
    const text = formatDeployKeyPreflight(requestsFor("https://gitea.example"), (r) =>
      deployKeyTitle("acme-api", r.repo, NOW),
    );
    expect(text.split("\n")).toEqual([
      `create a write deploy key "${TITLE_INFRA}" on https://gitea.example/acme/infra (token from $${TOKEN_ENV})`,
      `create a write deploy key "bottle acme-api/web 2026-12-01T10:00:00Z" on https://gitea.example/acme/web (token from $${TOKEN_ENV})`,
    ]);
  });
});

describe("provisionDeployKeys", { tags: ["slow"] }, () => {
  it("registers one write key per repository and records it with 0600 files", async () => {
    const { gitea, stateDir, base, requests, capture, token } = await setup();
    const records = await provisionDeployKeys({ ...base, requests });

    expect(records.map((r) => [r.repo, r.title])).toEqual([
      ["infra", TITLE_INFRA],
      ["web", "bottle acme-api/web 2026-12-01T10:00:00Z"],
    ]);
    for (const record of records) {
      const [key] = gitea.keys("acme", record.name);
      expect(gitea.keys("acme", record.name)).toHaveLength(1);
      expect(key).toMatchObject({ id: record.id, title: record.title, read_only: false });
      expect(key?.fingerprint).toBe(record.fingerprint);
      expect(key?.key).toMatch(/^ssh-ed25519 AAAA\S+ bottle acme-api\//);
      expect(record).toMatchObject({
        api: gitea.url,
        owner: "acme",
        tokenEnv: TOKEN_ENV,
        identityFile: join(stateDir, "keys", record.repo),
        createdAt: NOW.toISOString(),
      });
      expect(await modeOf(record.identityFile)).toBe(0o600);
      expect(await readFile(record.identityFile, "utf8")).toMatch(
        /^-----BEGIN OPENSSH PRIVATE KEY/,
      );
    }
    expect(await modeOf(join(stateDir, "keys"))).toBe(0o700);
    const recordFile = join(stateDir, "deploy-keys.json");
    expect(await modeOf(recordFile)).toBe(0o600);
    expect(JSON.parse(await readFile(recordFile, "utf8"))).toEqual({ version: 1, keys: records });
    expect(readDeployKeys(stateDir)).toEqual(records);

    const logged = capture.text();
    expect(logged).toContain('"msg":"deploy key registered"');
    expect(logged).toContain(`"keyId":${records[0]?.id}`);
    expectNoCanary(token, logged, await readFile(recordFile, "utf8"));
  });

  it("creates a key that authenticates to an SSH upstream once authorized", async () => {
    const { gitea, base, requests } = await setup();
    const [record] = await provisionDeployKeys({ ...base, requests: requests.slice(0, 1) });
    if (record === undefined) throw new Error("no record");

    const gitEnv = await createGitEnv();
    const root = await testdir();
    const bare = join(root, "infra.git");
    await git(["init", "--quiet", "--bare", "-b", "main", bare], { cwd: root, env: gitEnv.env });
    const server = await startSshGitServer({ root, authorizedKeys: [] });
    const knownHosts = join(await testdir(), "known_hosts");
    await writeFile(knownHosts, `${server.knownHostsLine}\n`);
    const env = {
      ...gitEnv.env,
      GIT_SSH_COMMAND: gitSshCommand({
        identityFile: record.identityFile,
        knownHostsFile: knownHosts,
      }),
    };
    const lsRemote = () =>
      git(["ls-remote", server.url(bare)], { cwd: root, env, allowFailure: true });
    expect((await lsRemote()).stderr).toMatch(/Permission denied \(publickey\)/);

    server.authorize(gitea.keys("acme", "infra")[0]?.key ?? "");
    expect((await lsRemote()).code).toBe(0);
  });

  it("refuses a second key for a repository that still has a recorded one", async () => {
    const { base, requests } = await setup();
    await provisionDeployKeys({ ...base, requests: requests.slice(0, 1) });
    const error = await rejection(provisionDeployKeys({ ...base, requests: requests.slice(0, 1) }));
    expect(error.code).toBe("BTL_GITGATE_STATE");
  });

  it("reports Gitea's 422 for a duplicate title as BTL_GITGATE_DEPLOY_KEY_TITLE", async () => {
    const { gitea, stateDir, base, requests, token } = await setup();
    const other = (await generateSshKey(await testdir())).publicKeyLine;
    const reply = await fetch(`${gitea.url}/api/v1/repos/acme/infra/keys`, {
      method: "POST",
      headers: { authorization: `token ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ title: TITLE_INFRA, key: other, read_only: true }),
    });
    expect(reply.status).toBe(201);

    const error = await rejection(provisionDeployKeys({ ...base, requests }));
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY_TITLE");
    expect(error.message).toContain(`"${TITLE_INFRA}"`);
    expect(error.message).toContain("acme/infra");
    expect(error.message).toContain("A key with the same name already exists");
    expect(otherKeyTitle(gitea)).toEqual([TITLE_INFRA]);
    expect(gitea.keys("acme", "web")).toEqual([]);
    expect(existsSync(join(stateDir, "keys", "infra"))).toBe(false);
    expect(readDeployKeys(stateDir)).toEqual([]);
  });

  it("reports a wrong token (401) as BTL_GITGATE_DEPLOY_KEY without the token", async () => {
    const { gitea, stateDir, base, requests, capture } = await setup();
    const wrong = makeCanary("wrong");
    const error = await rejection(
      provisionDeployKeys({ ...base, env: { [TOKEN_ENV]: wrong }, requests }),
    );
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY");
    expect(error.message).toMatch(/answered 401 .*acme\/infra.*token is required/);
    expectNoCanary(wrong, ...errorTexts(error), capture.text());
    expect(gitea.requests).toHaveLength(1);
    expect(existsSync(join(stateDir, "keys", "infra"))).toBe(false);
  });

  it("revokes the keys it created when a later repository fails, and rethrows", async () => {
    const { gitea, stateDir, base, requests } = await setup();
    let calls = 0;
    const now = () => {
      calls += 1;
      if (calls === 2) gitea.failNext(500);
      return NOW;
    };
    const error = await rejection(provisionDeployKeys({ ...base, now, requests }));
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY");
    expect(error.message).toMatch(/answered 500 .*acme\/web/);
    expect(gitea.keys("acme", "infra")).toEqual([]);
    expect(gitea.events.map((e) => `${e.type} ${e.repo}`)).toEqual([
      "key-added infra",
      "key-removed infra",
    ]);
    expect(existsSync(join(stateDir, "keys", "infra"))).toBe(false);
    expect(existsSync(join(stateDir, "keys", "web"))).toBe(false);
    expect(existsSync(join(stateDir, "deploy-keys.json"))).toBe(false);
  });

  it("keeps a key it could not roll back recorded, so that revoke can finish", async () => {
    const { gitea, stateDir, base, requests } = await setup();
    let calls = 0;
    const now = () => {
      calls += 1;
      if (calls === 2) gitea.failNext(503, 2);
      return NOW;
    };
    const error = await rejection(provisionDeployKeys({ ...base, now, requests }));
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY");
    expect(error.message).toMatch(/1 deploy key\(s\) created before could not be removed/);
    expect(readDeployKeys(stateDir).map((r) => r.repo)).toEqual(["infra"]);
    expect(gitea.keys("acme", "infra")).toHaveLength(1);

    const { revoked } = await revokeDeployKeys(base);
    expect(revoked.map((r) => r.repo)).toEqual(["infra"]);
    expect(gitea.keys("acme", "infra")).toEqual([]);
  });

  it("never follows a redirect: the token is not sent to where it points", async () => {
    const { base, token } = await setup();
    const target = await startUpstream();
    const redirector = await startUpstream((req, res) => {
      res.writeHead(302, { location: `${target.url}${req.url}` }).end();
    });
    const error = await rejection(
      provisionDeployKeys({ ...base, requests: requestsFor(redirector.url).slice(0, 1) }),
    );
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY");
    expect(error.message).toMatch(/redirect, which is never followed/);
    expect(redirector.requests).toHaveLength(1);
    expect(target.requests).toEqual([]);
    expectNoCanary(token, ...errorTexts(error));
  });

  it("times out a forge that does not answer", async () => {
    const { base } = await setup();
    const silent = await startUpstream(() => new Promise<void>(() => {}));
    const error = await rejection(
      provisionDeployKeys({
        ...base,
        timeoutMs: 200,
        requests: requestsFor(silent.url).slice(0, 1),
      }),
    );
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY");
    expect(error.message).toMatch(/timed out/);
  });

  it("cuts the token out of a forge message that echoes it", async () => {
    const { base, token, capture } = await setup();
    const echo = await startUpstream((req, res) => {
      res.writeHead(422, { "content-type": "application/json" });
      res.end(JSON.stringify({ message: `bad header ${req.headers.authorization}` }));
    });
    const error = await rejection(
      provisionDeployKeys({ ...base, requests: requestsFor(echo.url).slice(0, 1) }),
    );
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY_TITLE");
    expect(error.message).toContain("bad header token [redacted]");
    expectNoCanary(token, ...errorTexts(error), capture.text());
  });

  it("names a missing or empty token variable without contacting the forge", async () => {
    const { gitea, base, requests } = await setup();
    for (const env of [{}, { [TOKEN_ENV]: "  " }]) {
      const error = await rejection(provisionDeployKeys({ ...base, env, requests }));
      expect(error.code).toBe("BTL_GITGATE_CREDENTIAL");
      expect(error.message).toContain(`$${TOKEN_ENV}`);
    }
    expect(gitea.requests).toEqual([]);
  });

  it("refuses plain http to a host that is not loopback before sending anything", async () => {
    const { base } = await setup();
    for (const api of ["http://gitea.example", "https://user:pw@gitea.example", "ftp://x"]) {
      const error = await rejection(provisionDeployKeys({ ...base, requests: requestsFor(api) }));
      expect(error.code, api).toBe("BTL_GITGATE_CONFIG");
      expect(error.message).not.toContain("pw");
    }
  });
});

describe("revokeDeployKeys", { tags: ["slow"] }, () => {
  it("deletes every recorded key, then the record file and the private keys", async () => {
    const { gitea, stateDir, base, requests, capture, token } = await setup();
    const records = await provisionDeployKeys({ ...base, requests });
    const result = await revokeDeployKeys(base);
    expect(result).toEqual({ revoked: records, alreadyGone: [] });
    expect(gitea.keys("acme", "infra")).toEqual([]);
    expect(gitea.keys("acme", "web")).toEqual([]);
    expect(existsSync(join(stateDir, "deploy-keys.json"))).toBe(false);
    for (const record of records) expect(existsSync(record.identityFile)).toBe(false);
    expect(capture.text()).toContain('"msg":"deploy key revoked"');
    expectNoCanary(token, capture.text());

    expect(await revokeDeployKeys(base)).toEqual({ revoked: [], alreadyGone: [] });
  });

  it("counts a key already deleted on the forge as already gone", async () => {
    const { gitea, base, requests, token } = await setup();
    const [infra, web] = await provisionDeployKeys({ ...base, requests });
    const reply = await fetch(`${gitea.url}/api/v1/repos/acme/web/keys/${web?.id}`, {
      method: "DELETE",
      headers: { authorization: `token ${token}` },
    });
    expect(reply.status).toBe(204);
    expect(await revokeDeployKeys(base)).toEqual({ revoked: [infra], alreadyGone: [web] });
  });

  it("keeps exactly the keys the forge failed to delete, and throws BTL_GITGATE_DEPLOY_KEY_REVOKE", async () => {
    const { gitea, stateDir, base, requests, capture, token } = await setup();
    const [infra, web] = await provisionDeployKeys({ ...base, requests });
    gitea.failNext(503);
    const error = await rejection(revokeDeployKeys(base));
    expect(error.code).toBe("BTL_GITGATE_DEPLOY_KEY_REVOKE");
    expect(error.message).toContain(`infra (acme/infra key ${infra?.id}): Gitea answered 503`);
    expect(readDeployKeys(stateDir)).toEqual([infra]);
    expect(existsSync(infra?.identityFile ?? "")).toBe(true);
    expect(existsSync(web?.identityFile ?? "")).toBe(false);
    expect(gitea.keys("acme", "infra")).toHaveLength(1);
    expectNoCanary(
      token,
      ...errorTexts(error),
      capture.text(),
      await readFile(join(stateDir, "deploy-keys.json"), "utf8"),
    );

    expect(await revokeDeployKeys(base)).toEqual({ revoked: [infra], alreadyGone: [] });
    expect(existsSync(join(stateDir, "deploy-keys.json"))).toBe(false);
  });

  it("names a missing token variable before deleting anything", async () => {
    const { gitea, base, requests } = await setup();
    await provisionDeployKeys({ ...base, requests });
    const error = await rejection(revokeDeployKeys({ ...base, env: {} }));
    expect(error.code).toBe("BTL_GITGATE_CREDENTIAL");
    expect(gitea.keys("acme", "infra")).toHaveLength(1);
  });
});

describe("readDeployKeys", () => {
  it("returns [] without a record file and refuses a malformed or open one", async () => {
    const stateDir = await testdir();
    expect(readDeployKeys(stateDir)).toEqual([]);
    const file = join(stateDir, "deploy-keys.json");
    await writeFile(file, JSON.stringify({ version: 1, keys: [{ repo: "x" }] }), { mode: 0o600 });
    expect(() => readDeployKeys(stateDir)).toThrow(
      expect.objectContaining({ code: "BTL_GITGATE_STATE" }),
    );
    await writeFile(file, JSON.stringify({ version: 1, keys: [] }));
    await chmod(file, 0o644);
    expect(() => readDeployKeys(stateDir)).toThrow(/mode 0600/);
    await chmod(file, 0o600);
    expect(readDeployKeys(stateDir)).toEqual([]);
  });
});
