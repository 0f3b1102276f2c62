import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { codes, createTokenStore, digestToken, TOKEN_PREFIX } from "@bottle/gate-tokens";
import { describe, expect, it } from "vitest";
import { countingBytes, rejection, tokenFile } from "./helpers.ts";

describe("tokens", () => {
  it("are the prefix and 24 random bytes in base64url, with an id drawn separately", async () => {
    const file = await tokenFile();
    const random = countingBytes(7);
    const { token, record } = await createTokenStore({ file, randomBytes: random }).create({
      project: "alpha",
      task: "t1",
    });
    const bytes = countingBytes(7);
    expect(TOKEN_PREFIX).toBe("bottle_gt_");
    expect(token).toBe(`bottle_gt_${bytes(24).toString("base64url")}`);
    expect(token).toMatch(/^bottle_gt_[A-Za-z0-9_-]{32}$/);
    expect(record.id).toBe(`gt_${bytes(8).toString("hex")}`);
    expect(record.id).not.toContain(digestToken(token).slice(7, 23));
  });

  it("are stored as sha256 digests only", async () => {
    const file = await tokenFile();
    const { token } = await createTokenStore({ file }).create({ project: "alpha", task: "t1" });
    const hex = createHash("sha256").update(token).digest("hex");
    expect(digestToken(token)).toBe(`sha256:${hex}`);
    const text = await readFile(file, "utf8");
    expect(text).toContain(`"digest": "sha256:${hex}"`);
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.slice(TOKEN_PREFIX.length));
  });

  it("refuses randomness that does not return the bytes asked for", async () => {
    const store = createTokenStore({ file: await tokenFile(), randomBytes: () => Buffer.alloc(3) });
    const error = await rejection(store.create({ project: "alpha", task: "t1" }));
    expect(error.code).toBe(codes.BTL_TOKENS_INVALID_INPUT);
  });

  it("draws another id when the first is taken, and never stores a digest twice", async () => {
    const file = await tokenFile();
    const first = await createTokenStore({ file, randomBytes: countingBytes() }).create({
      project: "alpha",
      task: "a",
    });
    const taken = Buffer.from(first.record.id.slice(3), "hex");
    const sequence = (draws: Buffer[]) => (size: number) => {
      const next = draws.shift() ?? taken;
      expect(next.length).toBe(size);
      return next;
    };
    const retry = createTokenStore({
      file,
      randomBytes: sequence([Buffer.alloc(24, 5), taken, Buffer.alloc(8, 9)]),
    });
    expect((await retry.create({ project: "alpha", task: "b" })).record.id).toBe(
      "gt_0909090909090909",
    );
    const stuck = createTokenStore({ file, randomBytes: sequence([Buffer.alloc(24, 6)]) });
    expect((await rejection(stuck.create({ project: "alpha", task: "c" }))).code).toBe(
      codes.BTL_INTERNAL,
    );
    const again = createTokenStore({ file, randomBytes: countingBytes() });
    expect((await rejection(again.create({ project: "alpha", task: "d" }))).code).toBe(
      codes.BTL_INTERNAL,
    );
    const store = createTokenStore({ file });
    expect((await store.list()).map((r) => r.task)).toEqual(["a", "b"]);
    expect((await store.verify(first.token)).ok).toBe(true);
  });
});
