/**
 * A GitHub App on the GitHub fake, with tokman's configuration for it, and (in tests) a real
 * tokman in process: what the tokman, cred-proxy and git-gate tests and the tokman bench share.
 */
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onTestFinished } from "vitest";
import { serveGitHubFake } from "./github-fake.ts";
import type { GitHubFake, GitHubFakeInstallation } from "./github-fake-types.ts";
import { testdir } from "./temp-dir.ts";

/** The app's id at the fake; tokman knows it as app `acme`. */
export const FIXTURE_APP_ID = 42;
/** Where the frozen clock starts. */
const T0 = Date.parse("2026-12-01T10:00:00Z");

/** A caller tokman knows: its policy, and its key (default a random `btk_…`). */
export interface FixtureCaller {
  readonly repositories: readonly string[];
  readonly permissions: Readonly<Record<string, string>>;
  readonly key?: string;
}

/** Options of {@link serveGitHubAppFixture} and {@link startTokmanWithGitHubFake}. */
export interface GitHubAppFixtureOptions {
  /** Callers by name (default `caller`: `acme/*`, contents write, metadata read). */
  readonly callers?: Readonly<Record<string, FixtureCaller>>;
  /**
   * The app's installations (default: `acme` with `api` (1) and `docs` (2), contents write,
   * metadata read, issues write; `frozen` with `ice` (3), suspended).
   */
  readonly installations?: ReadonlyArray<Omit<GitHubFakeInstallation, "appId">>;
  /** The real time (for a tokman process) instead of a frozen clock that `advance` moves. */
  readonly realTime?: boolean;
  readonly skewMs?: number;
  readonly tokenLength?: number;
  /** tokman holds another private key than the one GitHub knows (a misconfigured app). */
  readonly wrongKey?: boolean;
  /** More lines of tokman's configuration (`renew_margin: 60`, `store: …`). */
  readonly config?: string;
  /** Where the key file and `tokman.yaml` go (default a fresh directory). */
  readonly dir?: string;
}

/** The fake, the app's private key file and tokman's configuration, on one clock. */
export interface GitHubAppFixture {
  readonly fake: GitHubFake;
  readonly dir: string;
  /** The app's private key (PKCS#1 PEM, mode 0600). */
  readonly keyFile: string;
  /** tokman's configuration (`tokman.yaml`, mode 0600), and its text. */
  readonly configFile: string;
  readonly configText: string;
  /** Each caller's key, by name; `key` is the first caller's. */
  readonly keys: Readonly<Record<string, string>>;
  readonly key: string;
  clock(): Date;
  /** Moves the shared clock. */
  advance(ms: number): void;
  close(): Promise<void>;
}

const DEFAULT_INSTALLATIONS: ReadonlyArray<Omit<GitHubFakeInstallation, "appId">> = [
  {
    id: 7,
    account: { login: "acme", type: "Organization" },
    repositories: [
      { id: 1, name: "api" },
      { id: 2, name: "docs" },
    ],
    permissions: { contents: "write", metadata: "read", issues: "write" },
  },
  {
    id: 8,
    account: { login: "frozen", type: "Organization" },
    repositories: [{ id: 3, name: "ice" }],
    permissions: { contents: "write", metadata: "read" },
    suspended: true,
  },
];

/**
 * Starts the GitHub fake with app 42 installed and writes tokman's configuration for it.
 * Usable outside tests (benchmarks): the caller closes it (a directory it made is removed).
 */
export async function serveGitHubAppFixture(
  options: GitHubAppFixtureOptions = {},
): Promise<GitHubAppFixture> {
  let offset = 0;
  const clock = options.realTime
    ? () => new Date(Date.now() + offset)
    : () => new Date(T0 + offset);
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const fake = await serveGitHubFake({
    apps: [
      {
        id: FIXTURE_APP_ID,
        publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
      },
    ],
    installations: (options.installations ?? DEFAULT_INSTALLATIONS).map((inst) => ({
      ...inst,
      appId: FIXTURE_APP_ID,
    })),
    now: clock,
    ...(options.skewMs === undefined ? {} : { skewMs: options.skewMs }),
    ...(options.tokenLength === undefined ? {} : { tokenLength: options.tokenLength }),
  });
  const made = options.dir === undefined ? await mkdtemp(join(tmpdir(), "bottle-app-")) : undefined;
  const dir = options.dir ?? (made as string);
  const key = options.wrongKey
    ? generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
    : pair.privateKey;
  const keyFile = join(dir, "app.pem");
  await writeFile(keyFile, key.export({ type: "pkcs1", format: "pem" }), { mode: 0o600 });
  const callers = options.callers ?? {
    caller: { repositories: ["acme/*"], permissions: { contents: "write", metadata: "read" } },
  };
  const keys: Record<string, string> = {};
  const lines = [
    "version: 1",
    "apps:",
    `  acme: { app_id: ${FIXTURE_APP_ID}, private_key: app.pem, api: "${fake.url}" }`,
    "callers:",
  ];
  for (const [name, caller] of Object.entries(callers)) {
    const callerKey = caller.key ?? `btk_${randomBytes(24).toString("base64url")}`;
    keys[name] = callerKey;
    const permissions = Object.entries(caller.permissions).map(([p, level]) => `${p}: ${level}`);
    lines.push(
      `  ${name}:`,
      `    key_sha256: ${createHash("sha256").update(callerKey).digest("hex")}`,
      "    app: acme",
      `    repositories: ${JSON.stringify(caller.repositories)}`,
      `    permissions: { ${permissions.join(", ")} }`,
    );
  }
  const configText = `${[...lines, options.config ?? ""].join("\n")}\n`;
  const configFile = join(dir, "tokman.yaml");
  await writeFile(configFile, configText, { mode: 0o600 });
  return {
    fake,
    dir,
    keyFile,
    configFile,
    configText,
    keys,
    key: Object.values(keys)[0] ?? "",
    clock,
    advance: (ms) => {
      offset += ms;
    },
    async close() {
      await fake.close();
      if (made !== undefined) await rm(made, { recursive: true, force: true });
    },
  };
}

/** The part of a running tokman the fixture uses (`@bottle/tokman`'s `Tokman`). */
export interface TokmanLike {
  listen(target: { host: string; port: number }): Promise<string>;
  close(): Promise<void>;
  readonly server: Server;
}

/**
 * `@bottle/tokman`'s `createTokman` and `parseConfig`, passed in: test-utils cannot depend on
 * tokman, whose own tests use test-utils.
 */
export interface TokmanFactory<Config, T extends TokmanLike> {
  parseConfig(text: string, baseDir: string): Config;
  createTokman(options: { config: Config; now?: () => Date }): T;
}

/** A running tokman minting at the GitHub fake, on the fixture's clock. */
export interface TokmanWithGitHubFake<T extends TokmanLike> extends GitHubAppFixture {
  /** The current tokman (a new one after `restart`). */
  readonly tokman: T;
  /** `http://127.0.0.1:PORT`, the same after `restart`. */
  readonly url: string;
  /** Query strings of the token requests tokman received, in order. */
  readonly asked: string[];
  /** Minted tokens, oldest first. */
  tokens(): string[];
  /** Stops tokman (its connections cut). */
  stop(): Promise<void>;
  /** Stops tokman if it runs, and starts it again on the same port (its cache is gone unless it has a store). */
  restart(): Promise<void>;
}

/**
 * Starts the GitHub fake, writes tokman's configuration and runs tokman in process on
 * `127.0.0.1:0`, all stopped when the current test finishes. `tokmanOptions` go to
 * `createTokman` (logger, attempts, backoffMs, maxInFlight); the clock is the fixture's.
 */
export async function startTokmanWithGitHubFake<Config, T extends TokmanLike>(
  factory: TokmanFactory<Config, T>,
  options: GitHubAppFixtureOptions & { readonly tokmanOptions?: Record<string, unknown> } = {},
): Promise<TokmanWithGitHubFake<T>> {
  const fixture = await serveGitHubAppFixture({ dir: await testdir(), ...options });
  onTestFinished(() => fixture.close());
  const config = factory.parseConfig(fixture.configText, fixture.dir);
  const asked: string[] = [];
  let port = 0;
  let current: T | undefined;
  let url = "";
  const start = async () => {
    const tokman = factory.createTokman({
      config,
      now: fixture.clock,
      ...options.tokmanOptions,
    });
    tokman.server.on("request", (req) => {
      if (req.url?.startsWith("/api/")) asked.push(new URL(req.url, "http://x").search);
    });
    url = await tokman.listen({ host: "127.0.0.1", port });
    port = Number(new URL(url).port);
    current = tokman;
  };
  const stop = async () => {
    const tokman = current;
    current = undefined;
    if (tokman === undefined) return;
    tokman.server.closeAllConnections();
    await tokman.close();
  };
  await start();
  onTestFinished(stop);
  return {
    ...fixture,
    get tokman() {
      if (current === undefined) throw new Error("tokman is stopped");
      return current;
    },
    get url() {
      return url;
    },
    asked,
    tokens: () => fixture.fake.tokens().map((t) => t.token),
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}
