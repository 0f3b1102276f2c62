import type { ChildProcess } from "node:child_process";
import { createDeferred } from "./deferred.ts";

/** How long a process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 2_000;

/** How a child ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned child's lifetime: when it closed, why it failed to start, and how to stop it. */
export interface ChildSupervisor {
  /** Settles once the child exited and its stdio closed (or it failed to spawn). */
  readonly closed: Promise<ProcessExit>;
  isClosed(): boolean;
  /** The spawn error (for example ENOENT), if the child never started. */
  spawnError(): Error | undefined;
  /** Signals the process group, escalates to SIGKILL after {@link KILL_GRACE_MS}, awaits close. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Sends `signal` to the whole process group led by `pid` (the child must have been spawned with
 * `detached: true`); a group that is already gone is ignored.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

/** Resolves `true` if `promise` settles within `ms`, else `false`; never leaves a timer behind. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Watches a child spawned with `detached: true` so that its whole group can be stopped. */
export function superviseChild(child: ChildProcess): ChildSupervisor {
  let closed = false;
  let failure: Error | undefined;
  const { promise, resolve } = createDeferred<ProcessExit>();
  child.once("close", (code: number | null, signal: NodeJS.Signals | null) => {
    closed = true;
    resolve({ code, signal });
  });
  child.on("error", (error) => {
    // 'close' is not guaranteed after a failed spawn, so settle here for that case only.
    if (child.pid !== undefined) return;
    failure = error;
    closed = true;
    resolve({ code: null, signal: null });
  });
  return {
    closed: promise,
    isClosed: () => closed,
    spawnError: () => failure,
    async stop(signal = "SIGTERM") {
      const pid = child.pid;
      if (closed || pid === undefined) return;
      signalGroup(pid, signal);
      if (await settlesWithin(promise, KILL_GRACE_MS)) return;
      signalGroup(pid, "SIGKILL");
      await promise;
    },
  };
}
