import { EventEmitter } from "node:events";
import { PassThrough } from "node:stream";
import { sidecarProcess } from "@bottle/sidecar";
import { describe, expect, it } from "vitest";

describe("sidecarProcess", () => {
  it("takes the arguments after the script, env, pid and the streams of the process it is given", () => {
    const [stdout, stderr] = [new PassThrough(), new PassThrough()];
    const env = { PATH: "/bin" };
    const proc = Object.assign(new EventEmitter(), {
      argv: ["/usr/bin/node", "/opt/cli.js", "--port", "0"],
      env,
      pid: 4242,
      stdout,
      stderr,
    });
    const sidecar = sidecarProcess(proc as unknown as NodeJS.Process);
    expect(sidecar).toMatchObject({ argv: ["--port", "0"], env, pid: 4242, stdout, stderr });
    expect(sidecar).not.toHaveProperty("stderrFd");
  });

  it("installs signal handlers on that process, not on the global one", () => {
    const proc = Object.assign(new EventEmitter(), { argv: [], env: {}, pid: 1 });
    const seen: string[] = [];
    const before = process.listenerCount("SIGTERM");
    sidecarProcess(proc as unknown as NodeJS.Process).onSignal("SIGTERM", () => seen.push("term"));
    expect(process.listenerCount("SIGTERM")).toBe(before);
    proc.emit("SIGTERM");
    expect(seen).toEqual(["term"]);
  });
});
