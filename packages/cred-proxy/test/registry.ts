// A real npm registry for the client tests: verdaccio in a child process, storage in a test
// directory, no uplinks (no network), every package readable and publishable only with a token.
// Plus the pieces the npm and pnpm tests share: an isolated client environment, and a listening
// port opened before the proxy exists (the registry must know the proxy's URL when it starts,
// and the proxy can only be made once the registry has issued its token).
import { readdir, readFile } from "node:fs/promises";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { createBaseEnv, startProcess, testdir } from "@bottle/test-utils";
import { onTestFinished } from "vitest";

const LAUNCHER = join(import.meta.dirname, "verdaccio-main.mjs");

/** A running verdaccio. */
export interface Registry {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  /** Creates a user through the registry's own API and returns the token it issued. */
  addUser(name: string, password: string): Promise<string>;
}

export interface RegistryOptions {
  /**
   * The URL clients reach the registry under (`VERDACCIO_PUBLIC_URL`): verdaccio builds the
   * `dist.tarball` URLs of its packuments from it. Without it they name the origin a request
   * arrived on, as its `Host` header says.
   */
  publicUrl?: string;
}

const CONFIG = `storage: ./storage
auth:
  htpasswd:
    file: ./htpasswd
    max_users: 10
uplinks: {}
packages:
  "**":
    access: $authenticated
    publish: $authenticated
    unpublish: $authenticated
web:
  enable: false
log: { type: stdout, format: json, level: warn }
`;

/** Starts verdaccio on 127.0.0.1 (a port the system picks); stopped when the test finishes. */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const dir = await testdir({ "config.yaml": CONFIG });
  const env = createBaseEnv({ HOME: dir });
  if (options.publicUrl !== undefined) env.VERDACCIO_PUBLIC_URL = options.publicUrl;
  const child = await startProcess(process.execPath, [LAUNCHER, join(dir, "config.yaml")], {
    env,
    cwd: dir,
    readyTimeoutMs: 20_000,
  });
  const url = child.url;
  if (url === undefined) throw new Error("the registry logged no URL");
  return {
    url,
    async addUser(name, password) {
      const response = await fetch(`${url}/-/user/org.couchdb.user:${encodeURIComponent(name)}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, password }),
      });
      const body = (await response.json()) as { token?: unknown };
      if (response.status !== 201 || typeof body.token !== "string") {
        throw new Error(`adding a registry user answered ${response.status}`);
      }
      return body.token;
    },
  };
}

/** A port that is listening before the server that will answer on it exists. */
export interface FrontDoor {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** From now on every connection is handed to `server` (its `connection` event). */
  open(server: { emit(event: "connection", socket: Socket): boolean }): void;
}

/**
 * Listens on 127.0.0.1 (a port the system picks); connections are refused until `open` names
 * the HTTP server that serves them. Closed when the test finishes.
 */
export async function frontDoor(): Promise<FrontDoor> {
  let target: { emit(event: "connection", socket: Socket): boolean } | undefined;
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    if (target === undefined) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    target.emit("connection", socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => resolve());
  });
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    open(server) {
      target = server;
    },
  };
}

/**
 * The environment of an npm or pnpm run that reads no configuration of this machine: `HOME`,
 * caches, stores and the user and global config files all inside `home`. Only the project's own
 * `.npmrc` (in the working directory) says anything.
 */
export function packageClientEnv(tool: "npm" | "pnpm", home: string): NodeJS.ProcessEnv {
  const shared = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_CACHE_HOME: join(home, ".cache"),
    XDG_DATA_HOME: join(home, ".local/share"),
    XDG_STATE_HOME: join(home, ".local/state"),
    npm_config_userconfig: join(home, "user.npmrc"),
  };
  if (tool === "pnpm") {
    return createBaseEnv({
      ...shared,
      npm_config_store_dir: join(home, "pnpm-store"),
      npm_config_cache_dir: join(home, "pnpm-cache"),
      npm_config_state_dir: join(home, "pnpm-state"),
      npm_config_update_notifier: "false",
    });
  }
  return createBaseEnv({
    ...shared,
    npm_config_globalconfig: join(home, "global.npmrc"),
    npm_config_cache: join(home, "npm-cache"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
    npm_config_loglevel: "verbose",
  });
}

/** The text of every file under `dir` (recursively), for leak checks over client logs. */
export async function readTree(dir: string): Promise<string> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch {
    return "";
  }
  const texts: string[] = [];
  for (const entry of entries) {
    try {
      texts.push(await readFile(join(dir, entry), "latin1"));
    } catch {
      // A directory, or gone already.
    }
  }
  return texts.join("\n");
}
