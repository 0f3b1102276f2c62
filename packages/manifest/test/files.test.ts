import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  codes,
  loadManifest,
  MAX_MANIFEST_BYTES,
  type ManifestError,
  parseManifest,
} from "@bottle/manifest";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { GITHUB_HOST_KEY, manifest, parseError } from "./helpers.ts";

const withIdentity = (identity: string) =>
  manifest(
    `git_gate:\n  repos:\n    api:\n      url: git@github.com:a/api.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: static, identity: '${identity}' }\n`,
  );

async function refused(promise: Promise<unknown>): Promise<ManifestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as ManifestError,
  );
  if (error === undefined) throw new Error("expected a ManifestError");
  return error;
}

describe("secret files named by the manifest", () => {
  it("resolves a relative identity against the manifest's directory", async () => {
    const dir = await testdir({ "keys/id": { content: "k", mode: 0o600 } });
    await writeFile(join(dir, "bottle.yaml"), withIdentity("keys/id"));
    const m = await loadManifest(join(dir, "bottle.yaml"));
    const key = m.git_gate?.repos.api?.key;
    expect(key).toEqual({ provider: "static", identity: join(dir, "keys/id") });
  });

  it("resolves ~/ against the given home directory", async () => {
    const home = await testdir({ ".ssh/id": { content: "k", mode: 0o600 } });
    const m = parseManifest(withIdentity("~/.ssh/id"), { homedir: home });
    expect(m.git_gate?.repos.api?.key).toMatchObject({ identity: join(home, ".ssh/id") });
  });

  it("refuses an identity file that does not exist", () => {
    const error = parseError(withIdentity("/nonexistent/bottle-key"), {
      filename: "b.yaml",
      checkFiles: true,
    });
    expect(error.code).toBe(codes.BTL_MANIFEST_FILE);
    expect(error.issues[0]).toMatchObject({ path: "git_gate.repos.api.key.identity", line: 10 });
  });

  it.each([0o644, 0o640, 0o604])("refuses an identity file with mode %o", async (mode) => {
    const dir = await testdir({ id: "k" });
    await chmod(join(dir, "id"), mode);
    expect(() => parseManifest(withIdentity(join(dir, "id")))).toThrow(
      expect.objectContaining({ code: codes.BTL_MANIFEST_FILE_MODE }),
    );
  });

  it("refuses a directory as identity", async () => {
    const dir = await testdir();
    await mkdir(join(dir, "id"), { mode: 0o700 });
    expect(() => parseManifest(withIdentity(join(dir, "id")))).toThrow(
      expect.objectContaining({ code: codes.BTL_MANIFEST_FILE }),
    );
  });

  it("checks an app's private key the same way", async () => {
    const dir = await testdir({ "app.pem": { content: "k", mode: 0o644 } });
    await chmod(join(dir, "app.pem"), 0o644);
    const text = manifest(
      `github_apps:\n  acme: { app_id: 1, private_key: ${join(dir, "app.pem")} }\n`,
    );
    expect(() => parseManifest(text)).toThrow(
      expect.objectContaining({ code: codes.BTL_MANIFEST_FILE_MODE }),
    );
    await chmod(join(dir, "app.pem"), 0o400);
    expect(parseManifest(text).github_apps.acme?.private_key).toBe(join(dir, "app.pem"));
  });

  it("skips the file checks when asked", () => {
    expect(parseManifest(withIdentity("/nonexistent"), { checkFiles: false }).name).toBe("demo");
  });
});

describe("loadManifest", () => {
  it("reads a YAML file", async () => {
    const dir = await testdir({ "b.yaml": manifest() });
    expect((await loadManifest(join(dir, "b.yaml"))).name).toBe("demo");
  });

  it("reads a JSON file", async () => {
    const dir = await testdir({
      "b.json": JSON.stringify({ version: 1, name: "j", agent: { command: ["c"] } }),
    });
    expect((await loadManifest(join(dir, "b.json"))).name).toBe("j");
  });

  it("says when the file is missing", async () => {
    const error = await refused(loadManifest("/nonexistent/bottle.yaml"));
    expect(error.code).toBe(codes.BTL_MANIFEST_READ);
    expect(error.message).toContain("does not exist");
  });

  it("refuses a directory", async () => {
    const dir = await testdir();
    expect((await refused(loadManifest(dir))).code).toBe(codes.BTL_MANIFEST_READ);
  });

  it("refuses a file over the size cap without reading it all", async () => {
    const dir = await testdir({ "b.yaml": `${manifest()}#${"x".repeat(MAX_MANIFEST_BYTES)}` });
    expect((await refused(loadManifest(join(dir, "b.yaml")))).code).toBe(
      codes.BTL_MANIFEST_TOO_LARGE,
    );
  });

  it("refuses bytes that are not UTF-8", async () => {
    const dir = await testdir();
    await writeFile(join(dir, "b.yaml"), Buffer.from([0x76, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
    expect((await refused(loadManifest(join(dir, "b.yaml")))).code).toBe(codes.BTL_MANIFEST_PARSE);
  });

  it("follows a symlink to the manifest", async () => {
    const dir = await testdir({ "real.yaml": manifest() });
    await symlink(join(dir, "real.yaml"), join(dir, "link.yaml"));
    expect((await loadManifest(join(dir, "link.yaml"))).name).toBe("demo");
  });
});
