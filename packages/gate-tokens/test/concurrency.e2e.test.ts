import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createTokenStore } from "@bottle/gate-tokens";
import { createBaseEnv, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";

const BIN = join(import.meta.dirname, "../dist/cli.js");
const WRITER = join(import.meta.dirname, "fixtures/writer.mjs");

describe("many writers", { tags: ["slow"] }, () => {
  it("lose no update when N processes create and revoke at once", async () => {
    const file = join(await testdir(), "tokens.json");
    const store = createTokenStore({ file });
    for (let i = 0; i < 6; i++) await store.create({ project: "alpha", task: `old${i}` });
    const cli = (args: string[]) =>
      runProcess(process.execPath, [BIN, ...args, "--token-file", file], { env: createBaseEnv() });
    const results = await Promise.all([
      ...Array.from({ length: 12 }, (_, i) =>
        cli(["create", "--project", "alpha", "--task", `new${i}`]),
      ),
      ...Array.from({ length: 6 }, (_, i) => cli(["revoke", "--task", `old${i}`])),
    ]);
    expect(results.map((r) => r.code)).toEqual(Array(18).fill(0));
    const tasks = (await store.list()).map((r) => r.task).sort();
    expect(tasks).toEqual(Array.from({ length: 12 }, (_, i) => `new${i}`).sort());
    const tokens = results.slice(0, 12).map((r) => r.stdout.trim());
    for (const token of tokens) expect((await store.verify(token)).ok).toBe(true);
  });

  it("leave a file that parses when a writer is killed with SIGKILL mid-write", async () => {
    const file = join(await testdir(), "tokens.json");
    const store = createTokenStore({ file, staleMs: 2000 });
    await store.create({ project: "alpha", task: "seed" });
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, [WRITER, file], {
        env: createBaseEnv(),
        stdio: ["ignore", "ignore", "pipe"],
      });
      onTestFinished(() => {
        child.kill("SIGKILL");
      });
      await new Promise((resolve) => child.stderr.once("data", resolve));
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.floor(Math.random() * 250)));
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
      JSON.parse(await readFile(file, "utf8"));
      const before = (await store.list()).length;
      // The dead writer's lock goes stale; the next writer gets through.
      await store.create({ project: "alpha", task: `after${round}` });
      expect((await store.list()).length).toBe(before + 1);
    }
    expect((await store.list()).map((r) => r.task)).toEqual(
      expect.arrayContaining(["seed", "after0", "after4"]),
    );
  }, 60_000);
});
