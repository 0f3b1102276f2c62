/** The `bottle-cred-proxy` command line: routes.json and token slots → a running proxy. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { isBottleError } from "@bottle/errors";
import { createLogger, fingerprint, type Logger } from "@bottle/log";
import { isLoopbackHost } from "@bottle/manifest/policy";
import {
  commanderExit,
  DEFAULT_PORTS,
  intOption,
  type ListenTarget,
  withOutput,
} from "@bottle/sidecar";
import { Command, Option } from "commander";
import { PROXY_ERRORS, ProxyError } from "./errors.ts";
import { loadRoutes } from "./routes.ts";
import { createCredProxy } from "./server.ts";
import { checkTokmanSettings, TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "./tokman.ts";

/** What the process gives the program; `cli.ts` passes the real ones. */
export interface ProxyProcess {
  readonly argv: readonly string[];
  /** The proxy's own environment: token slots and nothing the agent can read. */
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: { write(text: string): unknown };
  readonly stderr: NodeJS.WritableStream;
  /**
   * stderr's file descriptor when `stderr` is the process's own: the request log is then written
   * in the background (see `buffered` in @bottle/log) instead of one blocking write per request.
   */
  readonly stderrFd?: number;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
}

interface Flags {
  routes: string;
  bind: string;
  port: number;
  socket?: string;
  caFile?: string;
  idleTimeout: number;
  maxConcurrent: number;
  maxConnections: number;
  logLevel: "debug" | "info" | "warn" | "error";
}

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Tokens: each route names a slot (BOTTLE_PROXY_TOKEN_<n>) read from this process's
environment; an unset, empty or malformed slot stops the proxy before it listens.

GitHub App routes ("tokman" in routes.json) take installation tokens from tokman instead,
renewed before they expire; when any route does, both are required:
  BOTTLE_PROXY_TOKMAN_URL  tokman's base URL (https, or http to a loopback host)
  BOTTLE_PROXY_TOKMAN_KEY  this proxy's caller key at tokman (a secret: environment only)

Exit codes:
  0  stopped cleanly (SIGTERM or SIGINT; in-flight requests finished)
  1  internal error
  2  invalid options, routes.json or token slots
  3  cannot listen (address in use, socket path taken)`;

/**
 * Runs the proxy until it is stopped; returns the exit code (see `--help`). Errors are written
 * to stderr as `CODE: message`: BTL_PROXY_CONFIG and BTL_PROXY_TOKEN exit 2, BTL_PROXY_LISTEN 3.
 */
export async function runCredProxy(proc: ProxyProcess): Promise<number> {
  const program = new Command("bottle-cred-proxy")
    .description(
      "Forward requests to fixed upstreams, stripping client credentials and injecting the route's token.",
    )
    .version(VERSION, "-V, --version")
    .requiredOption(
      "--routes <file>",
      "routes.json: path prefixes, upstreams, auth and token slots",
    )
    .option(
      "--bind <addr>",
      "address to listen on (anything but loopback must be asked for)",
      "127.0.0.1",
    )
    .option("--port <n>", "TCP port (0: any free port)", intOption(0, 65535), DEFAULT_PORTS.proxy)
    .addOption(
      new Option("--socket <path>", "listen on a unix socket (mode 0600) instead of TCP").conflicts(
        ["bind", "port"],
      ),
    )
    .option("--ca-file <file>", "extra CA certificates (PEM) trusted for https upstreams")
    .option(
      "--idle-timeout <seconds>",
      "close exchanges silent this long on either side (no total limit)",
      intOption(1, 86_400),
      300,
    )
    .option(
      "--max-concurrent <n>",
      "requests proxied at once; beyond that 503",
      intOption(1, 65_536),
      128,
    )
    .option(
      "--max-connections <n>",
      "open client connections; beyond that a new one is closed at once (and counted in the log)",
      intOption(1, 1_048_576),
      1024,
    )
    .addOption(
      new Option("--log-level <level>", "log level")
        .choices(["debug", "info", "warn", "error"])
        .default("info"),
    )
    .addHelpText("after", HELP_AFTER);
  withOutput(program, proc, "BTL_PROXY_CONFIG");
  let flags: Flags;
  try {
    program.parse([...proc.argv], { from: "user" });
    flags = program.opts<Flags>();
  } catch (error) {
    const exit = commanderExit(error, PROXY_ERRORS.BTL_PROXY_CONFIG.exit);
    if (exit !== undefined) return exit;
    throw error;
  }
  const log = createLogger({
    name: "bottle-cred-proxy",
    level: flags.logLevel,
    destination: proc.stderrFd ?? proc.stderr,
    buffered: proc.stderrFd !== undefined,
  });
  try {
    return await serve(proc, flags, log);
  } catch (error) {
    if (isBottleError(error)) {
      proc.stderr.write(`${error.code}: ${error.message}\n`);
      return error.exitCode;
    }
    log.error({ err: error }, "unexpected failure");
    return 1;
  }
}

async function serve(proc: ProxyProcess, flags: Flags, log: Logger): Promise<number> {
  const routes = loadRoutes(flags.routes);
  const tokens: Record<string, string | undefined> = Object.create(null);
  for (const { tokenEnv } of routes) if (tokenEnv) tokens[tokenEnv] = proc.env[tokenEnv];
  const appRoutes = routes.filter((route) => route.tokman !== undefined);
  const tokman =
    appRoutes.length === 0
      ? undefined
      : checkTokmanSettings(
          proc.env[TOKMAN_URL_ENV],
          proc.env[TOKMAN_KEY_ENV],
          { url: TOKMAN_URL_ENV, key: TOKMAN_KEY_ENV },
          appRoutes.map((route) => route.path),
        );
  const proxy = createCredProxy({
    routes,
    tokens,
    ...(tokman ? { tokman } : {}),
    env: proc.env,
    logger: log,
    idleTimeoutMs: flags.idleTimeout * 1000,
    maxConcurrent: flags.maxConcurrent,
    maxConnections: flags.maxConnections,
    ...(flags.caFile ? { ca: readCa(flags.caFile) } : {}),
  });
  // SECURITY: a fingerprint tells the operator which token a slot (or key) holds, never the token.
  log.info(
    {
      routes: routes.map((route) => ({
        path: route.path,
        upstream: route.upstream,
        auth: "header" in route.auth ? `header ${route.auth.header}` : route.auth.scheme,
        ...(route.tokman === undefined
          ? { slot: route.tokenEnv, fingerprint: fingerprint(tokens[route.tokenEnv] ?? "") }
          : { tokman: route.tokman }),
      })),
      ...(tokman
        ? { tokman: { url: new URL(tokman.url).origin, keyFingerprint: fingerprint(tokman.key) } }
        : {}),
    },
    "routes loaded",
  );

  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) {
        log.warn({ signal }, "second signal: cutting open connections");
        proxy.server.closeAllConnections();
        return;
      }
      stopping = true;
      log.info({ signal }, "shutting down: finishing in-flight requests");
      void proxy.close().then(resolve);
    };
    proc.onSignal("SIGTERM", () => stop("SIGTERM"));
    proc.onSignal("SIGINT", () => stop("SIGINT"));
  });

  const target: ListenTarget = flags.socket
    ? { path: flags.socket }
    : { host: flags.bind, port: flags.port };
  if (!flags.socket && !isLoopbackHost(flags.bind))
    log.warn({ bind: flags.bind }, "listening beyond loopback, as --bind asked");
  let url: string;
  try {
    url = await proxy.listen(target);
  } catch (error) {
    await proxy.close(0);
    throw error;
  }
  log.info({ url }, "listening");
  await stopped;
  log.info({}, "stopped");
  return 0;
}

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ProxyError("BTL_PROXY_CONFIG", `cannot read --ca-file ${file} (${code})`, {
      cause: error,
    });
  }
}
