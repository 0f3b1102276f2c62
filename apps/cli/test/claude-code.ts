// Claude Code in tests: its native binary, and the screen of a program driven on a
// pseudo-terminal (node-pty), read as text and typed into at a human pace.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { IPty } from "node-pty";

const require = createRequire(import.meta.url);

/** How long a screen may take to show what a test waits for. */
const SCREEN_TIMEOUT_MS = 30_000;
/** Between keys: a menu that has just drawn may not read input yet. */
const KEY_PAUSE_MS = 700;

/**
 * Claude Code's native binary. The npm package is a wrapper whose postinstall copies the
 * platform package's binary over a placeholder; pnpm runs no install scripts here, so the
 * binary is taken from the platform package (an optional dependency of the wrapper).
 */
export function claudeBinary(): string {
  const wrapper = require.resolve("@anthropic-ai/claude-code/package.json");
  const platform = `@anthropic-ai/claude-code-${process.platform}-${process.arch}`;
  return join(dirname(createRequire(wrapper).resolve(`${platform}/package.json`)), "claude");
}

/** The screen's text without escape sequences and whitespace (a TUI moves the cursor freely). */
export function screenText(raw: string): string {
  return raw
    .replace(/\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g, "")
    .replace(/\x1b\[[0-9;?<=>]*[ -/]*[@-~]/g, "")
    .replace(/\x1b[@-_]/g, "")
    .replace(/\s+/g, "");
}

/** What a pty-driven program wrote, and the means to wait for text and to type. */
export interface Screen {
  /** Everything written so far, escape sequences included. */
  raw(): string;
  /**
   * Waits until the screen, from offset `from` of raw() on, shows one of `texts` (whitespace
   * ignored); returns which one and the offset reached. Fails with the screen's tail.
   */
  waitFor(
    texts: string | readonly string[],
    from?: number,
    timeoutMs?: number,
  ): Promise<{ text: string; at: number }>;
  /** Types `keys` after a pause. */
  type(keys: string): Promise<void>;
}

/** Starts recording what `term` writes. */
export function watchScreen(term: IPty): Screen {
  let raw = "";
  term.onData((data) => {
    raw += data;
  });
  const pause = () => new Promise((resolve) => setTimeout(resolve, KEY_PAUSE_MS));
  return {
    raw: () => raw,
    async waitFor(texts, from = 0, timeoutMs = SCREEN_TIMEOUT_MS) {
      const wanted = (typeof texts === "string" ? [texts] : texts).map((text) => ({
        text,
        squeezed: text.replace(/\s+/g, ""),
      }));
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const at = raw.length;
        const screen = screenText(raw.slice(from));
        const seen = wanted.find(({ squeezed }) => screen.includes(squeezed));
        if (seen !== undefined) return { text: seen.text, at };
        if (Date.now() > deadline) {
          const names = wanted.map(({ text }) => `"${text}"`).join(" or ");
          throw new Error(`the screen did not show ${names}: …${screenText(raw).slice(-600)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async type(keys) {
      await pause();
      term.write(keys);
    },
  };
}
