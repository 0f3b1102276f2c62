/**
 * The gate: an HTTP/1.1 server that routes only git's smart-HTTP endpoints, authenticates
 * per-task tokens scoped to a project, runs the access hook before upload-pack, and hands the
 * request to `git http-backend` with gate-owned hooks.
 */

import { execFileSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, realpathSync, rmSync, statSync } from "node:fs";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { createTokenVerifier, type TokenVerifier } from "@bottle/gate-tokens";
import { type Logger, silentLogger } from "@bottle/log";
import {
  answerHealth,
  answerMalformedRequests,
  capConnections,
  type ListenTarget,
  listenOn,
  logRequest,
  nodeHttp,
  type RequestRecord,
  startRequestRecord,
  trackInFlight,
  writeErrorAnswer,
} from "@bottle/sidecar";
import { createAccessHook } from "./access-hook.ts";
import { createAdminCheck, readCredential } from "./auth.ts";
import { runHttpBackend } from "./cgi.ts";
import { GATE_ERRORS, GateError } from "./errors.ts";
import { createLimiter } from "./limiter.ts";
import { type GitRoute, parseGitRoute } from "./routes.ts";

/** The gate's `request` log record (see the README's Logging section). */
interface GateRecord extends RequestRecord {
  project?: string;
  repo?: string | null;
  service?: string;
  endpoint?: string;
  task?: string;
  tokenId?: string;
  tokenFile?: string;
  git?: string;
}

/** Options of `createGateServer`; validated once, then frozen. */
export interface GateServerOptions {
  /** Directory holding `<project>.git` and `<project>/<repo>.git` (GIT_PROJECT_ROOT). */
  readonly basePath: string;
  /** The gate token file (see @bottle/gate-tokens); re-read when it changes. */
  readonly tokenFile: string;
  /** A token with access to every project; only from a flag or the environment. */
  readonly adminToken?: string;
  /** Command (argument array) run before upload-pack; non-zero exit refuses the fetch. */
  readonly accessHook?: readonly string[];
  /** Gate-owned hooks directory handed to git as core.hooksPath (default: an empty one). */
  readonly hooksDir?: string;
  /** Realm in the `WWW-Authenticate` challenge. */
  readonly realm?: string;
  /** Requests served at once (default 32) and waiting (default 8 × `maxConcurrent`) before 503. */
  readonly maxConcurrent?: number;
  readonly maxQueued?: number;
  /** Open connections at once (default 1024); beyond it new ones are closed unanswered. */
  readonly maxConnections?: number;
  /** Time to receive request headers (default 30 s). */
  readonly headersTimeoutMs?: number;
  /** A connection silent for this long is closed (default 300 s); there is no total limit. */
  readonly idleTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this (default 60 s). */
  readonly keepAliveTimeoutMs?: number;
  /** The access hook's time limit (default 120 s). */
  readonly hookTimeoutMs?: number;
  readonly logger?: Logger;
  readonly now?: () => Date;
  /** PATH for git and the hook (default the gate's own PATH). */
  readonly path?: string;
}

/** A running gate. */
export interface GateServer {
  /** Listens on TCP, a unix socket (mode 0600) or an inherited descriptor; resolves to its URL. */
  listen(target: ListenTarget): Promise<string>;
  /** Serves one already-connected socket (inetd-style activation). */
  handleConnection(socket: Socket): void;
  /** Stops accepting, lets in-flight requests finish, then resolves. */
  close(): Promise<void>;
  address(): ReturnType<Server["address"]>;
  readonly server: Server;
}

/**
 * Creates the gate. Throws `GateError` BTL_GATE_CONFIG when the base path or the hooks
 * directory is not a directory, or `maxConnections` is not a positive integer.
 */
export function createGateServer(options: GateServerOptions): GateServer {
  const log = options.logger ?? silentLogger;
  const maxConnections = options.maxConnections ?? 1024;
  if (!Number.isSafeInteger(maxConnections) || maxConnections < 1) {
    throw new GateError(
      "BTL_GATE_CONFIG",
      `Expected \`maxConnections\` to be a positive integer, got ${maxConnections}`,
    );
  }
  const basePath = realDir(options.basePath, "--base-path");
  const ownDirs: string[] = [];
  const hooksDir = options.hooksDir
    ? realDir(options.hooksDir, "hooks directory")
    : privateDir("hooks", ownDirs);
  const home = privateDir("home", ownDirs);
  const realm = options.realm ?? "bottle-gate";
  const verifier: TokenVerifier = createTokenVerifier({
    file: options.tokenFile,
    logger: log,
    ...(options.now ? { now: options.now } : {}),
  });
  const isAdmin = createAdminCheck(options.adminToken);
  const maxConcurrent = options.maxConcurrent ?? 32;
  const limiter = createLimiter(maxConcurrent, options.maxQueued ?? maxConcurrent * 8);
  const PATH = options.path ?? "/usr/local/bin:/usr/bin:/bin";
  const httpBackend = findHttpBackend(PATH);
  // The base of every git child's environment: http-backend (and the hooks it runs) and the
  // access hook. SECURITY: git reads the objects refs name, never substitutes: a pushed or
  // existing refs/replace/* is ignored, and so are grafts (a path that cannot exist: git is
  // silent about ENOTDIR, while an existing empty file prints a deprecation hint).
  const baseEnv = {
    PATH,
    HOME: home,
    LANG: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_NO_REPLACE_OBJECTS: "1",
    GIT_GRAFT_FILE: "/dev/null/no-grafts",
  };
  const hook = options.accessHook?.length
    ? createAccessHook({
        argv: options.accessHook,
        env: baseEnv,
        ...(options.hookTimeoutMs ? { timeoutMs: options.hookTimeoutMs } : {}),
      })
    : undefined;
  // SECURITY: hooks come from the gate's directory, never from the repository; git reads these
  // through GIT_CONFIG_COUNT, which outranks every config file. The router is the only door to
  // files: it passes `HEAD` and the smart-HTTP endpoints, nothing else.
  const gitConfig: Array<[string, string]> = [
    ["core.hooksPath", hooksDir],
    ["http.receivepack", "true"],
    ["http.uploadpack", "true"],
    ["uploadpack.allowFilter", "true"],
    ["receive.fsckObjects", "true"],
  ];
  const configEnv: Record<string, string> = { GIT_CONFIG_COUNT: String(gitConfig.length) };
  gitConfig.forEach(([key, value], i) => {
    configEnv[`GIT_CONFIG_KEY_${i}`] = key;
    configEnv[`GIT_CONFIG_VALUE_${i}`] = value;
  });

  let closing: Promise<void> | undefined;

  const server = nodeHttp.createServer({
    headersTimeout: options.headersTimeoutMs ?? 30_000,
    requestTimeout: 0, // SECURITY: no total limit: a long push must not be cut
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 60_000,
    connectionsCheckingInterval: 5_000,
  });
  server.timeout = options.idleTimeoutMs ?? 300_000;
  const connections = capConnections(server, {
    max: maxConnections,
    log,
    code: "BTL_GATE_TOO_MANY_CONNECTIONS",
  });
  const inFlight = trackInFlight(server);
  server.on("request", (req, res) => void serve(req, res, false));
  // Answer auth before telling the client to send a large body.
  server.on("checkContinue", (req, res) => void serve(req, res, true));
  answerMalformedRequests(server, log, inFlight);

  async function serve(req: IncomingMessage, res: ServerResponse, expectContinue: boolean) {
    const started = performance.now();
    inFlight.track(req, res);
    const entry: GateRecord = startRequestRecord(req, {});
    try {
      await handle(req, res, expectContinue, entry);
    } catch (error) {
      log.error({ reqId: entry.reqId, err: error }, "unexpected failure");
      refuse(res, "BTL_INTERNAL", "internal error");
    }
    if (!res.closed) await new Promise((resolve) => res.once("close", resolve));
    logRequest(log, entry, res, started);
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    expectContinue: boolean,
    entry: GateRecord,
  ) {
    if (closing !== undefined) {
      res.shouldKeepAlive = false;
      return refuse(res, "BTL_GATE_SHUTTING_DOWN", "the gate is shutting down", {
        "retry-after": "5",
      });
    }
    if (answerHealth(req, res)) return;
    const route = parseGitRoute(req.method ?? "", req.url ?? "");
    if (route === undefined) return refuse(res, "BTL_GATE_NOT_FOUND", "not found");
    Object.assign(entry, {
      project: route.project,
      repo: route.repo ?? null,
      service: route.service,
      endpoint: route.endpoint,
    });

    const credential = readCredential(req.headers.authorization);
    if (credential.kind !== "token")
      return challenge(
        res,
        entry,
        credential.kind === "none" ? "no credentials" : "malformed credentials",
      );
    let task: string;
    if (isAdmin(credential.token)) {
      task = "admin";
    } else {
      const result = verifier.verify(credential.token);
      if (!result.ok && result.reason === "unavailable") {
        const state = verifier.state();
        entry.code = "BTL_GATE_TOKENS_UNAVAILABLE";
        if (!state.ok) entry.tokenFile = state.code;
        return refuse(res, "BTL_GATE_TOKENS_UNAVAILABLE", "token store unavailable", {
          "retry-after": "5",
        });
      }
      if (!result.ok) return challenge(res, entry, `token ${result.reason}`);
      const record = result.record;
      Object.assign(entry, { task: record.task, tokenId: record.id });
      if (record.project !== route.project)
        return forbid(res, entry, "the token is for another project");
      if (!record.scopes.includes(route.scope))
        return forbid(res, entry, `the token lacks the ${route.scope} scope`);
      task = record.task;
    }
    entry.task = task;

    const repoDir = resolveRepo(route);
    if (repoDir === undefined) return refuse(res, "BTL_GATE_NOT_FOUND", "not found");

    const release = await limiter.acquire();
    if (release === undefined)
      return refuse(res, "BTL_GATE_BUSY", "too many requests", { "retry-after": "1" });
    try {
      if (hook && route.service === "git-upload-pack" && route.endpoint !== "/HEAD") {
        const result = await hook(repoDir, route.project, route.repo ?? route.project);
        if (!result.ok) {
          entry.code = "BTL_GATE_HOOK_REFUSED";
          // git prints a text/plain error body as `remote:` lines (remote-curl.c show_http_message).
          return refuse(res, "BTL_GATE_HOOK_REFUSED", result.reason);
        }
      }
      if (res.destroyed) return;
      if (expectContinue) res.writeContinue();
      const outcome = await runHttpBackend(
        req,
        res,
        {
          projectRoot: basePath,
          pathInfo: `/${route.repoPath}${route.endpoint}`,
          query: route.query,
          remoteUser: task,
          env: {
            ...baseEnv,
            ...configEnv,
            BOTTLE_GATE_PROJECT: route.project,
            BOTTLE_GATE_TASK: task,
          },
        },
        httpBackend,
      );
      entry.bytesIn = outcome.bytesIn;
      entry.bytesOut = outcome.bytesOut;
      if (outcome.status >= 500 && outcome.stderr) entry.git = outcome.stderr.slice(0, 1024);
    } finally {
      release();
    }
  }

  function challenge(res: ServerResponse, entry: GateRecord, why: string) {
    entry.reason = why;
    refuse(res, "BTL_GATE_UNAUTHENTICATED", "authentication required", {
      "www-authenticate": `Basic realm="${realm}", charset="UTF-8"`,
    });
  }

  function forbid(res: ServerResponse, entry: GateRecord, why: string) {
    entry.reason = why;
    refuse(res, "BTL_GATE_FORBIDDEN", why);
  }

  /** SECURITY: the repository must be a directory inside the base path after resolving links. */
  function resolveRepo(route: GitRoute): string | undefined {
    try {
      const real = realpathSync(join(basePath, route.repoPath));
      if (!real.startsWith(basePath + sep) || !statSync(real).isDirectory()) return undefined;
      return real;
    } catch {
      return undefined;
    }
  }

  return {
    server,
    listen: (target) =>
      listenOn(
        server,
        target,
        (message, options) => new GateError("BTL_GATE_LISTEN", message, options),
      ),
    handleConnection(socket) {
      server.emit("connection", socket);
    },
    address: () => server.address(),
    close() {
      closing ??= inFlight.drain().then(() => {
        connections.flush();
        for (const dir of ownDirs) rmSync(dir, { recursive: true, force: true });
      });
      return closing;
    },
  };
}

/** A short, generic text answer (git shows it as `remote:` lines); never secrets or paths. */
function refuse(
  res: ServerResponse,
  code: keyof typeof GATE_ERRORS,
  message: string,
  headers: Record<string, string> = {},
) {
  writeErrorAnswer(res, GATE_ERRORS, code, message, { format: "text", headers });
}

/**
 * The `git-http-backend` program itself, from `git --exec-path`: spawning it directly saves
 * the exec through the `git` wrapper on every request (about 5 ms here). Falls back to the
 * wrapper when git does not say.
 */
function findHttpBackend(PATH: string): readonly [string, ...string[]] {
  try {
    const dir = execFileSync("git", ["--exec-path"], {
      env: { PATH },
      encoding: "utf8",
      timeout: 10_000,
    }).trim();
    const program = join(dir, "git-http-backend");
    accessSync(program, constants.X_OK);
    return [program];
  } catch {
    return ["git", "http-backend"];
  }
}

function realDir(path: string, what: string): string {
  try {
    const real = realpathSync(path);
    if (statSync(real).isDirectory()) return real;
  } catch {}
  throw new GateError("BTL_GATE_CONFIG", `${what} ${path} is not a directory`);
}

/** An empty directory only the gate can read (mkdtemp creates it 0700); removed on close. */
function privateDir(name: string, owned: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `bottle-gate-${name}-`));
  owned.push(dir);
  return dir;
}
