// The sandbox on a terminal: its own pseudo-terminal (node-pty), the user's, or none.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createBaseEnv, testdir } from "@bottle/test-utils";
import * as pty from "node-pty";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { prepareSandbox, sandboxProcess } from "../src/sandbox/index.ts";
import { seccompArch, syscallNumber } from "../src/sandbox/seccomp.ts";
import { sandboxSpec } from "./sandbox-helpers.ts";

const FIXTURES = join(import.meta.dirname, "fixtures");
const PARENT = join(FIXTURES, "sandbox-parent.mjs");
const TIOCSTI_PROBE = `tiocsti=${syscallNumber(seccompArch(process.arch), "ioctl")}`;

/**
 * What the agent reports about its terminal: whether stdin is one, the controlling terminal's
 * device number from /proc/self/stat (0: none), whether /dev/tty opens, the window size, TERM
 * and what TIOCSTI on stdin answers (errno, 0 when it went through).
 */
const REPORT = [
  "test -t 0 && echo isatty=yes || echo isatty=no",
  "echo ctty=$(cut -d' ' -f7 /proc/self/stat)",
  "(: </dev/tty) 2>/dev/null && echo devtty=yes || echo devtty=no",
  "echo size=$(stty size 2>/dev/null)",
  'echo "term=$TERM"',
  `perl ${FIXTURES}/syscall-probe.pl ${TIOCSTI_PROBE}`,
].join("; ");

/** Runs `file args` on a new pseudo-terminal and returns everything it printed and its exit. */
async function onPty(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ output: string; exitCode: number; pid: number; term: pty.IPty }> {
  // node-pty sets TERM to `name` in the child's environment.
  const name = env.TERM ?? "xterm";
  const term = pty.spawn(file, [...args], { cols: 91, rows: 27, env, name });
  onTestFinished(() => {
    try {
      term.kill("SIGKILL");
    } catch {
      // already gone
    }
  });
  let output = "";
  term.onData((data) => {
    output += data;
  });
  const exitCode = await new Promise<number>((resolve) => {
    term.onExit(({ exitCode }) => resolve(exitCode));
  });
  return { output: output.replaceAll("\r\n", "\n"), exitCode, pid: term.pid, term };
}

function field(output: string, name: string): string | undefined {
  return new RegExp(`^${name}[= ](.*)$`, "m").exec(output)?.[1];
}

describe("the sandbox on a terminal", { tags: ["slow"] }, () => {
  it("starts a new session except when the caller gives it a pty of its own", async () => {
    const argv = async (terminal: "pty" | "inherit" | "none") =>
      (await prepareSandbox(await sandboxSpec({ terminal }))).args;
    expect(await argv("pty")).not.toContain("--new-session");
    expect(await argv("inherit")).toContain("--new-session");
    expect(await argv("none")).toContain("--new-session");
  });

  it("pty: spawned by node-pty, the agent has the pty as its terminal, its size and TERM; TIOCSTI is refused", async () => {
    vi.stubEnv("TERM", "xterm-from-host");
    const spec = await sandboxSpec({
      terminal: "pty",
      roBinds: [FIXTURES],
      forwards: [{ port: 9420, socket: "gate.sock" }],
      command: ["sh", "-c", REPORT],
    });
    const launch = await prepareSandbox(spec);
    const { output, exitCode, pid } = await onPty(launch.file, launch.args, launch.env);
    expect(exitCode).toBe(0);
    expect(field(output, "isatty")).toBe("yes");
    expect(Number(field(output, "ctty"))).not.toBe(0);
    expect(field(output, "devtty")).toBe("yes");
    expect(field(output, "size")).toBe("27 91");
    expect(field(output, "term")).toBe("xterm-from-host");
    // It is the controlling terminal: without the filter, TIOCSTI would go through.
    expect(field(output, "tiocsti")).toBe("1");
    // The pty's process is bwrap itself, so sandboxProcess can watch it.
    expect(pid).toBeGreaterThan(0);
    await sandboxProcess({ pid }, launch).stop(0);
  });

  it("pty: Ctrl-C and window-size changes reach the agent's process group, not bwrap", async () => {
    const spec = await sandboxSpec({
      terminal: "pty",
      forwards: [{ port: 9420, socket: "gate.sock" }],
      command: [
        "sh",
        "-c",
        "trap 'echo caught INT' INT; trap 'echo resized $(stty size)' WINCH; echo ready; sleep 1; echo after",
      ],
    });
    const launch = await prepareSandbox(spec);
    const term = pty.spawn(launch.file, launch.args, { cols: 80, rows: 24, env: launch.env });
    onTestFinished(() => {
      try {
        term.kill("SIGKILL");
      } catch {
        // already gone
      }
    });
    let output = "";
    let sent = false;
    term.onData((data) => {
      output += data;
      if (!sent && output.includes("ready")) {
        sent = true;
        term.resize(100, 30);
        term.write("\x03");
      }
    });
    const ended = await new Promise<{ exitCode: number; signal?: number }>((resolve) => {
      term.onExit(resolve);
    });
    // Without the hand-over, SIGINT would end bwrap itself (signal 2) and the sandbox with it.
    expect(ended).toEqual({ exitCode: 0, signal: 0 });
    const lines = output.replaceAll("\r\n", "\n");
    expect(lines).toContain("caught INT\n");
    expect(lines).toContain("resized 30 100\n");
    expect(lines).toMatch(/after\n$/);
  });

  it("inherit: the agent gets the caller's terminal as stdin but not as its controlling terminal", async () => {
    const spec = await sandboxSpec({
      terminal: "inherit",
      roBinds: [FIXTURES],
      command: ["sh", "-c", REPORT],
    });
    const report = join(await testdir(), "pids.json");
    // The fixture plays the CLI: it owns the terminal (node-pty's) and lets the sandbox inherit it.
    const env = createBaseEnv({ TERM: "xterm-inherited" }) as Record<string, string>;
    const { output, exitCode } = await onPty(
      process.execPath,
      [PARENT, JSON.stringify(spec), report],
      env,
    );
    expect(exitCode).toBe(0);
    expect(field(output, "isatty")).toBe("yes");
    expect(field(output, "ctty")).toBe("0");
    expect(field(output, "devtty")).toBe("no");
    expect(field(output, "size")).toBe("27 91");
    expect(field(output, "term")).toBe("xterm-inherited");
    expect(field(output, "tiocsti")).toBe("1");
    expect(JSON.parse(await readFile(report, "utf8"))).toHaveProperty("agent");
  });

  it("none: pipes, no terminal and no TERM", async () => {
    vi.stubEnv("TERM", "xterm-from-host");
    const spec = await sandboxSpec({
      terminal: "none",
      command: ["sh", "-c", REPORT],
      roBinds: [FIXTURES],
    });
    const launch = await prepareSandbox(spec);
    const child = spawn(launch.file, launch.args, {
      env: launch.env,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
    expect(field(output, "isatty")).toBe("no");
    expect(field(output, "ctty")).toBe("0");
    expect(field(output, "term")).toBe("");
    // stdin is /dev/null here: the filter answers before the terminal driver could say ENOTTY.
    expect(field(output, "tiocsti")).toBe("1");
  });
});
