import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { isAbsolute, join, sep } from "node:path";
import { promisify } from "node:util";
import type { AuthContext, Connection, ServerChannel, Session } from "ssh2";
import ssh2 from "ssh2";
import { onTestFinished } from "vitest";
import { createDeferred } from "./deferred.ts";
import { gitServerEnv } from "./env.ts";

/** A git service session is killed (with its process group) after this long. */
const SESSION_TIMEOUT_MS = 60_000;
/** `GIT_PROTOCOL` values are `version=2` and similar key=value lists (gitprotocol-v2(5)). */
const GIT_PROTOCOL = /^[A-Za-z0-9=:._-]{1,256}$/;
const SERVICES = ["git-upload-pack", "git-receive-pack"] as const;
type Service = (typeof SERVICES)[number];

/** Options of {@link startSshGitServer}. */
export interface SshGitServerOptions {
  /** Only repositories under this directory are served. */
  root: string;
  /** OpenSSH public key lines (`ssh-ed25519 AAAA… comment`) allowed to log in. */
  authorizedKeys: readonly string[];
  /** PEM/OpenSSH private host key; an ed25519 key is generated when absent. */
  hostKey?: string;
  /** Close it when the current test finishes (default); false outside a test (the demo). */
  closeAfterTest?: boolean;
}

/** A running SSH git upstream on 127.0.0.1. */
export interface SshGitServer {
  host: "127.0.0.1";
  port: number;
  /** The host key's public part, `ssh-ed25519 AAAA…` (no comment). */
  hostKeyLine: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, ready for a known_hosts file. */
  knownHostsLine: string;
  /** `ssh://git@127.0.0.1:PORT/abs/path.git` for an absolute repository path. */
  url(path: string): string;
  /** Allows a public key line from now on (the comment is ignored). */
  authorize(line: string): void;
  /** Refuses a public key line from now on. */
  revoke(line: string): void;
  /** How many `git-receive-pack` sessions were started. */
  readonly pushes: number;
  /** Closes the server, every connection and every running git child. */
  close(): Promise<void>;
}

/** A generated client key pair: the private key file (0600) and its public line. */
export interface SshKey {
  privateKeyPath: string;
  publicKeyLine: string;
}

/**
 * The identity of a public key line: the base64 of its wire blob (which names the key type),
 * comment ignored. Throws when the line does not parse.
 */
function keyIdentity(line: string): string {
  const parsed = ssh2.utils.parseKey(line.trim());
  if (parsed instanceof Error) {
    throw new Error(`Expected an OpenSSH public key line, got ${JSON.stringify(line)}`, {
      cause: parsed,
    });
  }
  return parsed.getPublicSSH().toString("base64");
}

/**
 * Parses the command line git's ssh transport sends: `git-upload-pack '/abs/path.git'`, the
 * path single-quoted as by git's `sq_quote_buf` (`'` and `!` leave the quotes as `\'`, `\!`).
 */
export function parseGitCommand(command: string): { service: Service; path: string } | undefined {
  const space = command.indexOf(" ");
  const service = SERVICES.find((name) => name === command.slice(0, space));
  if (service === undefined) return undefined;
  let rest = command.slice(space + 1);
  let path = "";
  for (;;) {
    const match = /^'([^']*)'/.exec(rest);
    if (match === null) return undefined;
    path += match[1];
    rest = rest.slice(match[0].length);
    if (rest === "") return { service, path };
    const escaped = /^\\(['!])/.exec(rest);
    if (escaped === null) return undefined;
    path += escaped[1];
    rest = rest.slice(2);
  }
}

/**
 * Resolves `path` inside `root` (both realpath'd), or undefined when it is outside or odd. Like a
 * forge, a relative path (`owner/repo.git`) or an absolute one that is not under `root`
 * (`/owner/repo.git`) is taken relative to `root`.
 */
async function resolveRepo(root: string, path: string): Promise<string | undefined> {
  if (path === "" || path.split("/").some((part) => part === ".." || part === ".")) {
    return undefined;
  }
  const candidates = isAbsolute(path) ? [path, join(root, path)] : [join(root, path)];
  for (const candidate of candidates) {
    try {
      const real = await realpath(candidate);
      if (real.startsWith(`${root}${sep}`)) return real;
    } catch {}
  }
  return undefined;
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** An ed25519 public key blob: string "ssh-ed25519" (4 + 11 bytes) and the 32-byte key (4 + 32). */
const ED25519_BLOB_BYTES = 51;

/**
 * An ed25519 key pair from ssh2 that OpenSSH and ssh2 itself can read. ssh2 strips leading
 * zero bytes of the public key, so about one pair in 256 comes out malformed
 * (https://github.com/mscdex/ssh2/issues/1390): such pairs are drawn again.
 */
function generateEd25519(): { private: string; public: string } {
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync("ed25519");
    const pub = ssh2.utils.parseKey(pair.public);
    const priv = ssh2.utils.parseKey(pair.private);
    if (pub instanceof Error || priv instanceof Error) continue;
    const blob = pub.getPublicSSH();
    const probe = Buffer.from("bottle key check");
    if (blob.length !== ED25519_BLOB_BYTES || !priv.getPublicSSH().equals(blob)) continue;
    if (pub.verify(probe, priv.sign(probe)))
      return { private: pair.private, public: pair.public.trim() };
  }
  throw new Error("ssh2 generated no readable ed25519 key pair in 16 attempts");
}

/**
 * Generates an ed25519 key pair with ssh2, writes the private key (OpenSSH format, mode 0600)
 * to `dir/name` and returns its path and the public key line.
 */
export async function generateSshKey(dir: string, name = "id_ed25519"): Promise<SshKey> {
  const pair = generateEd25519();
  const privateKeyPath = join(dir, name);
  await writeFile(privateKeyPath, pair.private, { mode: 0o600 });
  // chmod after writing: the mode option is masked by the umask, and OpenSSH refuses
  // a private key that others can read.
  await chmod(privateKeyPath, 0o600);
  return { privateKeyPath, publicKeyLine: pair.public };
}

/** Options of {@link gitSshCommand}. */
export interface GitSshCommandOptions {
  identityFile: string;
  knownHostsFile: string;
}

/** Single-quotes `value` for the `sh -c` git runs `GIT_SSH_COMMAND` through. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * A `GIT_SSH_COMMAND` for the real OpenSSH client that reads no user or system config, trusts
 * only `knownHostsFile` (strictly), never prompts and offers only `identityFile`.
 */
export function gitSshCommand(options: GitSshCommandOptions): string {
  return [
    "ssh -F /dev/null",
    `-o UserKnownHostsFile=${shellQuote(options.knownHostsFile)}`,
    "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes",
    "-o BatchMode=yes -o IdentitiesOnly=yes",
    `-i ${shellQuote(options.identityFile)}`,
  ].join(" ");
}

/**
 * Starts a real SSH server (ssh2) on `127.0.0.1:0` that serves `git-upload-pack` and
 * `git-receive-pack` for repositories under `root` to clients holding an authorized key.
 * Closed, with its connections and git children, when the current test finishes (unless
 * `closeAfterTest` is false).
 */
export async function startSshGitServer(options: SshGitServerOptions): Promise<SshGitServer> {
  const root = await realpath(options.root);
  const { stdout } = await promisify(execFile)("git", ["--exec-path"], { timeout: 10_000 });
  const execPath = stdout.trim();
  const home = await mkdtemp(join(tmpdir(), "bottle-ssh-home-"));
  const hostKey = options.hostKey ?? generateEd25519().private;
  const parsedHost = ssh2.utils.parseKey(hostKey);
  if (parsedHost instanceof Error)
    throw new Error("Expected a private host key", { cause: parsedHost });
  const hostKeyLine = `${parsedHost.type} ${parsedHost.getPublicSSH().toString("base64")}`;

  const authorized = new Set(options.authorizedKeys.map(keyIdentity));
  const connections = new Set<Connection>();
  const children = new Set<ChildProcess>();
  let pushes = 0;

  const accepts = (ctx: AuthContext): boolean => {
    if (ctx.method !== "publickey") return false;
    // Looked up at every attempt, so authorize() and revoke() apply to the next login.
    if (!authorized.has(ctx.key.data.toString("base64"))) return false;
    // Without a signature the client only asks whether the key would do; it signs next.
    if (ctx.signature === undefined || ctx.blob === undefined) return true;
    const parsed = ssh2.utils.parseKey(ctx.key.data);
    return !(parsed instanceof Error) && parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo);
  };

  const refuse = (channel: ServerChannel, why: string): void => {
    channel.stderr.write(`fatal: ${why}\n`);
    channel.exit(128);
    channel.end();
  };

  const serve = async (channel: ServerChannel, command: string, protocol?: string) => {
    const parsed = parseGitCommand(command);
    if (parsed === undefined) return refuse(channel, "only git-upload-pack and git-receive-pack");
    const repo = await resolveRepo(root, parsed.path);
    if (repo === undefined) return refuse(channel, `'${parsed.path}' is not a repository here`);
    if (parsed.service === "git-receive-pack") pushes += 1;
    // SECURITY: an argument array, no shell, and an environment from an allowlist.
    const env = gitServerEnv(home);
    if (protocol !== undefined) env.GIT_PROTOCOL = protocol;
    const child = spawn(join(execPath, parsed.service), [repo], {
      env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    children.add(child);
    const timer = setTimeout(() => killGroup(child), SESSION_TIMEOUT_MS);
    child.stdin.on("error", () => {});
    channel.pipe(child.stdin);
    child.stdout.pipe(channel, { end: false });
    child.stderr.pipe(channel.stderr, { end: false });
    channel.on("close", () => killGroup(child));
    child.on("error", () => refuse(channel, `cannot run ${parsed.service}`));
    child.on("close", (code) => {
      clearTimeout(timer);
      children.delete(child);
      channel.exit(code ?? 128);
      channel.end();
    });
  };

  const onSession = (session: Session): void => {
    let protocol: string | undefined;
    session.on("env", (accept, reject, info) => {
      if (info.key === "GIT_PROTOCOL" && GIT_PROTOCOL.test(info.val)) {
        protocol = info.val;
        accept?.();
      } else {
        reject?.();
      }
    });
    session.on("exec", (accept, _reject, info) => {
      const channel = accept();
      serve(channel, info.command, protocol).catch(() => refuse(channel, "internal error"));
    });
    session.on("shell", (_accept, reject) => reject());
    session.on("subsystem", (_accept, reject) => reject());
  };

  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    connections.add(client);
    // A client that gives up (unknown host key, refused key) resets the socket: not an error.
    client.on("error", () => {});
    client.on("close", () => connections.delete(client));
    client.on("authentication", (ctx) => {
      if (accepts(ctx)) ctx.accept();
      else ctx.reject(["publickey"]);
    });
    client.on("ready", () => {
      client.on("session", (accept) => onSession(accept()));
    });
  });
  const { promise: listening, resolve, reject } = createDeferred<void>();
  server.once("error", reject);
  server.listen(0, "127.0.0.1", () => resolve());
  await listening;
  server.off("error", reject);
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= new Promise<void>((resolveClose) => {
      for (const child of children) killGroup(child);
      for (const client of connections) client.end();
      server.close(() => resolveClose());
    }).then(() => rm(home, { recursive: true, force: true }));
    return closed;
  };
  if (options.closeAfterTest !== false) onTestFinished(() => close());

  return {
    host: "127.0.0.1",
    port,
    hostKeyLine,
    knownHostsLine: `[127.0.0.1]:${port} ${hostKeyLine}`,
    url(path) {
      if (!isAbsolute(path)) throw new Error(`Expected an absolute path, got ${path}`);
      return `ssh://git@127.0.0.1:${port}${path}`;
    },
    authorize(line) {
      authorized.add(keyIdentity(line));
    },
    revoke(line) {
      authorized.delete(keyIdentity(line));
    },
    get pushes() {
      return pushes;
    },
    close,
  };
}
