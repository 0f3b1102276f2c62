import { join } from "node:path";
import type { TokenStoreError } from "@bottle/gate-tokens";
import type { Logger } from "@bottle/log";
import { testdir } from "@bottle/test-utils";

/** A token file path in a fresh directory that does not exist yet (`state/`). */
export async function tokenFile(): Promise<string> {
  return join(await testdir(), "state", "tokens.json");
}

/** The error a promise rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<TokenStoreError> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: TokenStoreError) => error,
  );
}

/** A record of what a logger was given. */
export interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

/** A logger that keeps every record in `lines`. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj, msg });
    };
  const logger = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return logger;
}

/** Counting randomness: byte i of every draw is (seed + draw + i) mod 256. */
export function countingBytes(seed = 0): (size: number) => Buffer {
  let draw = 0;
  return (size) => {
    const start = seed + draw++;
    return Buffer.from(Array.from({ length: size }, (_, i) => (start + i) % 256));
  };
}
