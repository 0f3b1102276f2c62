/**
 * A running sandbox, seen from the host: its agent's pid and its stop. bwrap reports the pid of
 * the sandbox's pid 1 (its reaper) on --json-status-fd; the agent is that process's child with
 * pid 2 in the sandbox's pid namespace. When pid 1 of a pid namespace exits, the kernel kills
 * every other process in it and reaps them before pid 1 itself is gone (pid_namespaces(7)), so
 * "pid 1 is gone" means "nothing of the sandbox is left".
 */
import { readFile, readlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { CliError } from "../errors.ts";

/** How often the status file and /proc are looked at while waiting. */
const POLL_MS = 5;
/** How long agentPid() waits for bwrap to start the agent. */
const START_TIMEOUT_MS = 10_000;
/** How long stop() waits, after SIGKILL, for the sandbox's processes to be gone. */
const KILL_TIMEOUT_MS = 5_000;

/** What the launch is to the process handle: its status file. */
export interface SandboxStatusSource {
  readonly statusFile: string;
}

/** A running sandbox. */
export interface SandboxProcess {
  /**
   * The host pid of the agent (the sandbox's pid 2). Rejects with BTL_CLI_SANDBOX_START when
   * bwrap ended without starting it, BTL_CLI_SANDBOX_EXITED when it ended before it was seen.
   */
  agentPid(): Promise<number>;
  /**
   * SIGTERM to the agent, up to `graceMs` for the sandbox to end, then SIGKILL to bwrap and the
   * sandbox's pid 1. Resolves once no process of the sandbox is left (bwrap itself is gone or a
   * zombie for its parent to reap); throws BTL_CLI_SANDBOX_STOP if one outlives the SIGKILL.
   */
  stop(graceMs: number): Promise<void>;
}

interface Status {
  /** Host pid of the sandbox's pid 1. */
  init?: number;
  /** Inode of the sandbox's pid namespace. */
  pidns?: number;
  exited: boolean;
}

async function readStatus(file: string): Promise<Status> {
  let text = "";
  try {
    text = await readFile(file, "utf8");
  } catch {
    // not created yet
  }
  const status: Status = { exited: false };
  for (const line of text.split("\n")) {
    if (!line.endsWith("}")) continue; // a line bwrap is still writing
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof record["child-pid"] === "number") status.init = record["child-pid"];
    if (typeof record["pid-namespace"] === "number") status.pidns = record["pid-namespace"];
    if (typeof record["exit-code"] === "number") status.exited = true;
  }
  return status;
}

/** A process's state letter and start time (clock ticks since boot), from /proc/<pid>/stat. */
async function procStat(pid: number): Promise<{ state: string; start: string } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name, in parentheses, may hold spaces: the fields start after the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", start: fields[19] ?? "" };
  } catch {
    return undefined;
  }
}

/** Whether `pid` is the process that started at `start` and has not exited (zombies have). */
async function isRunning(pid: number, start: string): Promise<boolean> {
  const stat = await procStat(pid);
  return stat !== undefined && stat.start === start && stat.state !== "Z" && stat.state !== "X";
}

/** Whether `pid` is a live process in the pid namespace `pidns`. */
async function inPidns(pid: number, pidns: number): Promise<boolean> {
  try {
    if ((await readlink(`/proc/${pid}/ns/pid`)) !== `pid:[${pidns}]`) return false;
  } catch {
    return false;
  }
  const stat = await procStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

/** The child of `init` whose pid in the innermost namespace is 2, if it exists yet. */
async function findAgent(init: number): Promise<number | undefined> {
  let children: number[];
  try {
    const text = await readFile(`/proc/${init}/task/${init}/children`, "utf8");
    children = text.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return undefined;
  }
  for (const pid of children) {
    try {
      const status = await readFile(`/proc/${pid}/status`, "utf8");
      const nspid = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
      if (nspid?.at(-1) === "2") return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/**
 * Watches the sandbox started by spawning `launch`; `child` is the spawned process (a
 * ChildProcess or a node-pty IPty: only its pid is used), which is bwrap itself.
 */
export function sandboxProcess(
  child: { pid: number },
  launch: SandboxStatusSource,
): SandboxProcess {
  const bwrap = child.pid;
  const bwrapStart = procStat(bwrap).then((stat) => stat?.start);
  let agent: Promise<number> | undefined;

  const bwrapRunning = async (): Promise<boolean> => {
    const start = await bwrapStart;
    return start !== undefined && isRunning(bwrap, start);
  };

  const findAgentPid = async (): Promise<number> => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const status = await readStatus(launch.statusFile);
      if (status.init !== undefined && !status.exited) {
        const pid = await findAgent(status.init);
        if (pid !== undefined) return pid;
      }
      if (status.exited || !(await bwrapRunning())) {
        // bwrap reports an exit code only for an agent it started; a failed set-up (a missing
        // bind source, no user namespaces) ends it without one.
        if ((await readStatus(launch.statusFile)).exited) {
          throw new CliError(
            "BTL_CLI_SANDBOX_EXITED",
            "the sandbox ended before its agent was seen",
          );
        }
        throw new CliError("BTL_CLI_SANDBOX_START", "bwrap ended without starting the sandbox");
      }
      if (Date.now() > deadline) {
        throw new CliError("BTL_CLI_SANDBOX_START", "the sandbox's agent did not start in time");
      }
      await sleep(POLL_MS);
    }
  };

  const waitUntil = async (done: () => Promise<boolean>, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await done()) return true;
      if (Date.now() >= deadline) return false;
      await sleep(POLL_MS);
    }
  };

  return {
    agentPid() {
      agent ??= findAgentPid();
      return agent;
    },

    async stop(graceMs) {
      const deadline = Date.now() + Math.max(0, graceMs);
      // The agent may still be starting: look for it within the grace period.
      while ((await bwrapRunning()) && Date.now() < deadline) {
        const status = await readStatus(launch.statusFile);
        if (status.exited) break;
        const pid = status.init === undefined ? undefined : await findAgent(status.init);
        if (pid !== undefined) {
          signal(pid, "SIGTERM");
          break;
        }
        await sleep(POLL_MS);
      }
      await waitUntil(async () => !(await bwrapRunning()), deadline - Date.now());
      // SECURITY: whatever ignored SIGTERM goes with bwrap's pid 1 (--die-with-parent) and the
      // pid namespace; pid 1 is killed directly too, in case bwrap already left it.
      if (await bwrapRunning()) signal(bwrap, "SIGKILL");
      const { init, pidns } = await readStatus(launch.statusFile);
      const sandboxAlive = async (): Promise<boolean> =>
        init !== undefined && pidns !== undefined && inPidns(init, pidns);
      if (init !== undefined && (await sandboxAlive())) signal(init, "SIGKILL");
      const gone = await waitUntil(
        async () => !(await bwrapRunning()) && !(await sandboxAlive()),
        KILL_TIMEOUT_MS,
      );
      if (!gone) {
        throw new CliError("BTL_CLI_SANDBOX_STOP", "a process of the sandbox outlived SIGKILL");
      }
    },
  };
}
