import { chmod, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { codes, createTokenStore, createTokenVerifier } from "@bottle/gate-tokens";
import { expectNoCanary } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { recordingLogger, tokenFile } from "./helpers.ts";

const UNKNOWN = `bottle_gt_${"A".repeat(32)}`;
/** A whole-second time: `utimes` cannot restore sub-millisecond mtimes exactly. */
const SOME_TIME = new Date("2026-02-03T04:05:06Z");

describe("createTokenVerifier", () => {
  it("sees a new token and a revocation at the next verify", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    const first = await store.create({ project: "alpha", task: "a" });
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify(first.token)).toEqual({ ok: true, record: first.record });
    const second = await store.create({ project: "alpha", task: "b" });
    expect(verifier.verify(second.token).ok).toBe(true);
    await store.revoke({ task: "a" });
    expect(verifier.verify(first.token)).toEqual({ ok: false, reason: "unknown" });
    expect(verifier.state()).toEqual({ ok: true, tokens: 1 });
  });

  it("reads the file once while it does not change", async () => {
    const file = await tokenFile();
    const { token } = await createTokenStore({ file }).create({ project: "alpha", task: "a" });
    const logger = recordingLogger();
    const verifier = createTokenVerifier({ file, logger });
    for (let i = 0; i < 5; i++) expect(verifier.verify(token).ok).toBe(true);
    verifier.state();
    expect(logger.lines.filter((l) => l.msg === "token file loaded")).toHaveLength(1);
  });

  it("notices a replacement with the same size and mtime (a new inode)", async () => {
    const file = await tokenFile();
    const a = await createTokenStore({ file }).create({ project: "alpha", task: "aaaa" });
    const verifier = createTokenVerifier({ file });
    await utimes(file, SOME_TIME, SOME_TIME);
    expect(verifier.verify(a.token)).toMatchObject({ ok: true, record: { task: "aaaa" } });
    const before = await stat(file);
    const other = (await readFile(file, "utf8")).replace('"task": "aaaa"', '"task": "bbbb"');
    await writeFile(`${file}.new`, other, { mode: 0o600 });
    await utimes(`${file}.new`, SOME_TIME, SOME_TIME);
    await rename(`${file}.new`, file);
    const after = await stat(file);
    expect([after.size, after.mtimeMs]).toEqual([before.size, before.mtimeMs]);
    expect(after.ino).not.toBe(before.ino);
    expect(verifier.verify(a.token)).toMatchObject({ ok: true, record: { task: "bbbb" } });
  });

  it("notices an in-place rewrite with the same size and a restored mtime", async () => {
    const file = await tokenFile();
    const a = await createTokenStore({ file }).create({ project: "alpha", task: "aaaa" });
    await utimes(file, SOME_TIME, SOME_TIME);
    const verifier = createTokenVerifier({ file });
    expect(verifier.verify(a.token).ok).toBe(true);
    const before = await stat(file);
    await writeFile(file, (await readFile(file, "utf8")).replace('"aaaa"', '"cccc"'));
    await utimes(file, SOME_TIME, SOME_TIME);
    const after = await stat(file);
    expect([after.ino, after.size, after.mtimeMs]).toEqual([
      before.ino,
      before.size,
      before.mtimeMs,
    ]);
    expect(verifier.verify(a.token)).toMatchObject({ ok: true, record: { task: "cccc" } });
  });

  it("denies every token while the file is missing, corrupt or too open, and recovers", async () => {
    const file = await tokenFile();
    const logger = recordingLogger();
    const verifier = createTokenVerifier({ file, logger });
    expect(verifier.verify(UNKNOWN)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_MISSING });

    const { token } = await createTokenStore({ file }).create({ project: "alpha", task: "t" });
    expect(verifier.verify(token).ok).toBe(true);
    const good = await readFile(file);

    await writeFile(file, "garbage");
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_CORRUPT });
    await writeFile(file, good);
    expect(verifier.verify(token).ok).toBe(true);

    await chmod(file, 0o640);
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_FILE_MODE });
    await chmod(file, 0o600);
    expect(verifier.verify(token).ok).toBe(true);

    await rm(file);
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unavailable" });
    expect(verifier.state()).toMatchObject({ ok: false, code: codes.BTL_TOKENS_MISSING });
    await writeFile(file, good, { mode: 0o600 });
    expect(verifier.verify(token).ok).toBe(true);

    // One warning per change of state, not one per request.
    const warnings = logger.lines.filter((l) => l.level === "warn").map((l) => l.obj);
    expect(warnings).toEqual([
      expect.objectContaining({ code: codes.BTL_TOKENS_MISSING }),
      expect.objectContaining({ code: codes.BTL_TOKENS_CORRUPT }),
      expect.objectContaining({ code: codes.BTL_TOKENS_FILE_MODE }),
      expect.objectContaining({ code: codes.BTL_TOKENS_MISSING }),
    ]);
  });

  it("answers malformed before looking at the file", async () => {
    const verifier = createTokenVerifier({ file: await tokenFile() });
    expect(verifier.verify("not a token")).toEqual({ ok: false, reason: "malformed" });
    expect(verifier.verify(`bottle_gt_${"A".repeat(31)}`)).toEqual({
      ok: false,
      reason: "malformed",
    });
  });

  it("expires tokens by the injected clock", async () => {
    let clock = new Date("2026-05-01T00:00:00Z");
    const file = await tokenFile();
    const store = createTokenStore({ file, now: () => clock });
    const { token } = await store.create({ project: "alpha", task: "t", expiresInSeconds: 1 });
    const verifier = createTokenVerifier({ file, now: () => clock });
    expect(verifier.verify(token).ok).toBe(true);
    clock = new Date("2026-05-01T00:00:01Z");
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "expired" });
  });

  it("logs a fingerprint for refused tokens, never the token", async () => {
    const file = await tokenFile();
    const store = createTokenStore({ file });
    const { token } = await store.create({ project: "alpha", task: "t" });
    const logger = recordingLogger();
    const verifier = createTokenVerifier({ file, logger });
    verifier.verify(token);
    await store.revoke({ task: "t" });
    expect(verifier.verify(token)).toEqual({ ok: false, reason: "unknown" });
    const refused = logger.lines.find((l) => l.msg === "token refused");
    expect(refused?.obj).toEqual({
      fingerprint: expect.stringMatching(/^sha256:[0-9a-f]{12}$/),
      reason: "unknown",
    });
    expectNoCanary(token, JSON.stringify(logger.lines));
  });

  it("refuses bad options", () => {
    expect(() => createTokenVerifier({ file: "" })).toThrow(
      expect.objectContaining({ code: codes.BTL_TOKENS_INVALID_INPUT }),
    );
  });
});
