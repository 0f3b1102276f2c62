// Finding the agent and stopping the sandbox, against the real bwrap: nothing may survive.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rmdir } from "node:fs/promises";
import { join } from "node:path";
import { isBottleError } from "@bottle/errors";
import { createBaseEnv, testdir } from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import { prepareSandbox, sandboxProcess } from "../src/sandbox/index.ts";
import {
  eventually,
  type ProcessRef,
  pidnsMembers,
  sandboxSpec,
  startSandbox,
  stillRunning,
} from "./sandbox-helpers.ts";

const PARENT = join(import.meta.dirname, "fixtures", "sandbox-parent.mjs");
const FORWARDS = [{ port: 9420, socket: "gate.sock" }];

async function cmdline(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  return text.split("\0").slice(0, -1);
}

async function startTime(pid: number): Promise<string> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "";
}

/** The sandbox's processes once the agent runs `command` and `count` of them are up. */
async function membersOnce(agent: number, count: number): Promise<ProcessRef[]> {
  let members: ProcessRef[] = [];
  const up = await eventually(async () => {
    members = await pidnsMembers(agent);
    return members.length >= count;
  });
  expect(up, `expected ${count} processes, saw ${members.length}`).toBe(true);
  return members;
}

describe("sandboxProcess", { tags: ["slow"] }, () => {
  it("finds the agent: bwrap's direct child, pid 2 in the sandbox, running the command", async () => {
    const started = await startSandbox(
      await sandboxSpec({ command: ["sleep", "1000"], forwards: FORWARDS }),
    );
    const agent = await started.sandbox.agentPid();
    // The start-up shell becomes the agent once the forwarder listens.
    expect(await eventually(async () => (await cmdline(agent)).join(" ") === "sleep 1000")).toBe(
      true,
    );
    const status = await readFile(`/proc/${agent}/status`, "utf8");
    expect(/^NSpid:\s*\d+\s+(\d+)$/m.exec(status)?.[1]).toBe("2");
    await started.sandbox.stop(5_000);
  });

  it("stop: SIGTERM reaches the agent, whose exit ends the sandbox before the grace", async () => {
    const started = await startSandbox(
      await sandboxSpec({
        command: ["sh", "-c", "trap 'echo got TERM; exit 3' TERM; sleep 1000 & wait"],
        forwards: FORWARDS,
      }),
    );
    const agent = await started.sandbox.agentPid();
    const members = await membersOnce(agent, 4); // pid 1, the agent, sleep, the forwarder
    const before = Date.now();
    await started.sandbox.stop(20_000);
    expect(Date.now() - before).toBeLessThan(10_000);
    expect(await started.exited).toEqual({ code: 3, signal: null });
    expect(started.stdout()).toBe("got TERM\n");
    expect(await stillRunning(members)).toEqual([]);
  });

  it("stop: after the grace, SIGKILL takes an agent that ignores SIGTERM and all it started", async () => {
    const started = await startSandbox(
      await sandboxSpec({
        command: ["sh", "-c", "trap '' TERM; setsid sleep 1000 & sleep 1000 & sleep 1000"],
        forwards: FORWARDS,
      }),
    );
    const agent = await started.sandbox.agentPid();
    const members = await membersOnce(agent, 6); // pid 1, the agent, three sleeps, the forwarder
    const bwrap = {
      pid: started.child.pid as number,
      start: await startTime(started.child.pid as number),
    };
    const before = Date.now();
    await started.sandbox.stop(300);
    expect(Date.now() - before).toBeGreaterThanOrEqual(300);
    expect(await started.exited).toEqual({ code: null, signal: "SIGKILL" });
    expect(await stillRunning([...members, bwrap])).toEqual([]);
  });

  it("agentPid rejects with BTL_CLI_SANDBOX_EXITED, and stop resolves at once, once it ended", async () => {
    const started = await startSandbox(await sandboxSpec({ command: ["true"] }));
    expect(await started.exited).toEqual({ code: 0, signal: null });
    const error = await started.sandbox.agentPid().catch((e: unknown) => e);
    expect(isBottleError(error, "BTL_CLI_SANDBOX_EXITED")).toBe(true);
    const before = Date.now();
    await started.sandbox.stop(10_000);
    expect(Date.now() - before).toBeLessThan(1_000);
  });

  it("agentPid rejects with BTL_CLI_SANDBOX_START when bwrap cannot build the sandbox", async () => {
    const spec = await sandboxSpec({ command: ["true"] });
    const launch = await prepareSandbox(spec);
    await rmdir(spec.workspace); // bwrap cannot bind what is gone
    const child = spawn(launch.file, launch.args, { env: launch.env, stdio: "ignore" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const sandbox = sandboxProcess({ pid: child.pid as number }, launch);
    const error = await sandbox.agentPid().catch((e: unknown) => e);
    expect(isBottleError(error, "BTL_CLI_SANDBOX_START")).toBe(true);
    expect(await exited).toBe(1);
    await sandbox.stop(1_000);
  });

  it("leaves nothing when the process that spawned it is SIGKILLed", async () => {
    const spec = await sandboxSpec({
      command: ["sh", "-c", "trap '' TERM HUP; setsid sleep 1000 & sleep 1000"],
      forwards: FORWARDS,
    });
    const report = join(await testdir(), "pids.json");
    const parent = spawn(process.execPath, [PARENT, JSON.stringify(spec), report], {
      env: createBaseEnv(),
      stdio: "ignore",
    });
    onTestFinished(() => {
      parent.kill("SIGKILL");
    });
    const exited = new Promise((resolve) => parent.once("exit", resolve));
    expect(await eventually(async () => existsSync(report), 10_000)).toBe(true);
    const { bwrap, agent } = JSON.parse(await readFile(report, "utf8")) as {
      bwrap: number;
      agent: number;
    };
    const members = await membersOnce(agent, 5); // pid 1, the agent, two sleeps, the forwarder
    const all = [...members, { pid: bwrap, start: await startTime(bwrap) }];
    parent.kill("SIGKILL");
    await exited;
    expect(await eventually(async () => (await stillRunning(all)).length === 0)).toBe(true);
  });
});
