import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { DETACH_ENV, detach } from "@bottle/sidecar";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";

const FIXTURE = join(import.meta.dirname, "fixtures/sidecar.mjs");

const listenError = (message: string) =>
  Object.assign(new Error(message), { code: "BTL_TEST_LISTEN" });

async function running(pid: number): Promise<boolean> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  return text !== "" && text.slice(text.lastIndexOf(")") + 2)[0] !== "Z";
}

describe("detach", { tags: ["slow"] }, () => {
  it("returns once the background process listens, with its pid file and an allowlisted environment", async () => {
    const dir = await testdir();
    const pidFile = join(dir, "s.pid");
    const logFile = join(dir, "s.log");
    const { url, pid } = await detach({
      name: "bottle-test",
      execPath: process.execPath,
      script: FIXTURE,
      argv: [],
      env: {
        PATH: process.env.PATH,
        LANG: "C",
        BOTTLE_TEST_KEEP: "1",
        BOTTLE_TEST_ALSO: "1",
        SOME_RUNNER_SECRET: "do-not-copy",
        AWS_SECRET_ACCESS_KEY: "do-not-copy",
      },
      keepEnv: ["BOTTLE_TEST_*"],
      pidFile,
      logFile,
      listenError,
    });
    onTestFinished(() => {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await readFile(pidFile, "utf8")).toBe(`${pid}\n`);
    expect((await stat(logFile)).mode & 0o777).toBe(0o600);
    expect(await (await fetch(`${url}/ok`)).text()).toBe("/ok");
    const starting = (await readFile(logFile, "utf8"))
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg: string; env?: string[] })
      .find((record) => record.msg === "starting");
    expect(starting?.env).toEqual([
      "BOTTLE_READY_FD",
      "BOTTLE_TEST_ALSO",
      "BOTTLE_TEST_KEEP",
      "LANG",
      "PATH",
    ]);
    expect(DETACH_ENV).toContain("PATH");
    process.kill(pid, "SIGTERM");
    await expect.poll(() => running(pid)).toBe(false);
    expect(await readFile(logFile, "utf8")).toContain('"msg":"stopped"');
  });

  it("throws the package's listen error when the process exits before it listens", async () => {
    const dir = await testdir();
    await expect(
      detach({
        name: "bottle-test",
        execPath: process.execPath,
        script: FIXTURE,
        argv: ["--socket", join(dir, "missing", "s.sock")],
        env: { PATH: process.env.PATH },
        keepEnv: [],
        pidFile: join(dir, "s.pid"),
        logFile: join(dir, "s.log"),
        listenError,
      }),
    ).rejects.toMatchObject({
      code: "BTL_TEST_LISTEN",
      message: `bottle-test did not start; see ${join(dir, "s.log")}`,
    });
    await expect(stat(join(dir, "s.pid"))).rejects.toThrow();
  });
});
