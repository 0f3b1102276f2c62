import { readFileSync } from "node:fs";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { runProcess, startProcess } from "../src/index.ts";

const NODE = process.execPath;

/** True while `pid` runs; a zombie (exited, not yet reaped by pid 1) counts as gone. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function waitUntilGone(pid: number, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

describe("startProcess", { tags: ["slow"] }, () => {
  it("resolves on the listening record and exposes its url, output and logs", async () => {
    const script = `
      console.log("plain stdout line");
      console.error("not json");
      console.error(JSON.stringify({ level: 30, msg: "starting" }));
      console.error(JSON.stringify({ level: 30, msg: "listening", url: "http://127.0.0.1:4321" }));
      setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script]);
    expect(started.url).toBe("http://127.0.0.1:4321");
    expect(started.record).toMatchObject({ msg: "listening", level: 30 });
    expect(started.pid).toBe(started.child.pid);
    expect(started.stdout()).toBe("plain stdout line\n");
    expect(started.stderr()).toContain("not json\n");
    expect(started.logs().map((record) => record.msg)).toEqual(["starting", "listening"]);
  });

  it("assembles a record split across writes and honours a custom ready message on stdout", async () => {
    const script = `
      process.stdout.write('{"msg":"rea');
      setTimeout(() => process.stdout.write('dy","port":7}\\n'), 50);
      setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script], { readyMessage: "ready" });
    expect(started.record).toEqual({ msg: "ready", port: 7 });
    expect(started.url).toBeUndefined();
  });

  it("rejects with the child's stderr when it exits before it is ready", async () => {
    const script = `console.error("boom: config missing"); process.exit(3);`;
    await expect(startProcess(NODE, ["-e", script])).rejects.toThrow(
      /exited before logging "listening" \(code 3, signal null\); stderr:\nboom: config missing/,
    );
  });

  it("rejects and stops the child when the ready record does not come in time", async () => {
    const script = `console.error("still booting"); setInterval(() => {}, 1000);`;
    const run = startProcess(NODE, ["-e", script], { readyTimeoutMs: 300 });
    await expect(run).rejects.toThrow(
      /did not log "listening" within 300 ms; stderr:\nstill booting/,
    );
  });

  it("rejects when the command cannot be spawned", async () => {
    await expect(startProcess("/nonexistent/bottle-bin", [])).rejects.toThrow(/failed to start/);
  });

  it("gives the child only an allowlisted environment by default", async () => {
    vi.stubEnv("BOTTLE_TEST_RUNNER_SECRET", "must-not-leak");
    const script = `console.error(JSON.stringify({ msg: "listening", keys: Object.keys(process.env) })); setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script]);
    expect(started.record.keys).toEqual(expect.arrayContaining(["PATH", "LANG", "TZ"]));
    expect(started.record.keys).not.toContain("BOTTLE_TEST_RUNNER_SECRET");
  });

  it("kills the whole process group, grandchildren included, after the test", async () => {
    const pids: number[] = [];
    // Registered first, so it runs after startProcess's own cleanup (reverse order).
    onTestFinished(async () => {
      for (const pid of pids) expect(await waitUntilGone(pid), `pid ${pid}`).toBe(true);
    });
    const script = `
      const { spawn } = require("node:child_process");
      const grandchild = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
      console.error(JSON.stringify({ msg: "listening", grandchild: grandchild.pid }));
      setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script]);
    pids.push(started.pid, started.record.grandchild as number);
    expect(pids.every(isRunning)).toBe(true);
  });

  it("escalates to SIGKILL when the child ignores SIGTERM", async () => {
    const script = `process.on("SIGTERM", () => {}); console.error(JSON.stringify({ msg: "listening" })); setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script]);
    await started.kill();
    expect(await started.wait()).toEqual({ code: null, signal: "SIGKILL" });
  });

  it("reports a SIGTERM exit through wait after kill", async () => {
    const script = `console.error(JSON.stringify({ msg: "listening" })); setInterval(() => {}, 1000);`;
    const started = await startProcess(NODE, ["-e", script]);
    await started.kill();
    expect(await started.wait()).toEqual({ code: null, signal: "SIGTERM" });
  });
});

describe("runProcess", { tags: ["slow"] }, () => {
  it("resolves with a non-zero exit code and the output instead of rejecting", async () => {
    const script = `console.log("out"); console.error("err"); process.exitCode = 3;`;
    expect(await runProcess(NODE, ["-e", script])).toEqual({
      code: 3,
      signal: null,
      stdout: "out\n",
      stderr: "err\n",
    });
  });

  it("writes the input to the child's stdin", async () => {
    const result = await runProcess(NODE, ["-e", "process.stdin.pipe(process.stdout)"], {
      input: "piped text",
    });
    expect(result).toMatchObject({ code: 0, stdout: "piped text" });
  });

  it("rejects after killing the child when it outlives the timeout", async () => {
    const run = runProcess(NODE, ["-e", "setInterval(() => {}, 1000)"], { timeoutMs: 200 });
    await expect(run).rejects.toThrow(/timed out after 200 ms/);
  });

  it("rejects when a stream exceeds the output cap", async () => {
    const script = `process.stdout.write("x".repeat(4096))`;
    const run = runProcess(NODE, ["-e", script], { maxOutputBytes: 1024 });
    await expect(run).rejects.toThrow(/more than 1024 bytes/);
  });
});
