/**
 * Where a bottle keeps what runs: `$XDG_STATE_HOME/bottle/<name>/` (0700), with its record
 * (`bottle.json`), the sidecars' sockets, the git gate's stage, private files and logs. A
 * record names live processes by pid *and* start time, so a reused pid is never signalled.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { CliError } from "../errors.ts";

/** A bottle's name: what `--name` takes (a directory name and a gate task). */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A process of the bottle: its pid and its start time (`/proc/<pid>/stat` field 22). */
export interface ProcessRef {
  readonly pid: number;
  readonly start: string;
}

/** One sidecar as the record holds it. */
export interface SidecarRecord extends ProcessRef {
  /** `gate`, `proxy` or `tokman`. */
  readonly name: string;
  /** Its unix socket (inside the bottle's directory), for the sidecars the agent reaches. */
  readonly socket?: string;
  readonly log: string;
  /** Its container's name (docker backend). */
  readonly container?: string;
}

/** `bottle.json`. */
export interface BottleRecord {
  readonly version: 1;
  readonly name: string;
  /** The manifest's absolute path and its `name` (the gate project). */
  readonly manifest: string;
  readonly project: string;
  readonly backend: "sandbox" | "docker";
  /** `starting` until every sidecar listens; `stopped` once torn down (logs kept). */
  readonly state: "starting" | "running" | "stopped";
  readonly createdAt: string;
  readonly stoppedAt?: string;
  /** Why the bottle stopped, and the agent's exit code (`bottle run`). */
  readonly ended?: { readonly reason: string; readonly exitCode?: number };
  /**
   * The `bottle run` that owns the bottle and tears it down; null for `bottle up`, whose
   * bottle runs until `bottle down`.
   */
  readonly owner: ProcessRef | null;
  readonly sidecars: readonly SidecarRecord[];
  /** Set once the agent runs (`bottle run`). */
  readonly agent?: ProcessRef;
  /** The upstream URL of each mirror, to give them back to the mirror cache. */
  readonly mirrors: ReadonlyArray<{ readonly path: string; readonly upstream: string }>;
}

/** The paths of one bottle. */
export interface BottlePaths {
  readonly root: string;
  readonly record: string;
  /** Bound read-only into the sandbox at /run/bottle: only the agent-facing sockets. */
  readonly sockets: string;
  /** The git gate's stage directory (mirrors and the gate's private state). */
  readonly stage: string;
  /** Gate tokens, routes.json, tokman's configuration and socket: never in the agent's reach. */
  readonly private: string;
  readonly logs: string;
  /** What the sandbox backend writes (its /etc, the forwarder). */
  readonly sandbox: string;
}

/** `$XDG_STATE_HOME/bottle`, or `~/.local/state/bottle`. */
export function stateRoot(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg?.startsWith("/")) return join(xdg, "bottle");
  const home = env.HOME;
  if (!home?.startsWith("/")) {
    throw new CliError(
      "BTL_CLI_STATE",
      "neither XDG_STATE_HOME nor HOME is an absolute path: set one to say where bottles live",
    );
  }
  return join(home, ".local", "state", "bottle");
}

/** `$XDG_CACHE_HOME/bottle`, or `~/.cache/bottle`: the mirror cache. */
export function cacheRoot(env: Readonly<Record<string, string | undefined>>): string {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg?.startsWith("/")) return join(xdg, "bottle");
  const home = env.HOME;
  if (!home?.startsWith("/")) {
    throw new CliError("BTL_CLI_STATE", "neither XDG_CACHE_HOME nor HOME is an absolute path");
  }
  return join(home, ".cache", "bottle");
}

export function bottlePaths(root: string, name: string): BottlePaths {
  const dir = join(root, name);
  return {
    root: dir,
    record: join(dir, "bottle.json"),
    sockets: join(dir, "sockets"),
    stage: join(dir, "stage"),
    private: join(dir, "private"),
    logs: join(dir, "logs"),
    sandbox: join(dir, "sandbox"),
  };
}

/** Creates the bottle's directories, each 0700 whatever the umask. */
export function createBottleDirs(paths: BottlePaths): void {
  mkdirSync(join(paths.root, ".."), { recursive: true, mode: 0o700 });
  mkdirSync(paths.root, { mode: 0o700 });
  for (const dir of [paths.sockets, paths.stage, paths.private, paths.logs, paths.sandbox]) {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  chmodSync(paths.root, 0o700);
}

/** Writes the record atomically (a rename), mode 0600. */
export function writeRecord(paths: BottlePaths, record: BottleRecord): void {
  const temp = `${paths.record}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, paths.record);
}

/** The record of bottle `name`, or null when there is none (or only a half-made directory). */
export function readRecord(paths: BottlePaths): BottleRecord | null {
  let text: string;
  try {
    text = readFileSync(paths.record, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    const record = JSON.parse(text) as BottleRecord;
    if (record.version !== 1 || typeof record.name !== "string") throw new Error("version");
    return record;
  } catch {
    throw new CliError("BTL_CLI_STATE", `${paths.record} is not a bottle record`);
  }
}

/** Every bottle directory under `root`, by name (records or half-made ones). */
export function listBottles(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && NAME_PATTERN.test(entry.name))
    .map((entry) => entry.name)
    .sort();
}

/** Removes the bottle's directory (logs included). */
export function removeBottleDir(paths: BottlePaths): void {
  rmSync(paths.root, { recursive: true, force: true });
}

/** Fields 3 onwards of /proc/<pid>/stat (state first), or null when the process is gone. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** The start time of `pid` (field 22 of /proc/<pid>/stat), or null when it is gone. */
export function startTimeOf(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** A reference to a running process. */
export function processRef(pid: number): ProcessRef {
  return { pid, start: startTimeOf(pid) ?? "" };
}

/**
 * Whether the process the reference names still runs: same pid, same start time, and not a
 * zombie (which has exited and only waits for its parent to read its status).
 */
export function isAlive(ref: ProcessRef): boolean {
  const fields = statFields(ref.pid);
  return fields !== null && fields[19] === ref.start && fields[0] !== "Z";
}
