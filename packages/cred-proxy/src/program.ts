/** The `bottle-cred-proxy` command line: routes.json and token slots → a running proxy. */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fingerprint, type Logger } from "@bottle/log";
import type { CommonFlags, SidecarProcess } from "@bottle/sidecar";
import { DEFAULT_PORTS, runSidecar } from "@bottle/sidecar";
import { TOKMAN_KEY_ENV, TOKMAN_URL_ENV } from "@bottle/tokman/client";
import { ProxyError } from "./errors.ts";
import { loadRoutes } from "./routes.ts";
import { type CredProxy, createCredProxy } from "./server.ts";
import { checkTokmanSettings } from "./tokman.ts";

/**
 * What the process gives the program; `cli.ts` passes the real ones. Its environment is the
 * proxy's own: token slots, and nothing the agent can read.
 */
export type ProxyProcess = SidecarProcess;

interface Flags extends CommonFlags {
  routes: string;
  caFile?: string;
}

/** Where tokman's URL and this proxy's caller key there are read: the names git-gate reads too. */
const TOKMAN_ENV = { url: TOKMAN_URL_ENV, key: TOKMAN_KEY_ENV } as const;
/** The former names, read (with a warning) when neither of the current ones is set. */
const DEPRECATED_TOKMAN_ENV = {
  url: "BOTTLE_PROXY_TOKMAN_URL",
  key: "BOTTLE_PROXY_TOKMAN_KEY",
} as const;

const require = createRequire(import.meta.url);
const VERSION = (require("../package.json") as { version: string }).version;

const HELP_AFTER = `
Tokens: each route names a slot (BOTTLE_PROXY_TOKEN_<n>) read from this process's
environment; an unset, empty or malformed slot stops the proxy before it listens.

GitHub App routes ("tokman" in routes.json) take installation tokens from tokman instead,
renewed before they expire; when any route does, both are required:
  ${TOKMAN_ENV.url}  tokman's base URL (https, or http to a loopback host)
  ${TOKMAN_ENV.key}  this proxy's caller key at tokman (a secret: environment only)
(deprecated: ${DEPRECATED_TOKMAN_ENV.url} and ${DEPRECATED_TOKMAN_ENV.key}, read when
neither of the above is set)

Listeners (first that applies): a socket passed by systemd (LISTEN_FDS); --socket PATH
(mode 0600); --bind/--port.

Exit codes:
  0  stopped cleanly (SIGTERM or SIGINT; in-flight requests finished)
  1  internal error, or requests cut by a second signal or after the 30 s grace period
  2  invalid options, routes.json or token slots
  3  cannot listen (address in use, socket path taken)`;

/**
 * Runs the proxy until it is stopped; returns the exit code (see `--help`). Errors are written
 * to stderr as `CODE: message`: BTL_PROXY_CONFIG and BTL_PROXY_TOKEN exit 2, BTL_PROXY_LISTEN 3.
 */
export function runCredProxy(proc: ProxyProcess): Promise<number> {
  return runSidecar<Flags>(proc, {
    name: "bottle-cred-proxy",
    description:
      "Forward requests to fixed upstreams, stripping client credentials and injecting the route's token.",
    version: VERSION,
    usageCode: "BTL_PROXY_CONFIG",
    defaults: {
      port: DEFAULT_PORTS.proxy,
      maxConcurrent: 128,
      help: {
        idleTimeout: "close exchanges silent this long on either side (no total limit)",
        maxConcurrent: "requests proxied at once; beyond that 503",
      },
    },
    options: (command) =>
      command
        .requiredOption(
          "--routes <file>",
          "routes.json: path prefixes, upstreams, auth and token slots",
        )
        .option("--ca-file <file>", "extra CA certificates (PEM) trusted for https upstreams"),
    help: HELP_AFTER,
    start: (flags, log) => start(proc, flags, log),
  });
}

/** The proxy the flags and the environment describe, its routes logged (never a token). */
function start(proc: ProxyProcess, flags: Flags, log: Logger): CredProxy {
  const routes = loadRoutes(flags.routes);
  const tokens: Record<string, string | undefined> = Object.create(null);
  for (const { tokenEnv } of routes) if (tokenEnv) tokens[tokenEnv] = proc.env[tokenEnv];
  const appRoutes = routes.filter((route) => route.tokman !== undefined);
  const names = tokmanEnvNames(proc.env);
  if (appRoutes.length > 0 && names === DEPRECATED_TOKMAN_ENV)
    log.warn(
      { deprecated: Object.values(DEPRECATED_TOKMAN_ENV), use: Object.values(TOKMAN_ENV) },
      "deprecated environment variables: rename them",
    );
  const tokman =
    appRoutes.length === 0
      ? undefined
      : checkTokmanSettings(
          proc.env[names.url],
          proc.env[names.key],
          names,
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
  return proxy;
}

/** The current names, or the deprecated ones when only those are set. */
function tokmanEnvNames(
  env: Readonly<Record<string, string | undefined>>,
): typeof TOKMAN_ENV | typeof DEPRECATED_TOKMAN_ENV {
  const set = (names: { url: string; key: string }) =>
    env[names.url] !== undefined || env[names.key] !== undefined;
  return !set(TOKMAN_ENV) && set(DEPRECATED_TOKMAN_ENV) ? DEPRECATED_TOKMAN_ENV : TOKMAN_ENV;
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
