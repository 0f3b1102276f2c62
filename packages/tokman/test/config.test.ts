import { generateKeyPairSync } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { coversRepository, grantedPermissions, parseConfig } from "../src/config.ts";

const DIGEST = "a".repeat(64);

async function keyDir(mode = 0o600) {
  const dir = await testdir();
  const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    type: "pkcs1",
    format: "pem",
  });
  await writeFile(join(dir, "app.pem"), pem);
  await chmod(join(dir, "app.pem"), mode);
  return dir;
}

const yaml = (extra = "") => `version: 1
apps:
  acme: { app_id: 42, private_key: app.pem, api: "http://127.0.0.1:1" }
callers:
  gate:
    key_sha256: ${DIGEST}
    app: acme
    repositories: ["acme/*", "other/docs"]
    permissions: { contents: write, metadata: read }
${extra}`;

describe("parseConfig", () => {
  it("reads apps, callers, timing and defaults", async () => {
    const config = parseConfig(yaml(), await keyDir());
    expect(config.apps.get("acme")).toMatchObject({ issuer: "42", api: "http://127.0.0.1:1" });
    expect(config.callers[0]).toMatchObject({ name: "gate", keySha256: DIGEST, app: "acme" });
    expect(config.renewMarginMs).toBe(600_000);
    expect(config.notInstalledTtlMs).toBe(60_000);
    expect(config.store).toBeUndefined();
  });

  it("refuses a private key that group or others can read", async () => {
    const dir = await keyDir(0o644);
    expect(() => parseConfig(yaml(), dir)).toThrow(
      expect.objectContaining({ code: "BTL_TOKMAN_CONFIG" }),
    );
  });

  it.each([
    ["an unknown key", yaml("typo: 1")],
    ["a key instead of its digest", yaml().replace(DIGEST, "btk_secret")],
    ["a caller naming an unknown app", yaml().replace("app: acme", "app: nope")],
    ["an http API on another host", yaml().replace("http://127.0.0.1:1", "http://api.github.com")],
    ["a bad permission level", yaml().replace("contents: write", "contents: owner")],
    ["no version", yaml().replace("version: 1", "")],
  ])("refuses %s", async (_what, text) => {
    const dir = await keyDir();
    expect(() => parseConfig(text, dir)).toThrow(
      expect.objectContaining({ code: "BTL_TOKMAN_CONFIG" }),
    );
  });

  it("refuses two callers with one key, and a store key of the wrong size", async () => {
    const dir = await keyDir();
    const twice = `${yaml()}  other:\n    key_sha256: ${DIGEST}\n    app: acme\n    repositories: ["x/y"]\n    permissions: { metadata: read }\n`;
    expect(() => parseConfig(twice, dir)).toThrow(
      expect.objectContaining({ code: "BTL_TOKMAN_CONFIG" }),
    );
    await writeFile(join(dir, "store.key"), "short", { mode: 0o600 });
    const store = yaml("store: { sqlite: t.db, key_file: store.key }");
    expect(() => parseConfig(store, dir)).toThrow(
      expect.objectContaining({ code: "BTL_TOKMAN_CONFIG" }),
    );
    await writeFile(join(dir, "store.key"), "ab".repeat(32), { mode: 0o600 });
    expect(parseConfig(store, dir).store?.key).toHaveLength(32);
  });
});

describe("policies", () => {
  const caller = {
    name: "c",
    keySha256: DIGEST,
    app: "acme",
    repositories: ["acme/*", "other/docs"],
    permissions: { contents: "write", metadata: "read" },
  } as const;

  it("match owner/name patterns case-insensitively, with * inside one segment", () => {
    expect(coversRepository(caller, "acme", "api")).toBe(true);
    expect(coversRepository(caller, "ACME", "Api")).toBe(true);
    expect(coversRepository(caller, "other", "docs")).toBe(true);
    expect(coversRepository(caller, "other", "docs2")).toBe(false);
    expect(coversRepository(caller, "acmex", "api")).toBe(false);
  });

  it("grant the policy, or a subset of it, never more", () => {
    expect(grantedPermissions(caller, undefined)).toEqual(caller.permissions);
    expect(grantedPermissions(caller, { contents: "read" })).toEqual({ contents: "read" });
    expect(grantedPermissions(caller, { contents: "admin" })).toBeUndefined();
    expect(grantedPermissions(caller, { issues: "read" })).toBeUndefined();
  });
});
