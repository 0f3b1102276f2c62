/** tokman against a fake GitHub, with one clock for both and a captured audit log. */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { createLogger } from "@bottle/log";
import { startTokmanWithGitHubFake, type TokmanWithGitHubFake, testdir } from "@bottle/test-utils";
import { parseConfig } from "../src/config.ts";
import { createTokman, type Tokman } from "../src/server.ts";

export const CALLER_KEY = "btk_caller_key_for_tests_0123456789";
export const OTHER_KEY = "btk_other_caller_key_0123456789";

export interface Setup extends TokmanWithGitHubFake<Tokman> {
  /** Every log line so far. */
  logs(): string;
  get(
    path: string,
    key?: string,
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
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
  readonly revokeOnClose?: boolean;
}

/**
 * tokman with two callers: `gate` (CALLER_KEY: acme/*, frozen/ice, nobody/*; contents write,
 * metadata read) and `reader` (OTHER_KEY: acme/docs; metadata read).
 */
export async function setup(options: SetupOptions = {}): Promise<Setup> {
  const dir = await testdir();
  await writeFile(join(dir, "store.key"), "cd".repeat(32), { mode: 0o600 });
  const out = new PassThrough();
  let logs = "";
  out.on("data", (chunk: Buffer) => {
    logs += chunk.toString("utf8");
  });
  const t = await startTokmanWithGitHubFake(
    { createTokman, parseConfig },
    {
      dir,
      callers: {
        gate: {
          key: CALLER_KEY,
          repositories: ["acme/*", "frozen/ice", "nobody/*"],
          permissions: { contents: "write", metadata: "read" },
        },
        reader: { key: OTHER_KEY, repositories: ["acme/docs"], permissions: { metadata: "read" } },
      },
      config: [
        `renew_margin: ${options.renewMargin ?? 600}`,
        "not_installed_ttl: 60",
        options.store ? "store: { sqlite: tokens.db, key_file: store.key }" : "",
      ].join("\n"),
      ...(options.realTime ? { realTime: true } : {}),
      ...(options.skewMs === undefined ? {} : { skewMs: options.skewMs }),
      ...(options.tokenLength === undefined ? {} : { tokenLength: options.tokenLength }),
      ...(options.wrongKey ? { wrongKey: true } : {}),
      tokmanOptions: {
        logger: createLogger({ name: "tokman-test", destination: out }),
        attempts: 3,
        backoffMs: 1,
        ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight }),
        ...(options.revokeOnClose ? { revokeOnClose: true } : {}),
      },
    },
  );
  return Object.assign(Object.create(t) as Setup, {
    logs: () => logs,
    async get(path: string, key = CALLER_KEY) {
      const response = await fetch(`${t.url}${path}`, {
        headers: key === "" ? {} : { authorization: `Bearer ${key}` },
      });
      return {
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
        headers: response.headers,
      };
    },
  });
}
