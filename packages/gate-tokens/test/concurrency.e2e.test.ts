import { readdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { codes, createTokenStore, digestToken } from "@bottle/gate-tokens";
import { createBaseEnv, runProcess, startProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { rejection } from "./helpers.ts";

const BIN = join(import.meta.dirname, "../dist/cli.js");
const WRITER = join(import.meta.dirname, "fixtures/writer.mjs");
const HOLDER = join(import.meta.dirname, "fixtures/lock-holder.mjs");

async function fileIn(): Promise<string> {
  return join(await testdir(), "tokens", "tokens.json");
}

/** The file parses as a version 1 token file, 0600, and the store reads it. */
async function expectIntact(file: string) {
  const parsed = JSON.parse(await readFile(file, "utf8"));
  expect(parsed.version).toBe(1);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
  return createTokenStore({ file }).list();
}

describe("many writers", { tags: ["slow"] }, () => {
  it("lose no update when 8 processes create and 8 revoke at once", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file });
    for (let i = 0; i < 8; i++) await store.create({ project: "alpha", task: `old${i}` });
    const cli = (args: string[]) =>
      runProcess(process.execPath, [BIN, ...args, "--token-file", file], { env: createBaseEnv() });
    const results = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) =>
        cli(["create", "--project", "beta", "--task", `new${i}`]),
      ),
      ...Array.from({ length: 8 }, (_, i) => cli(["revoke", "--task", `old${i}`])),
    ]);
    expect(results.map((r) => [r.code, r.stderr.split(" ")[0]])).toEqual([
      ...Array(8).fill([0, "created"]),
      ...Array(8).fill([0, ""]),
    ]);
    const records = await expectIntact(file);
    expect(records.map((r) => r.task).sort()).toEqual(
      Array.from({ length: 8 }, (_, i) => `new${i}`).sort(),
    );
    const tokens = results.slice(0, 8).map((r) => r.stdout.trim());
    const digests = JSON.parse(await readFile(file, "utf8")).tokens.map(
      (t: { digest: string }) => t.digest,
    );
    expect(digests.sort()).toEqual(tokens.map(digestToken).sort());
    for (const token of tokens) expect((await store.verify(token)).ok).toBe(true);
    expect(await readdir(dirname(file))).toEqual(["tokens.json"]);
  });

  it("leave a file that parses whenever a writer is killed with SIGKILL", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file, staleMs: 2000 });
    await store.create({ project: "alpha", task: "seed" });
    for (let round = 0; round < 6; round++) {
      const writer = await startProcess(process.execPath, [WRITER, file], {
        readyMessage: "ready",
      });
      await new Promise((resolve) => setTimeout(resolve, 30 + Math.floor(Math.random() * 300)));
      await writer.kill("SIGKILL");
      const before = await expectIntact(file);
      // A lock the dead writer held goes stale; the next writer gets through.
      const started = Date.now();
      await store.create({ project: "alpha", task: `after${round}` });
      expect(Date.now() - started).toBeLessThan(8_000);
      const after = await expectIntact(file);
      expect(after).toEqual([...before, expect.objectContaining({ task: `after${round}` })]);
    }
    expect((await store.list()).map((r) => r.task)).toEqual(
      expect.arrayContaining(["seed", "after0", "after5"]),
    );
  });

  it("wait out a live lock (BTL_TOKENS_LOCKED when told not to) and take over a dead one", async () => {
    const file = await fileIn();
    const store = createTokenStore({ file, staleMs: 2000 });
    await store.create({ project: "alpha", task: "seed" });
    const before = await readFile(file);
    const holder = await startProcess(process.execPath, [HOLDER, file], { readyMessage: "ready" });
    const impatient = createTokenStore({ file, staleMs: 2000, retries: 0 });
    const error = await rejection(impatient.create({ project: "alpha", task: "x" }));
    expect(error.code).toBe(codes.BTL_TOKENS_LOCKED);
    // A live holder refreshes its lock, so it never goes stale while it runs.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect((await rejection(impatient.create({ project: "alpha", task: "x" }))).code).toBe(
      codes.BTL_TOKENS_LOCKED,
    );
    expect(await readFile(file)).toEqual(before);
    await holder.kill("SIGKILL");
    const started = Date.now();
    await store.create({ project: "alpha", task: "after" });
    expect(Date.now() - started).toBeLessThan(8_000);
    expect((await store.list()).map((r) => r.task)).toEqual(["seed", "after"]);
  });
});
