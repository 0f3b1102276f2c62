/** tokman against a fake GitHub, with one clock for both and a captured audit log. */
import { createHash, generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { createLogger } from "@bottle/log";
import { type GitHubFake, startGitHubFake, testdir } from "@bottle/test-utils";
import { onTestFinished } from "vitest";
import { parseConfig } from "../src/config.ts";
import { createTokman, type Tokman } from "../src/server.ts";

export const CALLER_KEY = "btk_caller_key_for_tests_0123456789";
export const OTHER_KEY = "btk_other_caller_key_0123456789";

export interface Setup {
  readonly fake: GitHubFake;
  readonly tokman: Tokman;
  readonly url: string;
  readonly dir: string;
  readonly configText: string;
  /** Moves the shared clock. */
  advance(ms: number): void;
  clock(): Date;
  /** Every log line so far. */
  logs(): string;
  get(
    path: string,
    key?: string,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  restart(): Promise<void>;
}

export interface SetupOptions {
  readonly store?: boolean;
  readonly skewMs?: number;
  readonly tokenLength?: number;
  /** A different private key than the one GitHub knows (misconfigured app). */
  readonly wrongKey?: boolean;
  readonly renewMargin?: number;
  /** The real clock (for a `bottle-tokman` process, which cannot share an injected one). */
  readonly realTime?: boolean;
  readonly maxInFlight?: number;
}

export async function setup(options: SetupOptions = {}): Promise<Setup> {
  // A frozen clock that only `advance` moves (tests compute expiries from it), or the real
  // time for a tokman process, which cannot share an injected clock.
  let frozen = Date.parse("2026-12-01T10:00:00Z");
  let offset = 0;
  const clock = options.realTime ? () => new Date(Date.now() + offset) : () => new Date(frozen);
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const fake = await startGitHubFake({
    apps: [
      { id: 42, publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString() },
    ],
    installations: [
      {
        id: 7,
        appId: 42,
        account: { login: "acme", type: "Organization" },
        repositories: [
          { id: 1, name: "api" },
          { id: 2, name: "docs" },
        ],
        permissions: { contents: "write", metadata: "read", issues: "write" },
      },
      {
        id: 8,
        appId: 42,
        account: { login: "frozen", type: "Organization" },
        repositories: [{ id: 3, name: "ice" }],
        permissions: { contents: "write", metadata: "read" },
        suspended: true,
      },
    ],
    now: clock,
    ...(options.skewMs === undefined ? {} : { skewMs: options.skewMs }),
    ...(options.tokenLength === undefined ? {} : { tokenLength: options.tokenLength }),
  });
  const dir = await testdir();
  const key = options.wrongKey
    ? generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
    : pair.privateKey;
  await writeFile(join(dir, "app.pem"), key.export({ type: "pkcs1", format: "pem" }), {
    mode: 0o600,
  });
  await writeFile(join(dir, "store.key"), "cd".repeat(32), { mode: 0o600 });
  const digest = (k: string) => createHash("sha256").update(k).digest("hex");
  const configText = `version: 1
apps:
  acme: { app_id: 42, private_key: app.pem, api: "${fake.url}" }
callers:
  gate:
    key_sha256: ${digest(CALLER_KEY)}
    app: acme
    repositories: ["acme/*", "frozen/ice", "nobody/*"]
    permissions: { contents: write, metadata: read }
  reader:
    key_sha256: ${digest(OTHER_KEY)}
    app: acme
    repositories: ["acme/docs"]
    permissions: { metadata: read }
renew_margin: ${options.renewMargin ?? 600}
not_installed_ttl: 60
${options.store ? "store: { sqlite: tokens.db, key_file: store.key }" : ""}
`;
  const out = new PassThrough();
  let logs = "";
  out.on("data", (chunk: Buffer) => {
    logs += chunk.toString("utf8");
  });
  const logger = createLogger({ name: "tokman-test", destination: out });
  const start = async () => {
    const tokman = createTokman({
      config: parseConfig(configText, dir),
      logger,
      now: clock,
      attempts: 3,
      backoffMs: 1,
      ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
    });
    const url = await tokman.listen({ host: "127.0.0.1", port: 0 });
    return { tokman, url };
  };
  let current = await start();
  onTestFinished(() => current.tokman.close());
  return {
    fake,
    get tokman() {
      return current.tokman;
    },
    get url() {
      return current.url;
    },
    dir,
    configText,
    advance: (ms) => {
      frozen += ms;
      offset += ms;
    },
    clock,
    logs: () => logs,
    async get(path, key = CALLER_KEY) {
      const response = await fetch(`${current.url}${path}`, {
        headers: key === "" ? {} : { authorization: `Bearer ${key}` },
      });
      return {
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
        headers: response.headers,
      };
    },
    async restart() {
      await current.tokman.close();
      current = await start();
    },
  };
}
