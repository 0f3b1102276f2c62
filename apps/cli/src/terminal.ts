/**
 * The agent's terminal: on a terminal, the agent gets its own pseudo-terminal (node-pty) with
 * the user's keys passed through in raw mode (Ctrl-C and Ctrl-Z reach the agent, not bottle)
 * and the window size followed; without one, plain pipes.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";

/** What to run: a file, its arguments and its whole environment. */
export interface Launch {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
}

/** How the agent process ended. */
export interface Ended {
  readonly exitCode: number;
  /** The signal that ended it, if one did. */
  readonly signal: string | null;
}

/** A started agent process. */
export interface Attached {
  readonly pid: number;
  readonly ended: Promise<Ended>;
}

/** The user's terminal, as the caller has it. */
export interface UserTerminal {
  readonly stdin: NodeJS.ReadStream;
  readonly stdout: NodeJS.WriteStream;
}

/** Whether bottle owns a terminal to give the agent: stdin and stdout are both terminals. */
export function hasTerminal(user: UserTerminal): boolean {
  return user.stdin.isTTY === true && user.stdout.isTTY === true;
}

/** The shell convention: 128 + the signal's number when a signal ended the process. */
export function exitCodeOf(code: number | null, signal: string | null): number {
  if (signal) return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
  return code ?? 1;
}

/** Runs `launch` on plain pipes: the user's stdin, stdout and stderr pass through. */
export function attachPipes(launch: Launch): Attached {
  const child = spawn(launch.file, [...launch.args], {
    env: launch.env,
    stdio: "inherit",
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
  });
  const ended = new Promise<Ended>((resolve) => {
    child.once("error", () => resolve({ exitCode: 127, signal: null }));
    child.once("exit", (code, signal) => resolve({ exitCode: exitCodeOf(code, signal), signal }));
  });
  if (child.pid === undefined) return { pid: -1, ended };
  return { pid: child.pid, ended };
}

/** Runs `launch` on its own pseudo-terminal, wired to the user's terminal in raw mode. */
export async function attachPty(launch: Launch, user: UserTerminal): Promise<Attached> {
  const pty = await import("node-pty");
  const term = pty.spawn(launch.file, [...launch.args], {
    name: launch.env.TERM ?? "xterm-256color",
    cols: user.stdout.columns || 80,
    rows: user.stdout.rows || 24,
    env: launch.env,
    ...(launch.cwd ? { cwd: launch.cwd } : {}),
  });
  const wasRaw = user.stdin.isRaw;
  user.stdin.setRawMode(true);
  user.stdin.resume();
  const onInput = (data: Buffer) => term.write(data.toString("binary"));
  const onResize = () => term.resize(user.stdout.columns || 80, user.stdout.rows || 24);
  user.stdin.on("data", onInput);
  user.stdout.on("resize", onResize);
  const output = term.onData((data) => user.stdout.write(data));
  const ended = new Promise<Ended>((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      output.dispose();
      user.stdin.off("data", onInput);
      user.stdout.off("resize", onResize);
      user.stdin.setRawMode(wasRaw);
      user.stdin.pause();
      const name = signal ? signalName(signal) : null;
      resolve({ exitCode: exitCodeOf(exitCode, name), signal: name });
    });
  });
  return { pid: term.pid, ended };
}

function signalName(signal: number): string {
  const found = Object.entries(constants.signals).find(([, number]) => number === signal);
  return found?.[0] ?? `signal ${signal}`;
}
