import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  type GiteaFake,
  generateSshKey,
  runProcess,
  startGiteaFake,
  testdir,
} from "../src/index.ts";

const TOKEN = "gitea-admin-token-0123456789";

async function setup(): Promise<{ gitea: GiteaFake; publicKey: string }> {
  const gitea = await startGiteaFake({
    token: TOKEN,
    now: () => new Date("2026-12-01T10:00:00.123Z"),
  });
  gitea.addRepo("acme", "infra");
  const { publicKeyLine } = await generateSshKey(await testdir());
  return { gitea, publicKey: `${publicKeyLine} bottle acme/infra` };
}

async function call(
  gitea: GiteaFake,
  method: string,
  path: string,
  options: { body?: unknown; authorization?: string | null } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (options.authorization !== null)
    headers.authorization = options.authorization ?? `token ${TOKEN}`;
  if (options.body !== undefined) headers["content-type"] = "application/json";
  const reply = await fetch(`${gitea.url}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await reply.text();
  return {
    status: reply.status,
    body: text === "" ? undefined : JSON.parse(text),
    headers: reply.headers,
  };
}

const KEYS = "/api/v1/repos/acme/infra/keys";

describe("startGiteaFake", { tags: ["slow"] }, () => {
  it("creates a deploy key with Gitea's DeployKey shape and a real SHA256 fingerprint", async () => {
    const { gitea, publicKey } = await setup();
    const created = await call(gitea, "POST", KEYS, {
      body: { title: "bottle acme/infra", key: publicKey, read_only: false },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("content-type")).toBe("application/json;charset=utf-8");
    expect(created.body).toEqual({
      id: 1,
      key_id: expect.any(Number),
      key: publicKey,
      url: `${gitea.url}${KEYS}/1`,
      title: "bottle acme/infra",
      fingerprint: expect.stringMatching(/^SHA256:[A-Za-z0-9+/]{43}$/),
      created_at: "2026-12-01T10:00:00Z",
      read_only: false,
    });
    // The fingerprint is the one OpenSSH computes.
    const file = join(await testdir(), "key.pub");
    await writeFile(file, `${publicKey}\n`);
    const keygen = await runProcess("ssh-keygen", ["-l", "-E", "sha256", "-f", file]);
    expect(keygen.stdout.split(" ")[1]).toBe((created.body as { fingerprint: string }).fingerprint);
    expect(gitea.keys("acme", "infra")).toEqual([created.body]);
    expect(gitea.events).toEqual([
      expect.objectContaining({ type: "key-added", owner: "acme", repo: "infra", id: 1 }),
    ]);
  });

  it("lists, gets and deletes keys; a deleted or unknown id answers 404", async () => {
    const { gitea, publicKey } = await setup();
    await call(gitea, "POST", KEYS, { body: { title: "ro", key: publicKey, read_only: true } });
    const list = await call(gitea, "GET", KEYS);
    expect(list.status).toBe(200);
    expect(list.headers.get("x-total-count")).toBe("1");
    expect(list.body).toEqual([expect.objectContaining({ id: 1, title: "ro", read_only: true })]);
    expect((await call(gitea, "GET", `${KEYS}/1`)).body).toMatchObject({ id: 1 });
    expect((await call(gitea, "DELETE", `${KEYS}/1`)).status).toBe(204);
    expect((await call(gitea, "GET", `${KEYS}/1`)).status).toBe(404);
    expect((await call(gitea, "DELETE", `${KEYS}/1`)).status).toBe(404);
    expect((await call(gitea, "DELETE", `${KEYS}/abc`)).status).toBe(404);
    expect(gitea.keys("acme", "infra")).toEqual([]);
    expect(gitea.events.map((e) => e.type)).toEqual(["key-added", "key-removed"]);
  });

  it("answers 401 without the token and accepts both token and Bearer schemes", async () => {
    const { gitea } = await setup();
    const missing = await call(gitea, "GET", KEYS, { authorization: null });
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({ message: "token is required", url: `${gitea.url}/api/swagger` });
    expect((await call(gitea, "GET", KEYS, { authorization: "token wrong" })).status).toBe(401);
    expect((await call(gitea, "GET", KEYS, { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    expect((await call(gitea, "GET", KEYS, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect((await call(gitea, "GET", KEYS, { authorization: `token ${TOKEN}` })).status).toBe(200);
  });

  it("answers Gitea's 404 body for an unregistered repository and resolves names case-insensitively", async () => {
    const { gitea } = await setup();
    const unknown = await call(gitea, "GET", "/api/v1/repos/acme/other/keys");
    expect(unknown).toMatchObject({
      status: 404,
      body: {
        errors: null,
        message: "The target couldn't be found.",
        url: `${gitea.url}/api/swagger`,
      },
    });
    expect((await call(gitea, "GET", "/api/v1/repos/ACME/Infra/keys")).status).toBe(200);
    expect(() => gitea.keys("acme", "other")).toThrow(/registered/);
  });

  it("answers 422 with Gitea's messages for duplicates, bad keys and missing fields", async () => {
    const { gitea, publicKey } = await setup();
    const post = (body: unknown) => call(gitea, "POST", KEYS, { body });
    expect((await post({ title: "a", key: publicKey })).status).toBe(201);
    const other = (await generateSshKey(await testdir())).publicKeyLine;
    const cases: Array<[unknown, string]> = [
      [{ title: "a", key: other }, "A key with the same name already exists"],
      [{ title: "b", key: publicKey }, "This key has already been added to this repository"],
      [{ title: "c", key: "ssh-ed25519 AAAAnotakey" }, "Invalid key content: "],
      [{ title: "d", key: "-----BEGIN OPENSSH PRIVATE KEY-----" }, "Invalid key content: "],
      [{ key: other }, "[Title]: Required"],
      [{ title: "e" }, "[Key]: Required"],
      [{ title: "f", key: other, read_only: "no" }, "[]: DeserializationError"],
    ];
    for (const [body, message] of cases) {
      const reply = await post(body);
      expect(reply.status, JSON.stringify(body)).toBe(422);
      expect((reply.body as { message: string }).message).toContain(message);
    }
    gitea.addUserKey(other);
    expect((await post({ title: "g", key: other })).body).toMatchObject({
      message: "Key content has been used as non-deploy key",
    });
    expect(gitea.keys("acme", "infra")).toHaveLength(1);
  });

  it("shares the public key id when one key is a deploy key of two repositories", async () => {
    const { gitea, publicKey } = await setup();
    gitea.addRepo("acme", "web");
    const a = await call(gitea, "POST", KEYS, { body: { title: "k", key: publicKey } });
    const b = await call(gitea, "POST", "/api/v1/repos/acme/web/keys", {
      body: { title: "k", key: publicKey },
    });
    expect(b.status).toBe(201);
    const [first, second] = [a.body, b.body] as Array<{ id: number; key_id: number }>;
    expect(second?.key_id).toBe(first?.key_id);
    expect(second?.id).not.toBe(first?.id);
  });

  it("fails the next requests on demand and records method and path only", async () => {
    const { gitea } = await setup();
    gitea.failNext(503, 2);
    expect((await call(gitea, "GET", KEYS)).status).toBe(503);
    expect((await call(gitea, "GET", `${KEYS}?token=secret-query`)).status).toBe(503);
    expect((await call(gitea, "GET", KEYS)).status).toBe(200);
    expect(gitea.requests).toEqual([
      { method: "GET", path: KEYS },
      { method: "GET", path: KEYS },
      { method: "GET", path: KEYS },
    ]);
    expect(JSON.stringify(gitea.requests)).not.toContain(TOKEN);
  });
});
