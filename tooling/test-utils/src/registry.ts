/**
 * A real npm registry for tests: verdaccio in a child process on 127.0.0.1, its storage in a
 * test directory, no uplinks (nothing leaves the machine), one user, and every read and publish
 * only with that user's token. Packages are published with the real `npm publish`.
 */
import { randomUUID } from "node:crypto";
import { extname, join } from "node:path";
import { onTestFinished } from "vitest";
import { createBaseEnv } from "./env.ts";
import { runProcess, startProcess } from "./process.ts";
import { testdir } from "./temp-dir.ts";

/** The launcher beside this file: `.js` in dist/, `.ts` when run from the sources. */
const LAUNCHER = join(import.meta.dirname, `verdaccio-main${extname(import.meta.filename)}`);
const USER = "bottle-test";

// One user at most (`max_users: 1`): once the helper has made its own, nobody registers another,
// so every request needs that user's token. `$authenticated` on every package, `uplinks: {}`.
const CONFIG = `storage: ./storage
auth:
  htpasswd:
    file: ./htpasswd
    max_users: 1
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

/** Options of {@link startRegistry}. */
export interface RegistryOptions {
  /**
   * The URL clients reach the registry under (`VERDACCIO_PUBLIC_URL`, e.g. a proxy route):
   * verdaccio writes the `dist.tarball` URLs of its packuments on it. Without it they name the
   * origin a request arrived on (its `Host` header).
   */
  publicUrl?: string;
}

/** A tiny package for {@link Registry.publish}: `index.js` exports `text`. */
export interface TinyPackage {
  name: string;
  /** Default `1.0.0`. */
  version?: string;
  /** What `require(name)` returns; default `hello from <name>`. */
  text?: string;
}

/** A running verdaccio. */
export interface Registry {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  /** The token the registry issued to its only user: a secret, needed for every request. */
  token: string;
  /** Publishes a tiny package with `npm publish` and the token, straight to the registry. */
  publish(pkg: TinyPackage): Promise<void>;
  /** Stops verdaccio; calling it again is a no-op. */
  close(): Promise<void>;
}

/**
 * The environment of an npm run that reads no configuration of this machine: `HOME`, its cache
 * and its user and global config files in `home`.
 */
function isolatedNpmEnv(home: string): NodeJS.ProcessEnv {
  return createBaseEnv({
    HOME: home,
    npm_config_userconfig: join(home, "user.npmrc"),
    npm_config_globalconfig: join(home, "global.npmrc"),
    npm_config_cache: join(home, "npm-cache"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
  });
}

/**
 * Starts verdaccio on `127.0.0.1` (a port the system picks), creates its one user through the
 * registry's own API and returns its token. Stopped, and its storage removed, when the current
 * test finishes. Rejects when verdaccio does not start within 20 s or refuses the user.
 */
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
  const password = `pw-${randomUUID()}`;
  const response = await fetch(`${url}/-/user/org.couchdb.user:${USER}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: USER, password }),
  });
  const created = (await response.json()) as { token?: unknown };
  if (response.status !== 201 || typeof created.token !== "string")
    throw new Error(`adding the registry's user answered ${response.status}`);
  const token = created.token;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= child.kill();
    return closed;
  };
  onTestFinished(() => close());

  const publish = async (pkg: TinyPackage): Promise<void> => {
    const version = pkg.version ?? "1.0.0";
    const text = pkg.text ?? `hello from ${pkg.name}`;
    const source = await testdir({
      "package.json": JSON.stringify({ name: pkg.name, version, main: "index.js" }),
      "index.js": `module.exports = ${JSON.stringify(text)};\n`,
      // SECURITY: the token only in this throwaway directory's .npmrc, never in argv.
      ".npmrc": `registry=${url}/\n${url.slice("http:".length)}/:_authToken=${token}\n`,
    });
    const result = await runProcess("npm", ["publish"], {
      cwd: source,
      env: isolatedNpmEnv(await testdir()),
      timeoutMs: 60_000,
    });
    if (result.code !== 0) {
      // Only npm's error code: its log is not quoted, in case it ever echoed the .npmrc.
      const code = /npm (?:error|ERR!) code (\S+)/.exec(result.stderr)?.[1] ?? "no code";
      throw new Error(`npm publish of ${pkg.name}@${version} exited ${result.code} (${code})`);
    }
  };

  return { url, token, publish, close };
}
