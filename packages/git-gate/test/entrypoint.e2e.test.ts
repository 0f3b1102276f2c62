import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { createTokenStore } from "@bottle/gate-tokens";
import { createBaseEnv, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { BIN, PROJECT, startBottleGate } from "./fixture.ts";

/** `bottle-git-gate entrypoint` for a manifest that does not exist, so init would fail. */
async function entrypoint(gateArgs: readonly string[]) {
  const dir = await testdir();
  const stage = join(dir, "stage");
  const manifest = join(dir, "missing.yaml");
  const args = [BIN, "entrypoint", "--manifest", manifest, "--stage", stage, "--", ...gateArgs];
  return { stage, result: await runProcess(process.execPath, args, { env: createBaseEnv() }) };
}

describe("bottle-git-gate entrypoint", { tags: ["slow"] }, () => {
  it("serves the stage on the sidecar runtime: `listening` with its url, exit 0 on SIGTERM", async () => {
    const bottle = await startBottleGate({ transport: "https" });
    expect(bottle.gate.record).toMatchObject({ msg: "listening", name: "bottle-gate" });
    expect(bottle.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await bottle.clone();
    process.kill(bottle.gate.pid, "SIGTERM");
    expect(await bottle.gate.wait()).toEqual({ code: 0, signal: null });
    expect(bottle.gate.logs().map((record) => record.msg)).toContain("stopped");
  });

  it("writes its URL to the ready descriptor once it listens", async () => {
    const bottle = await startBottleGate({ transport: "https" });
    const tokens = join(await testdir(), "tokens");
    await mkdir(tokens, { mode: 0o700 });
    const tokenFile = join(tokens, "tokens.json");
    await createTokenStore({ file: tokenFile }).create({ project: PROJECT, task: "t2" });
    const stage = join(await testdir(), "stage");
    const args = ["entrypoint", "--manifest", bottle.manifest, "--stage", stage];
    const child = spawn(
      process.execPath,
      [BIN, ...args, "--", "--token-file", tokenFile, "--port", "0"],
      {
        env: createBaseEnv({ ...bottle.env, BOTTLE_READY_FD: "3" }),
        stdio: ["ignore", "ignore", "ignore", "pipe"],
      },
    );
    onTestFinished(() => {
      child.kill("SIGKILL");
    });
    let line = "";
    for await (const chunk of child.stdio[3] as Readable) line += String(chunk);
    expect(line).toMatch(/^http:\/\/127\.0\.0\.1:\d+\n$/);
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("refuses the options it sets itself, before init", async () => {
    for (const own of ["--access-hook=x", "--base-path", "--hooks-dir", "--detach", "--pid-file"]) {
      const { stage, result } = await entrypoint(["--token-file", "t.json", own, "x"]);
      expect(result.code, own).toBe(2);
      expect(result.stderr).toMatch(/^BTL_GITGATE_CONFIG: entrypoint sets --base-path/m);
      expect(existsSync(stage)).toBe(false);
    }
  });

  it("reports the gate's option errors with the gate's code, before init", async () => {
    for (const args of [[], ["--token-file", "t.json", "--port", "70000"], ["--bogus"]]) {
      const { stage, result } = await entrypoint(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(/^BTL_GATE_CONFIG: /m);
      expect(existsSync(stage)).toBe(false);
    }
    const both = await entrypoint(["--token-file", "t.json", "--inetd", "--socket", "/tmp/g.sock"]);
    expect(both.result.code).toBe(2);
    expect(both.result.stderr).toMatch(/^BTL_GATE_CONFIG: .*--inetd/m);
  });

  it("lists the gate's options after `--`", async () => {
    const { result } = await entrypoint(["--help"]);
    expect(result.code).toBe(0);
    for (const option of ["--token-file", "--admin-token", "--inetd", "--port", "--socket"])
      expect(result.stdout).toContain(option);
    expect(result.stdout).not.toContain("--access-hook");
  });
});
